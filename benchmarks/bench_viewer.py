"""Viewer and ``imucap render`` speed on this machine: frames/s of each stage (medians).

1. The face on the CPU, built-in rig: blending alone (:meth:`FaceLook.vertices`, one matrix
   product), blending + normals + shading (:meth:`FaceLook.frame`), and for comparison the
   rig's older ``Rig.blend`` + ``Rig.vertex_normals`` (``np.add.at``).
2. Offscreen rendering with Open3D's legacy ``Visualizer`` in a hidden window (the path
   ``imucap render`` uses): one face at 640x480 with new weights every frame, and whole
   composed frames (render + AU bars + timeline, :class:`PlaybackFrames`) of a synthetic
   session, the truth alone and truth beside a prediction, at 640x480 and 960x540.
3. Filament's ``open3d.visualization.rendering.OffscreenRenderer`` at 640x480 (remove and
   re-add the changed mesh, then ``render_to_image``), run in a subprocess under a timeout
   because it hangs in some runs on some machines: reported as "hung" then.
4. MP4 encoding (:class:`Mp4Writer`, H.264 through ffmpeg) of composed 960x540 frames.

Usage: ``python benchmarks/bench_viewer.py [--frames 120] [--filament-timeout 120]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def median_ms(fn: Callable[[int], object], n: int, warm: int = 5) -> float:
    """Median wall time of ``fn(k)`` over ``n`` calls after ``warm`` untimed ones, ms."""
    for k in range(warm):
        fn(k)
    times = []
    for k in range(n):
        t = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def line(label: str, ms: float, extra: str = "") -> None:
    print(f"  {label:<58} {1e3 / ms:8.0f} frames/s  ({ms:7.2f} ms/frame){extra}", flush=True)


def bench_cpu_face(rig, n: int) -> None:
    from imucap.viewers.look import FaceLook

    look = FaceLook(rig)
    w = np.random.default_rng(0).uniform(0, 1, (max(n, 64), 52)).astype(np.float32) * 0.6
    print(f"face on the CPU, built-in rig ({rig.n_vertices} vertices, {len(rig.faces)} "
          f"triangles):")
    line("blend only (FaceLook.vertices)", median_ms(lambda k: look.vertices(w[k % len(w)]),
                                                    n * 4))
    line("blend + normals + shade (FaceLook.frame)",
         median_ms(lambda k: look.frame(w[k % len(w)]), n))
    line("normals only (FaceLook.normals)",
         median_ms(lambda k: look.normals(look.vertices(w[k % len(w)])), n))
    line("old: Rig.blend", median_ms(lambda k: rig.blend(w[k % len(w)]), n))
    line("old: Rig.blend + Rig.vertex_normals (np.add.at)",
         median_ms(lambda k: rig.vertex_normals(rig.blend(w[k % len(w)])), n))
    bench_blend_with_busy_cores()


BLEND_SCRIPT = r"""
import time
import numpy as np
from imucap.datasets.builtin_rig import builtin_rig
from imucap.viewers.look import FaceLook
look = FaceLook(builtin_rig())
w = np.random.default_rng(0).uniform(0, 1, (64, 52)).astype(np.float32)
def med(f):
    times = []
    for k in range(100):
        t = time.perf_counter()
        f(w[k % 64])
        times.append(time.perf_counter() - t)
    return float(np.median(times[10:])) * 1e3
blas = med(look.vertices)
einsum = med(lambda x: look._neutral + np.einsum("k,kn->n", x, look._deltas))
print(f"{blas} {einsum}")
"""


def bench_blend_with_busy_cores(runs: int = 4) -> None:
    """The blend while every core is busy, in fresh processes: ``imucap render`` encodes in an
    ffmpeg process beside the renderer and the live viewer runs the model beside it. NumPy's
    BLAS may split the (1, 52) x (52, 3V) product over threads that then wait for a core."""
    cores = os.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    blas, einsum = [], []
    try:
        for _ in range(runs):
            out = subprocess.run([sys.executable, "-c", BLEND_SCRIPT], capture_output=True,
                                 text=True, timeout=120, check=True).stdout.split()
            blas.append(float(out[0]))
            einsum.append(float(out[1]))
    finally:
        for p in hogs:
            p.kill()
            p.wait()
    print(f"  blend only with {cores} busy-loop processes beside it, {runs} fresh processes:")
    print("    FaceLook.vertices (BLAS)   ms/frame: " + ", ".join(f"{v:.2f}" for v in blas))
    print("    same product with einsum   ms/frame: " + ", ".join(f"{v:.2f}" for v in einsum))


def session_playbacks(root: Path):  # noqa: ANN201 - (truth alone, truth + prediction)
    """A 6 s synthetic session: the truth alone, and beside a made-up prediction (the truth
    with noise and a lag) read from a Live Link CSV, as ``--prediction`` does."""
    from imucap.datasets.dataset import open_dataset
    from imucap.datasets.synth import synthesize
    from imucap.export import FaceTrack, write_livelink_csv
    from imucap.viewers.playback import load_playback

    synthesize(root / "ds", subjects=1, minutes=0.1, imu_rate_hz=100, seed=3)
    s = open_dataset(root / "ds").session(0)
    rng = np.random.default_rng(1)
    pred = np.clip(np.roll(s.blendshapes, 6, axis=0)
                   + rng.normal(0, 0.05, s.blendshapes.shape), 0, 1).astype(np.float32)
    write_livelink_csv(root / "pred.csv", FaceTrack(s.blendshape_time_s - s.blendshape_time_s[0],
                                                    pred, fps=60.0))
    truth = load_playback(root / "ds", session="s000_00", no_model=True)
    both = load_playback(root / "ds", session="s000_00", prediction=root / "pred.csv")
    return truth, both


def composed_ms(pb, rig, width: int, height: int, n: int,  # noqa: ANN001
                keep: list[np.ndarray] | None) -> float:
    """Median ms of a whole frame of ``pb`` (:class:`PlaybackFrames`), keeping up to 60 of
    them in ``keep``."""
    from imucap.viewers.render import PlaybackFrames

    frames = PlaybackFrames(pb, rig, width, height)

    def one(k: int) -> None:
        img = frames.frame(k % len(pb))
        if keep is not None and len(keep) < 60:
            keep.append(img)

    try:
        return median_ms(one, n)
    finally:
        frames.close()


def bench_offscreen(rig, n: int, playbacks) -> tuple[float, list[np.ndarray]]:
    from imucap.viewers.look import FaceLook
    from imucap.viewers.offscreen import OffscreenRenderer
    from imucap.viewers.scene import PanelState, Scene

    look = FaceLook(rig)
    w = np.random.default_rng(2).uniform(0, 1, (64, 52)).astype(np.float32) * 0.6
    print("offscreen rendering, Open3D legacy Visualizer in a hidden window:")
    with OffscreenRenderer(Scene(look, 1), 640, 480) as r:
        legacy = median_ms(lambda k: r.render([PanelState(w[k % len(w)])]), n)
        line("one face 640x480, new weights each frame (render)", legacy)
        update = median_ms(lambda k: r.update([PanelState(w[k % len(w)])]), n)
        capture = median_ms(lambda k: r.capture(), n)
        print(f"    of which update (blend, shade, copy in) {update:.2f} ms, capture (upload, "
              f"draw, read back) {capture:.2f} ms")
    kept: list[np.ndarray] = []
    for label, pb in (("truth alone + sensors", playbacks[0]),
                      ("truth beside prediction, error colour", playbacks[1])):
        for width, height in ((640, 480), (960, 540)):
            keep = kept if width == 960 and not kept else None
            line(f"composed {width}x{height}, {label}",
                 composed_ms(pb, rig, width, height, n, keep))
    return legacy, kept


FILAMENT_SCRIPT = r"""
import os, sys, time
import numpy as np
import open3d as o3d
from imucap.datasets.builtin_rig import builtin_rig
from imucap.viewers.look import BACKGROUND, FaceLook, frame_camera
o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
n = int(sys.argv[1])
look = FaceLook(builtin_rig())
r = o3d.visualization.rendering.OffscreenRenderer(640, 480)
mat = o3d.visualization.rendering.MaterialRecord()
mat.shader = "defaultUnlit"
r.scene.set_background(list(BACKGROUND) + [1.0])
cam = frame_camera(look, 1, 640, 480)
r.scene.camera.set_projection(cam.intrinsic(), 0.01, 10.0, 640, 480)
cx, cy = cam.centre
r.scene.camera.look_at([cx, cy, 0.0], [cx, cy, cam.distance], [0.0, 1.0, 0.0])
faces = o3d.utility.Vector3iVector(look.faces)
w = np.random.default_rng(2).uniform(0, 1, (64, 52)).astype(np.float32) * 0.6
times = []
for k in range(n + 5):
    t = time.perf_counter()
    v, c, _ = look.frame(w[k % len(w)])
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), faces)
    mesh.vertex_colors = o3d.utility.Vector3dVector(c)
    if r.scene.has_geometry("face"):
        r.scene.remove_geometry("face")
    r.scene.add_geometry("face", mesh, mat)
    img = np.asarray(r.render_to_image())
    times.append(time.perf_counter() - t)
    print("FRAME", k, flush=True)
print("FILAMENT_MS", float(np.median(times[5:])) * 1e3, img.shape, flush=True)
"""


def bench_filament(n: int, timeout_s: float, legacy_ms: float) -> None:
    print("offscreen rendering, Filament OffscreenRenderer (subprocess, "
          f"{timeout_s:g} s timeout):", flush=True)
    env = dict(os.environ)
    env.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="imucap-bench-xdg-"))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", FILAMENT_SCRIPT, str(n)], env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else \
            (exc.stdout or "")
        done = sum(1 for ln in out.splitlines() if ln.startswith("FRAME"))
        print(f"  one face 640x480, remove + add + render_to_image: hung (killed after "
              f"{timeout_s:g} s, {done} frames done); legacy: {legacy_ms:.2f} ms/frame")
        return
    wall = time.perf_counter() - start
    result = [ln for ln in proc.stdout.splitlines() if ln.startswith("FILAMENT_MS")]
    if proc.returncode != 0 or not result:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"  one face 640x480: failed (exit {proc.returncode}): {tail}")
        return
    ms = float(result[0].split()[1])
    backend = next((ln.split(":", 1)[1].strip() for ln in (proc.stdout + proc.stderr)
                    .splitlines() if ln.startswith("FEngine resolved backend")), "?")
    line("one face 640x480, remove + add + render_to_image", ms,
         f"  vs legacy {legacy_ms:.2f} ms: {ms / legacy_ms:.1f}x slower; backend {backend}, "
         f"subprocess {wall:.1f} s")


def bench_mp4(frames: list[np.ndarray], n: int) -> None:
    from imucap.viewers.video import Mp4Writer, find_ffmpeg

    h, w = frames[0].shape[:2]
    print(f"MP4 encoding ({find_ffmpeg()}):")
    with tempfile.TemporaryDirectory(prefix="imucap-bench-mp4-") as tmp:
        rates = []
        for _ in range(3):
            writer = Mp4Writer(Path(tmp) / "clip.mp4", w, h, 30.0)
            t = time.perf_counter()
            for k in range(n):
                writer.write(frames[k % len(frames)])
            writer.close()
            rates.append(n / (time.perf_counter() - t))
            size = (Path(tmp) / "clip.mp4").stat().st_size
        rate = float(np.median(rates))
        print(f"  Mp4Writer {w}x{h}, H.264 veryfast crf 20, {n} composed frames: "
              f"{rate:8.0f} frames/s  ({1e3 / rate:7.2f} ms/frame, {size / n / 1e3:.1f} kB/frame)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="timed frames per figure")
    parser.add_argument("--filament-timeout", type=float, default=120.0,
                        help="seconds before the Filament run counts as hung")
    args = parser.parse_args()

    from imucap.datasets.builtin_rig import builtin_rig
    from imucap.viewers.offscreen import import_open3d
    from imucap.viewers.scene import ViewerError

    rig = builtin_rig()
    try:
        version = f"Open3D {import_open3d().__version__}"
    except ViewerError as exc:
        version = f"no Open3D ({exc})"
    print(f"imucap viewers, {version}, {os.cpu_count()} cores")
    bench_cpu_face(rig, args.frames)
    try:
        with tempfile.TemporaryDirectory(prefix="imucap-bench-viewer-") as tmp:
            playbacks = session_playbacks(Path(tmp))
            legacy_ms, frames = bench_offscreen(rig, args.frames, playbacks)
        bench_filament(min(args.frames, 40), args.filament_timeout, legacy_ms)
        bench_mp4(frames, args.frames)
    except ViewerError as exc:  # no Open3D, no OpenGL context, no ffmpeg
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()
