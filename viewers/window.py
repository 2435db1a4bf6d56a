"""The interactive window: Open3D renders the faces, a Tk window shows them with the AU bars,
a timeline (play/pause, scrub, speed) or the live status, and takes the mouse and keys.

Why this split: every frame is drawn by the same Open3D path as ``imucap render`` (legacy
visualizer, hidden window, lighting baked on the CPU), so what a person sees on screen is what
a report or a CI test renders. On this project's reference machine (two CPU cores, no GPU,
Mesa) Open3D's Filament GUI picked Vulkan on the software device and never presented a frame
under a virtual screen, and two legacy Open3D windows in one process drew black; a Tk window
(Python's standard GUI) showing Open3D's frames works everywhere Tk does.

Controls: drag to orbit the faces, wheel to zoom, double-click to reset the view; for
playback, space plays or pauses, left/right step a frame, the slider scrubs, the menu sets
the speed. Esc or q closes the window.

Without a display the window cannot open: :func:`require_display` says so in one line and
points at ``imucap render``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .look import DEFAULT_PITCH_DEG, DEFAULT_YAW_DEG
from .offscreen import OffscreenRenderer
from .overlay import Layout, OverlayState, compose
from .scene import PanelState, Scene, ViewerError

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)


def require_display(what: str) -> None:
    """Raise :class:`ViewerError` (one line, with the headless alternative) when no display
    is available to open a window on."""
    if sys.platform.startswith(("linux", "freebsd")) and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ViewerError(f"imucap view {what} opens a window, and there is no display here "
                          f"(DISPLAY is not set): render to a file instead with imucap render "
                          f"INPUT -o clip.mp4, or run under a desktop, ssh -X or xvfb-run")


class PlaybackClock:
    """Where playback is: a position in seconds advanced by wall time while playing.

    Args:
        end_s: Position of the last frame.
        start_s: Position of the first frame.
        speed: Playback speed (1 is real time).
        loop: Start again at the end (otherwise pause there).
    """

    def __init__(self, end_s: float, *, start_s: float = 0.0, speed: float = 1.0,
                 loop: bool = True) -> None:
        self.start_s = start_s
        self.end_s = max(start_s, end_s)
        self.position_s = start_s
        self.speed = speed
        self.loop = loop
        self.playing = True
        self._last: float | None = None

    def tick(self, now: float) -> float:
        """Advance to wall time ``now`` (seconds, monotonic); returns the position."""
        if self._last is not None and self.playing:
            self.position_s += (now - self._last) * self.speed
            if self.position_s > self.end_s:
                if self.loop and self.end_s > self.start_s:
                    span = self.end_s - self.start_s
                    self.position_s = self.start_s + (self.position_s - self.start_s) % span
                else:
                    self.position_s, self.playing = self.end_s, False
        self._last = now
        return self.position_s

    def seek(self, position_s: float) -> None:
        self.position_s = float(np.clip(position_s, self.start_s, self.end_s))

    def step(self, frames: int, fps: float) -> None:
        """Pause and move ``frames`` frames (negative: back)."""
        self.playing = False
        self.seek(self.position_s + frames / fps)

    def toggle(self) -> bool:
        self.playing = not self.playing
        if self.playing and self.position_s >= self.end_s and not self.loop:
            self.position_s = self.start_s
        return self.playing


@dataclass
class WindowFrame:
    """Everything the window shows on one frame."""

    states: list[PanelState]
    overlay: OverlayState


class FaceWindow:
    """A window showing a :class:`Scene` that ``next_frame`` feeds.

    Args:
        title: Window title.
        scene: The faces.
        next_frame: Called about ``fps`` times a second on the GUI thread; returns the frame
            to show, or None when nothing changed.
        timeline: A :class:`PlaybackClock` to show play/pause/scrub/speed controls for.
        fps: Frames per second to aim for.
        size: Size of the picture in pixels.
        au_panel: Show the AU bars.
        quit_after_s: Close by itself after this many seconds (demos, scripted checks).
        on_frame: Called with each shown picture (tests, recording).
        site_labels: Names drawn beside the sensor glyphs of the first panel.
        step_s: How far the arrow keys move playback (one frame of the played track; by
            default one window frame, ``1 / fps``).
    """

    def __init__(self, title: str, scene: Scene, next_frame: Callable[[], WindowFrame | None],
                 *, timeline: PlaybackClock | None = None, fps: float = 30.0,
                 size: tuple[int, int] = (1280, 720), au_panel: bool = True,
                 quit_after_s: float | None = None,
                 on_frame: Callable[[np.ndarray], None] | None = None,
                 site_labels: tuple[str, ...] = (), step_s: float | None = None) -> None:
        try:
            import tkinter as tk
            from tkinter import ttk

            from PIL import ImageTk
        except ImportError as exc:
            raise ViewerError(f"the viewer window needs Tk and Pillow ({exc.name} is missing): "
                              f"install your Python's Tk (Debian/Ubuntu: apt install "
                              f"python3-tk) and pip install 'imucap[viewer]'") from None
        self.tk, self.ImageTk = tk, ImageTk
        self.scene = scene
        self.next_frame = next_frame
        self.timeline = timeline
        self.fps = fps
        self.quit_after_s = quit_after_s
        self.on_frame = on_frame
        self.frames_shown = 0
        self.site_labels = site_labels
        self.step_s = step_s if step_s is not None else 1.0 / fps
        self._after_id: str | None = None
        self.layout = Layout(size[0], size[1], au_panel=au_panel, timeline=True)
        fw, fh = self.layout.face_size
        self.renderer = OffscreenRenderer(scene, fw, fh)
        self._home_camera = self.renderer.camera
        self._yaw, self._pitch = DEFAULT_YAW_DEG, DEFAULT_PITCH_DEG
        self._zoom = 1.0
        self._drag: tuple[int, int] | None = None
        self._last: WindowFrame | None = None
        self._dirty = False
        try:
            self.root = tk.Tk(className="imucap")
        except tk.TclError as exc:
            self.renderer.close()
            raise ViewerError(f"cannot open a window on display "
                              f"{os.environ.get('DISPLAY', '?')}: {exc}; render to a file "
                              f"with imucap render instead") from None
        root = self.root
        root.title(title)
        self.picture = tk.Label(root, borderwidth=0, highlightthickness=0)
        self.picture.pack(side=tk.TOP)
        self._photo = None
        if timeline is not None:
            bar = ttk.Frame(root, padding=4)
            bar.pack(side=tk.TOP, fill=tk.X)
            self.play = ttk.Button(bar, text="Pause", width=7, command=self._on_play,
                                   takefocus=False)
            self.play.pack(side=tk.LEFT)
            self.slider = ttk.Scale(bar, from_=timeline.start_s,
                                    to=max(timeline.end_s, timeline.start_s + 1e-3),
                                    orient=tk.HORIZONTAL, command=self._on_scrub,
                                    takefocus=False)
            self.slider.pack(side=tk.LEFT, fill=tk.X, expand=True, padx=8)
            self._setting_slider = False
            self.speed = tk.StringVar(value="1x")
            menu = ttk.OptionMenu(bar, self.speed, "1x", *[f"{s:g}x" for s in SPEEDS],
                                  command=self._on_speed)
            menu.configure(takefocus=False)
            menu.pack(side=tk.LEFT)
            root.bind("<space>", lambda e: self._on_play())
            root.bind("<Left>", lambda e: self._step(-1))
            root.bind("<Right>", lambda e: self._step(1))
        self.picture.bind("<ButtonPress-1>", self._on_press)
        self.picture.bind("<B1-Motion>", self._on_drag)
        self.picture.bind("<ButtonRelease-1>", lambda e: setattr(self, "_drag", None))
        self.picture.bind("<Double-Button-1>", lambda e: self._reset_view())
        self.picture.bind("<MouseWheel>", lambda e: self._on_zoom(1 if e.delta > 0 else -1))
        self.picture.bind("<Button-4>", lambda e: self._on_zoom(1))
        self.picture.bind("<Button-5>", lambda e: self._on_zoom(-1))
        root.bind("<Escape>", lambda e: self.close())
        root.bind("q", lambda e: self.close())
        root.protocol("WM_DELETE_WINDOW", self.close)
        self._closed = False
        self._start = time.monotonic()

    # --- controls ---------------------------------------------------------------------------
    def _on_play(self) -> None:
        if self.timeline is not None:
            self.play.configure(text="Pause" if self.timeline.toggle() else "Play")

    def _step(self, frames: int) -> None:
        if self.timeline is not None:
            self.timeline.step(frames, 1.0 / self.step_s)
            self.play.configure(text="Play")

    def _on_scrub(self, value: str) -> None:
        if self.timeline is not None and not self._setting_slider:
            self.timeline.seek(float(value))

    def _on_speed(self, text: str) -> None:
        if self.timeline is not None:
            self.timeline.speed = float(text.rstrip("x"))

    def _on_press(self, event: object) -> None:
        self._drag = (event.x, event.y)  # type: ignore[attr-defined]

    def _on_drag(self, event: object) -> None:
        if self._drag is None:
            return
        x, y = event.x, event.y  # type: ignore[attr-defined]
        self._yaw += (x - self._drag[0]) * 0.4
        self._pitch = float(np.clip(self._pitch + (y - self._drag[1]) * 0.4, -80, 80))
        self._drag = (x, y)
        self.scene.look.set_view(self._yaw, self._pitch)
        self._dirty = True

    def _on_zoom(self, direction: int) -> None:
        self._zoom = float(np.clip(self._zoom * (0.9 if direction > 0 else 1 / 0.9), 0.3, 3.0))
        cam = self._home_camera
        self.renderer.set_camera(replace(cam, distance=cam.distance * self._zoom))
        self._dirty = True

    def _reset_view(self) -> None:
        self._yaw, self._pitch, self._zoom = DEFAULT_YAW_DEG, DEFAULT_PITCH_DEG, 1.0
        self.scene.look.set_view(self._yaw, self._pitch)
        self.renderer.set_camera(self._home_camera)
        self._dirty = True

    # --- frames -----------------------------------------------------------------------------
    def _tick(self) -> None:
        self._after_id = None
        if self._closed:
            return
        t0 = time.monotonic()
        if self.quit_after_s is not None and t0 - self._start >= self.quit_after_s:
            self.close()
            return
        try:
            frame = self.next_frame()
            if frame is None and self._dirty:
                frame = self._last
            if frame is not None:
                self._show(frame)
        except BaseException as exc:
            self._error = exc  # raised again from run(): a bug must not freeze the window
            self.close()
            return
        delay = max(1, int((1.0 / self.fps - (time.monotonic() - t0)) * 1000))
        self._after_id = self.root.after(delay, self._tick)

    def _show(self, frame: WindowFrame) -> None:
        from PIL import Image

        self._last, self._dirty = frame, False
        arrays = self.renderer.update(frame.states)
        faces = self.renderer.capture()
        overlay = frame.overlay
        cam = self.renderer.camera
        if self.site_labels and arrays and arrays[0].glyphs is not None:
            uv = cam.project(arrays[0].glyphs.centres)
            overlay = replace(overlay, labels=[(n, float(u), float(v)) for n, (u, v) in
                                               zip(self.site_labels, uv, strict=False)])
        top = float(self.scene.look.bounds[1][1])
        if overlay.titles:
            xs = [float(cam.project(np.array([dx, top, 0.0]))[0]) for dx in self.scene.offsets]
            overlay = replace(overlay, titles=[(t, x) for (t, _), x in
                                               zip(overlay.titles, xs, strict=False)])
        picture = compose(faces, self.layout, overlay)
        self._photo = self.ImageTk.PhotoImage(Image.fromarray(picture))
        self.picture.configure(image=self._photo)
        if self.timeline is not None:
            self._setting_slider = True
            self.slider.set(self.timeline.position_s)
            self._setting_slider = False
            self.play.configure(text="Pause" if self.timeline.playing else "Play")
        self.frames_shown += 1
        if self.on_frame is not None:
            self.on_frame(picture)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._after_id is not None:
                self.root.after_cancel(self._after_id)
                self._after_id = None
            self.root.quit()

    def run(self) -> int:
        """Show the window until it is closed; returns the number of frames shown."""
        self._error: BaseException | None = None
        self._after_id = self.root.after(1, self._tick)
        try:
            self.root.mainloop()
        finally:
            self._closed = True
            try:
                self.root.destroy()
            except self.tk.TclError:
                pass
            self.renderer.close()
        if self._error is not None:
            raise self._error
        return self.frames_shown
