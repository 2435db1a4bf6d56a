"""Headless rendering with Open3D's legacy ``Visualizer`` in a hidden window.

Measured on a two-core CPU without a GPU (``benchmarks/bench_viewer.py``): the legacy
visualizer with a hidden window (EGL/Mesa when there is no display) renders and reads back
a 640×480 frame in about 12 ms, updating the mesh in place; Filament's ``OffscreenRenderer``
must remove and re-add a changed mesh and is several times slower on the same machine (and
hung in some runs), so ``imucap render`` and the tests use this path.

The face's lighting is baked into vertex colours (:mod:`imucap.viewers.look`), so the
renderer draws them unlit and only receives new vertices and colours each frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .look import BACKGROUND, Camera, frame_camera
from .scene import PanelState, Scene, ViewerError


def import_open3d() -> Any:
    """Open3D, or one clear line saying how to install it."""
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
    try:
        import open3d as o3d
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if "libusb" in str(exc):
            raise ViewerError("Open3D needs the system library libusb-1.0 (Debian/Ubuntu: "
                              "apt install libusb-1.0-0)") from None
        raise ViewerError(f"the viewers need Open3D ({missing} is missing): pip install "
                          f"'imucap[viewer]'") from None
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    return o3d


@contextmanager
def _without_display() -> Iterator[None]:
    """Hide the display from Open3D while it opens its context, so it renders offscreen with
    EGL: a hidden GLX window (what it opens when it sees a display) reads back black frames
    on some X servers, Xvfb among them. The environment is restored at once, so a window
    toolkit opened afterwards still finds the display."""
    saved = {k: os.environ.pop(k) for k in ("DISPLAY", "WAYLAND_DISPLAY") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _runtime_dir() -> str:
    """A private runtime folder (Mesa and GLFW complain without ``XDG_RUNTIME_DIR``)."""
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"imucap-runtime-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class OffscreenRenderer:
    """Renders a :class:`~imucap.viewers.scene.Scene` to ``(height, width, 3)`` uint8 images.

    Args:
        scene: The faces to draw.
        width: Image width in pixels.
        height: Image height in pixels.
        camera: The camera; by default one framing every panel whole.

    Raises:
        ViewerError: Open3D is missing or could not open a rendering context.
    """

    def __init__(self, scene: Scene, width: int, height: int, *,
                 camera: Camera | None = None) -> None:
        if width < 16 or height < 16:
            raise ViewerError(f"render size {width}x{height} is too small (at least 16x16)")
        o3d = import_open3d()
        self._o3d = o3d
        self.scene = scene
        self.width, self.height = width, height
        self.camera = camera or frame_camera(scene.look, scene.n_panels, width, height)
        vis = o3d.visualization.Visualizer()
        with _without_display():
            ok = vis.create_window(window_name="imucap", width=width, height=height,
                                   visible=False)
        if not ok:
            raise ViewerError("Open3D could not open an OpenGL context to render in (no EGL "
                              "or GLX): install Mesa (Debian/Ubuntu: apt install libegl1 "
                              "libgl1-mesa-dri)")
        self._vis = vis
        opt = vis.get_render_option()
        opt.background_color = BACKGROUND
        opt.light_on = False  # colours carry the lighting
        opt.mesh_show_back_face = False
        opt.line_width = 2.0
        self._meshes, self._boxes, self._lines = [], [], []
        faces = o3d.utility.Vector3iVector(scene.look.faces)
        for panel in range(scene.n_panels):
            first = scene.arrays(panel, PanelState(np.zeros(52, np.float32)))
            mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(first.vertices), faces)
            mesh.vertex_colors = o3d.utility.Vector3dVector(first.colours)
            vis.add_geometry(mesh)
            self._meshes.append(mesh)
            g = first.glyphs
            if g is not None:
                box = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(g.box_vertices),
                                                o3d.utility.Vector3iVector(g.box_triangles))
                box.vertex_colors = o3d.utility.Vector3dVector(g.box_colours)
                vis.add_geometry(box)
                n = len(g.line_colours)
                lines = o3d.geometry.LineSet(
                    o3d.utility.Vector3dVector(g.line_points),
                    o3d.utility.Vector2iVector(np.arange(2 * n).reshape(n, 2)))
                lines.colors = o3d.utility.Vector3dVector(g.line_colours)
                if n:
                    vis.add_geometry(lines)
                self._boxes.append(box)
                self._lines.append(lines if n else None)
            else:
                self._boxes.append(None)
                self._lines.append(None)
        self._apply_camera()

    def set_camera(self, camera: Camera) -> None:
        """Use another camera (same image size) from the next frame on."""
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError("the camera's image size must match the renderer's")
        self.camera = camera
        self._apply_camera()

    def _apply_camera(self) -> None:
        o3d = self._o3d
        params = o3d.camera.PinholeCameraParameters()
        params.intrinsic = o3d.camera.PinholeCameraIntrinsic(self.width, self.height,
                                                             self.camera.intrinsic())
        params.extrinsic = self.camera.extrinsic()
        ctl = self._vis.get_view_control()
        ctl.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True)
        ctl.set_constant_z_near(0.01)
        ctl.set_constant_z_far(10.0)

    def update(self, states: list[PanelState]) -> list[Any]:
        """Put the panels' new arrays into the geometry (no rendering); returns the
        :class:`~imucap.viewers.scene.PanelArrays` of each panel."""
        if len(states) != self.scene.n_panels:
            raise ValueError(f"{self.scene.n_panels} panels, {len(states)} states")
        out = []
        for i, state in enumerate(states):
            arrays = self.scene.arrays(i, state)
            mesh = self._meshes[i]
            np.asarray(mesh.vertices)[:] = arrays.vertices
            np.asarray(mesh.vertex_colors)[:] = arrays.colours
            self._vis.update_geometry(mesh)
            g = arrays.glyphs
            if g is not None and self._boxes[i] is not None:
                np.asarray(self._boxes[i].vertices)[:] = g.box_vertices
                self._vis.update_geometry(self._boxes[i])
                if self._lines[i] is not None:
                    np.asarray(self._lines[i].points)[:] = g.line_points
                    self._vis.update_geometry(self._lines[i])
            out.append(arrays)
        return out

    def capture(self) -> np.ndarray:
        """Render the current geometry and read it back, ``(height, width, 3)`` uint8."""
        self._vis.poll_events()
        self._vis.update_renderer()
        buf = np.asarray(self._vis.capture_screen_float_buffer(do_render=False))
        return (buf * 255.0 + 0.5).astype(np.uint8)

    def render(self, states: list[PanelState]) -> np.ndarray:
        """Update and capture in one call."""
        self.update(states)
        return self.capture()

    def close(self) -> None:
        if self._vis is not None:
            self._vis.destroy_window()
            self._vis = None

    def __enter__(self) -> OffscreenRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
