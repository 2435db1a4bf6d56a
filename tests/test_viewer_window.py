"""The viewer windows, checked as a person at the screen would: a real X server (Xvfb with its
framebuffer in a file), real Tk windows driven by real Tk events (keys, clicks, drags, the
wheel, the speed menu), real UDP packets from a Live Link sender and a real emulated device.

Nothing here measures speed: every wait loops until what it waits for happens, under a
generous deadline, so a slow machine takes longer but does not fail.

- the playback clock on its own;
- ``imucap view ...`` without a display: one line pointing at ``imucap render``, exit 2;
- a session window in this process, driven by Tk events, its pictures and the screen checked;
- ``imucap view session`` / ``placement`` / ``live --device`` as real processes on Xvfb;
- Live Link packets into :class:`LiveLinkLive` and a window showing them;
- :class:`DeviceLive` through the shipped model, and a bad device that leaves no process.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from imucap.cli.main import main
from imucap.errors import ImucapError
from imucap.viewers.window import PlaybackClock
from imucap.vocab import ARKIT_NAMES, AU_NAMES

from emulator_helpers import free_udp_port

SESSION = "s000_00"
WAIT_S = 60.0
"""Deadline of any one wait: generous, only there so a broken window fails instead of hanging."""
REPO = Path(__file__).resolve().parents[1]
JAW = ARKIT_NAMES.index("jawOpen")
AU_BAR = (52, 110, 200)  # overlay._BAR: a filled AU bar
AU_BAR_BG = (222, 223, 228)  # overlay._BAR_BG: the empty bar behind it

# --- pixels -------------------------------------------------------------------------------------


def skin(img: np.ndarray) -> np.ndarray:
    i = img.astype(int)
    return (i[..., 0] > i[..., 1] + 15) & (i[..., 1] > i[..., 2] + 8) & (i[..., 0] > 80)


def dark_blue(img: np.ndarray) -> np.ndarray:
    """The sensor boxes' slate colour (shaded skin is never bluer than red)."""
    i = img.astype(int)
    return (i[..., 2] > i[..., 0] + 8) & (i.max(-1) < 110)


def axis_colour(img: np.ndarray, axis: str) -> np.ndarray:
    """Pixels of the sensor axes' red (x), green (y) or blue (z) lines."""
    r, g, b = (img[..., k].astype(int) for k in range(3))
    if axis == "x":
        return (r > 150) & (g < 90) & (b < 90)
    if axis == "y":
        return (g > 120) & (r < 100) & (b < 100)
    return (b > 150) & (r < 100) & (g < 110)


def exactly(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(img == np.array(colour, np.uint8), axis=-1)


def changed(a: np.ndarray, b: np.ndarray, threshold: int = 30) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(-1) > threshold


def face_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the 3-D render that are not its background."""
    from imucap.viewers.look import BACKGROUND

    bg = np.round(BACKGROUND * 255).astype(int)
    return np.abs(img.astype(int) - bg).sum(-1) > 12


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    assert len(xs), "nothing drawn"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def looks_like_a_face(screen: np.ndarray) -> bool:
    return int(skin(screen).sum()) > 20000


# --- 1. the playback clock --------------------------------------------------------------------


def test_clock_advances_with_wall_time_while_playing():
    clock = PlaybackClock(10.0)
    assert clock.playing and clock.position_s == 0.0
    assert clock.tick(100.0) == 0.0  # the first tick only starts the clock
    assert clock.tick(100.5) == pytest.approx(0.5)
    assert clock.tick(101.25) == pytest.approx(1.25)


def test_clock_stands_still_while_paused_and_resumes_without_a_jump():
    clock = PlaybackClock(10.0)
    clock.tick(0.0)
    clock.tick(1.0)
    assert clock.toggle() is False
    assert clock.tick(5.0) == pytest.approx(1.0)
    assert clock.tick(9.0) == pytest.approx(1.0)
    assert clock.toggle() is True
    assert clock.tick(9.5) == pytest.approx(1.5), "the paused time was played after all"


def test_clock_loops_from_the_end_back_to_the_start():
    clock = PlaybackClock(3.0, start_s=1.0)
    assert clock.position_s == 1.0
    clock.tick(0.0)
    assert clock.tick(1.5) == pytest.approx(2.5)
    assert clock.tick(2.5) == pytest.approx(1.5)  # 3.5 is 0.5 s into the 2 s span again
    assert clock.playing


def test_clock_without_loop_stops_at_the_end_and_plays_again_from_the_start():
    clock = PlaybackClock(2.0, loop=False)
    clock.tick(0.0)
    assert clock.tick(5.0) == 2.0 and not clock.playing
    assert clock.tick(6.0) == 2.0
    assert clock.toggle() is True and clock.position_s == 0.0
    assert clock.tick(6.0) == 0.0
    assert clock.tick(6.5) == pytest.approx(0.5)


def test_clock_seek_clamps_to_the_span():
    clock = PlaybackClock(4.0, start_s=1.0)
    clock.seek(2.5)
    assert clock.position_s == 2.5
    clock.seek(-3.0)
    assert clock.position_s == 1.0
    clock.seek(99.0)
    assert clock.position_s == 4.0
    assert clock.playing, "seeking does not pause"
    assert PlaybackClock(-1.0).end_s == 0.0, "an end before the start is the start"


def test_clock_step_pauses_and_moves_whole_frames():
    clock = PlaybackClock(2.0)
    clock.seek(1.0)
    clock.step(1, 30.0)
    assert not clock.playing
    assert clock.position_s == pytest.approx(1.0 + 1 / 30)
    clock.step(-3, 30.0)
    assert clock.position_s == pytest.approx(1.0 - 2 / 30)
    clock.step(-1000, 30.0)
    assert clock.position_s == 0.0
    clock.step(1000, 30.0)
    assert clock.position_s == 2.0 and not clock.playing


def test_clock_speed_scales_wall_time():
    clock = PlaybackClock(100.0, speed=2.0)
    clock.tick(0.0)
    assert clock.tick(1.0) == pytest.approx(2.0)
    clock.speed = 0.25
    assert clock.tick(3.0) == pytest.approx(2.5)


# --- 2. no display: one line, exit 2, and what to do instead ----------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("window") / "ds"
    synthesize(path, subjects=1, minutes=0.03, imu_rate_hz=100, seed=1)  # 1.8 s, 11 sensors
    return path


@pytest.mark.parametrize("what", ["session", "live", "placement"])
def test_without_a_display_each_view_says_so_in_one_line(what, dataset, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    argv = {"session": ["session", str(dataset), "--session", SESSION, "--no-model"],
            "live": ["live", "--device", "emulator:imusic11", "--no-model"],
            "placement": ["placement", "imusic11"]}[what]
    code = main(["view", *argv])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"imucap: error: imucap view {what} "), lines[0]
    assert "there is no display here" in lines[0] and "imucap render" in lines[0], lines[0]


# --- a virtual screen, and windows driven by a script on Tk's thread -------------------------


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """Xvfb for the module (after checking this machine can show and render windows)."""
    from xvfb_helpers import virtual_screen

    if shutil.which("Xvfb") is None:
        pytest.skip("the window tests need Xvfb (Debian/Ubuntu: apt install xvfb)")
    if importlib.util.find_spec("tkinter") is None:
        pytest.skip("the window tests need Tk (Debian/Ubuntu: apt install python3-tk)")
    pytest.importorskip("open3d", reason="the viewers need Open3D (pip install 'imucap[viewer]')")
    pytest.importorskip("PIL", reason="the viewer window needs Pillow")
    from imucap.viewers.look import FaceLook
    from imucap.viewers.offscreen import OffscreenRenderer
    from imucap.viewers.scene import Scene, ViewerError

    try:
        OffscreenRenderer(Scene(FaceLook(the_rig())), 64, 64).close()
    except ViewerError as exc:
        pytest.skip(f"cannot render here: {exc}")
    with virtual_screen(tmp_path_factory.mktemp("xvfb")) as (display, framebuffer):
        yield display, framebuffer


@functools.cache
def the_rig():
    """The built-in head, built once."""
    from imucap.datasets.builtin_rig import builtin_rig

    return builtin_rig()


@pytest.fixture
def display(screen, monkeypatch) -> tuple[str, Path]:
    """This process's windows open on the virtual screen."""
    monkeypatch.setenv("DISPLAY", screen[0])
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return screen


Step = float | Callable[[], bool] | None


class Script:
    """Runs ``scenario`` (a generator) on the window's Tk thread while the window runs.

    Each ``yield`` gives what to wait for before going on: a number of seconds, or a predicate
    (checked every 20 ms, failing after :data:`WAIT_S`). An exception in the scenario, or in
    any Tk callback of the window (its event handlers, its frame timer), is kept and closes the
    window; :meth:`run` raises it once the window is gone.
    """

    def __init__(self, window, scenario: Callable[[], Iterator[Step]]) -> None:
        self.window = window
        self.errors: list[str] = []
        self.done = False
        self._gen = scenario()
        self._wait: Step = None
        self._deadline = 0.0
        window.root.report_callback_exception = self._report

    def _report(self, exc_type, exc, tb) -> None:  # noqa: ANN001 - Tk's signature
        self.errors.append("".join(traceback.format_exception(exc_type, exc, tb)))
        self.window.close()

    def _step(self) -> None:
        if self.window._closed:
            return
        try:
            if callable(self._wait) and not self._wait():
                if time.monotonic() > self._deadline:
                    raise AssertionError(f"waited {WAIT_S:.0f} s in vain for "
                                         f"{getattr(self._wait, '__doc__', None) or self._wait}")
                self.window.root.after(20, self._step)
                return
            self._wait = next(self._gen)
        except StopIteration:
            self.done = True
            return
        except BaseException:  # noqa: BLE001 - handed to the test by run()
            self._report(*sys.exc_info())
            return
        self._deadline = time.monotonic() + WAIT_S
        delay = int(self._wait * 1000) if isinstance(self._wait, (int, float)) else 20
        self.window.root.after(max(1, delay), self._step)

    def run(self, run_window: Callable[[], int] | None = None) -> int:
        """Runs the window (``run_window``, default its ``run``) with the scenario."""
        root = self.window.root
        root.after(1, self._step)
        shown = (run_window or self.window.run)()
        # Timers still pending in the closed window's interpreter would fire, as errors, in
        # the next window's event loop: cancel them.
        for pending in root.tk.splitlist(root.tk.call("after", "info")):
            root.tk.call("after", "cancel", pending)
        if self.errors:
            pytest.fail("in the window:\n" + "\n".join(self.errors), pytrace=False)
        return shown


def until(predicate: Callable[[], bool], what: str) -> Callable[[], bool]:
    predicate.__doc__ = what
    return predicate


def click(widget, x: int, y: int, button: int = 1) -> None:
    """A real mouse click on ``widget`` at ``(x, y)``: the pointer comes in, presses,
    releases."""
    widget.event_generate("<Enter>", x=x, y=y)
    widget.event_generate(f"<ButtonPress-{button}>", x=x, y=y)
    widget.event_generate(f"<ButtonRelease-{button}>", x=x, y=y)


def drag(widget, start: tuple[int, int], end: tuple[int, int], steps: int = 6) -> None:
    """Press the left button at ``start``, move to ``end`` in ``steps`` moves, release."""
    widget.event_generate("<Enter>", x=start[0], y=start[1])
    widget.event_generate("<ButtonPress-1>", x=start[0], y=start[1])
    for k in range(1, steps + 1):
        x = round(start[0] + (end[0] - start[0]) * k / steps)
        y = round(start[1] + (end[1] - start[1]) * k / steps)
        widget.event_generate("<B1-Motion>", x=x, y=y)
    widget.event_generate("<ButtonRelease-1>", x=end[0], y=end[1])


def key(window, keysym: str) -> None:
    """A key press as X delivers it: to the widget that has the keyboard focus."""
    target = window.root.focus_get() or window.root
    target.event_generate(f"<{keysym}>")


def option_menu(window):
    """The speed menu's button."""
    bar = window.play.master
    return next(w for w in bar.winfo_children() if w.winfo_class() == "TMenubutton")


# --- 3. a session window in this process --------------------------------------------------------


@pytest.fixture(scope="module")
def playback(dataset):
    from imucap.viewers.playback import load_playback

    return load_playback(dataset, session=SESSION, no_model=True)  # 30 fps, 54 frames


class SessionWindow:
    """A session in a window, wired like ``imucap view session`` wires it, keeping every
    picture shown with the index of the frame it shows."""

    def __init__(self, playback, *, size=(640, 480), fps: float = 30.0, **kw) -> None:
        from imucap.viewers.look import FaceLook
        from imucap.viewers.render import PlaybackView
        from imucap.viewers.window import FaceWindow, WindowFrame

        self.playback = playback
        view = PlaybackView(playback, FaceLook(the_rig()))
        times = playback.times
        self.clock = PlaybackClock(float(times[-1]), start_s=float(times[0]))
        self.index = -1
        self.requested: list[int] = []  # frame indices next_frame handed over
        self.pictures: list[tuple[int, np.ndarray]] = []  # (frame index, picture) as shown
        no_x = [0.0] * len(playback.titles)

        def next_frame():
            pos = self.clock.tick(time.monotonic())
            i = int(np.clip(np.searchsorted(times, pos - 0.5 / playback.fps), 0,
                            len(times) - 1))
            if i == self.index:
                return None
            self.index = i
            self.requested.append(i)
            return WindowFrame(view.states(i), view.overlay(i, no_x, ""))

        self.window = FaceWindow("imucap test session", view.scene, next_frame,
                                 timeline=self.clock, fps=fps, size=size,
                                 on_frame=lambda p: self.pictures.append((self.index, p)), **kw)

    def index_at(self, position_s: float) -> int:
        times = self.playback.times
        return int(np.clip(np.searchsorted(times, position_s - 0.5 / self.playback.fps), 0,
                           len(times) - 1))

    def shown(self, more_than: int) -> Callable[[], bool]:
        return until(lambda: self.window.frames_shown > more_than,
                     f"more than {more_than} frames shown")


def test_session_window_plays_pauses_steps_scrubs_orbits_and_closes(display, playback):
    from xvfb_helpers import read_xwd

    _, framebuffer = display
    sw = SessionWindow(playback)
    w, clock, root = sw.window, sw.clock, sw.window.root
    fw, fh = w.layout.face_size
    seen: dict[str, object] = {}

    def scenario() -> Iterator[Step]:
        # Playing: frames arrive and move on through the session.
        yield sw.shown(8)
        assert clock.playing and w.play.cget("text") == "Pause"
        assert len(set(sw.requested)) >= 3, sw.requested
        assert all(p.shape == (480, 640, 3) and p.dtype == np.uint8 for _, p in sw.pictures)

        # Space pauses: the clock stops and no new picture is drawn.
        root.focus_force()
        yield until(lambda: root.focus_get() is not None, "the keyboard focus")
        key(w, "space")
        assert not clock.playing and w.play.cget("text") == "Play"
        yield 0.1
        position, frames = clock.position_s, w.frames_shown
        yield 0.6
        assert clock.position_s == position, "the clock moved while paused"
        assert w.frames_shown == frames, "pictures kept coming while paused"

        # Dragging the slider's handle a third of the way along (or two thirds, whichever is
        # further) scrubs there, still paused.
        s = w.slider
        x0, y0 = (int(v) for v in s.coords(clock.position_s))
        assert s.identify(x0, y0).endswith("slider"), s.identify(x0, y0)
        x1 = max((s.winfo_width() // 3, 2 * s.winfo_width() // 3), key=lambda x: abs(x - x0))
        target = float(s.get(x1, y0))
        assert abs(sw.index_at(target) - sw.index) >= 5
        drag(s, (x0, y0), (x1, y0))
        assert clock.position_s == pytest.approx(target, abs=1e-6) and not clock.playing
        yield sw.shown(frames)
        yield 0.3
        assert sw.index == sw.index_at(target) and sw.pictures[-1][0] == sw.index
        here, frames = sw.index, w.frames_shown

        # Right steps exactly one frame, Left one back.
        key(w, "Right")
        yield sw.shown(frames)
        yield 0.3
        assert sw.index == here + 1 and w.frames_shown == frames + 1, (sw.index, here)
        assert clock.position_s == pytest.approx(target + 1 / 30) and not clock.playing
        key(w, "Left")
        yield sw.shown(frames + 1)
        yield 0.3
        assert sw.index == here and w.frames_shown == frames + 2
        home = sw.pictures[-1][1]

        # Dragging the picture orbits the face: a new picture of the same frame.
        frames = w.frames_shown
        drag(w.picture, (150, 150), (230, 170))
        yield sw.shown(frames)
        orbit_index, orbited = sw.pictures[-1]
        assert orbit_index == here
        moved = changed(home[:fh, :fw], orbited[:fh, :fw])
        assert moved.sum() > 3000, f"dragging changed only {moved.sum()} pixels"
        assert not changed(home[:, fw:], orbited[:, fw:]).any(), "the AU panel changed"

        # The wheel zooms in: the face grows.
        frames = w.frames_shown
        w.picture.event_generate("<Button-4>", x=200, y=200)
        w.picture.event_generate("<Button-4>", x=200, y=200)
        yield sw.shown(frames)
        yield 0.2
        zoomed = sw.pictures[-1][1]
        assert face_mask(zoomed[:fh, :fw]).sum() > 1.1 * face_mask(orbited[:fh, :fw]).sum()

        # A double click (somewhere else than the drag began) puts the view back.
        frames = w.frames_shown
        click(w.picture, 320, 330)
        click(w.picture, 320, 330)
        yield sw.shown(frames)
        yield 0.2
        assert sw.pictures[-1][0] == here
        back = sw.pictures[-1][1]
        assert np.abs(back.astype(int) - home.astype(int)).max() <= 2, \
            "double-click did not restore the first view"

        # The screen shows exactly that picture, a face and the AU panel.
        yield 0.3
        shot = read_xwd(framebuffer)
        px, py = w.picture.winfo_rootx(), w.picture.winfo_rooty()
        on_screen = shot[py:py + 480, px:px + 640]
        assert on_screen.shape == back.shape, (px, py, shot.shape)
        assert np.abs(on_screen.astype(int) - back.astype(int)).mean() < 1.0, \
            "the screen does not show the window's picture"
        face, panel = on_screen[:fh, :fw], on_screen[:fh, fw:]
        assert skin(face).mean() > 0.1, "no face on the screen"
        assert skin(panel).sum() == 0
        assert exactly(panel, AU_BAR_BG).sum() > 18 * 100, "no AU bars on the screen"
        if playback.aus[0][here].max() > 0.2:
            assert exactly(panel, AU_BAR).sum() > 50, "the AU bars are empty"
        rx, ry = root.winfo_rootx(), root.winfo_rooty()
        outside = np.ones(shot.shape[:2], bool)
        outside[ry:ry + root.winfo_height(), rx:rx + root.winfo_width()] = False
        assert skin(shot)[outside].sum() == 0, "skin outside the window"

        # The speed menu sets the clock's speed; space plays again.
        menu = option_menu(w)
        menu.nametowidget(menu.cget("menu")).invoke("2x")
        assert clock.speed == 2.0 and w.speed.get() == "2x"
        key(w, "space")
        assert clock.playing and w.play.cget("text") == "Pause"
        frames = w.frames_shown
        yield sw.shown(frames + 3)

        # quit_after_s closes the window by itself.
        seen["closing_at"] = time.monotonic()
        w.quit_after_s = seen["closing_at"] - w._start + 0.5
        yield until(lambda: False, "the window to close by itself")

    started = time.monotonic()
    shown = Script(w, scenario).run()
    closed = time.monotonic()
    assert "closing_at" in seen, "the scenario did not get to its end"
    assert 0.45 <= closed - seen["closing_at"] < WAIT_S, "quit_after_s did not close it"
    assert shown == w.frames_shown == len(sw.pictures) > 0
    assert closed - started < 5 * WAIT_S
    import tkinter

    with pytest.raises(tkinter.TclError):
        root.winfo_exists()  # destroyed




def test_space_still_plays_after_clicking_the_pause_button(display, playback):
    sw = SessionWindow(playback, size=(480, 320), quit_after_s=WAIT_S)
    w, clock = sw.window, sw.clock

    toggles: list[bool] = []
    toggle = clock.toggle

    def counted() -> bool:
        toggles.append(toggle())
        return toggles[-1]

    clock.toggle = counted
    seen: dict[str, bool] = {}

    def scenario() -> Iterator[Step]:
        yield sw.shown(3)
        w.root.focus_force()  # the window has the focus, as after a click under a desktop
        yield until(lambda: w.root.focus_get() is not None, "the keyboard focus")
        click(w.play, 5, 5)
        assert not clock.playing and toggles == [False], "clicking Pause did not pause"
        yield 0.2
        key(w, "space")
        yield 0.3
        seen["playing"] = clock.playing
        w.close()

    Script(w, scenario).run()
    if len(toggles) < 2:
        pytest.fail("the space key never reached the window", pytrace=False)
    assert seen["playing"], ("space after clicking the Pause button did not play again "
                             f"(play/pause toggled {len(toggles) - 1} times)")




def test_right_steps_one_session_frame_at_any_fps(display, dataset, monkeypatch, capsys):
    import imucap.viewers.window as window_module

    shown_times: list[float] = []
    steps: list[str] = []  # what Right did when it did not step one frame

    original = window_module.FaceWindow

    class Scripted(original):
        def __init__(self, *args, **kw) -> None:
            super().__init__(*args, **kw)
            inner = self.next_frame

            def next_frame():
                frame = inner()
                if frame is not None:
                    shown_times.append(frame.overlay.time_s)
                return frame

            self.next_frame = next_frame

        def run(self) -> int:
            w = self

            def scenario() -> Iterator[Step]:
                yield until(lambda: w.frames_shown > 3, "frames")
                w.root.focus_force()
                yield until(lambda: w.root.focus_get() is not None, "the keyboard focus")
                key(w, "space")
                w.timeline.seek(0.5)
                yield 0.3
                if w.timeline.playing or shown_times[-1] != pytest.approx(0.5):
                    pytest.fail("space did not pause at 0.5 s", pytrace=False)
                for _ in range(3):
                    before = shown_times[-1]
                    key(w, "Right")
                    yield 0.3
                    if shown_times[-1] != pytest.approx(before + 0.1):
                        steps.append(f"Right went from {before:.3f} s to "
                                     f"{shown_times[-1]:.3f} s at 10 fps")
                w.close()

            return Script(self, scenario).run(lambda: original.run(self))

    monkeypatch.setattr(window_module, "FaceWindow", Scripted)
    code = main(["view", "session", str(dataset), "--session", SESSION, "--no-model",
                 "--fps", "10", "--size", "480x320", "--quit-after", str(WAIT_S)])
    _, err = capsys.readouterr()
    if code != 0:
        pytest.fail(f"exit {code}: {err}", pytrace=False)
    assert not steps, steps


# --- 4, 5, 7. the commands as real processes on the virtual screen -----------------------------


def imucap_view(display: str, *argv: str) -> subprocess.Popen:
    env = dict(os.environ, DISPLAY=display)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.Popen([sys.executable, "-m", "imucap.cli.main", "view", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT_S * 2)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"imucap view did not close by itself: {err[-2000:]}")
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err, err
    return out, err


def test_view_session_command_shows_the_session_and_closes(screen, dataset):
    from xvfb_helpers import wait_for_screen

    display, framebuffer = screen
    proc = imucap_view(display, "session", str(dataset), "--session", SESSION, "--no-model",
                       "--quit-after", "6")

    def everything(s: np.ndarray) -> bool:
        return looks_like_a_face(s) and dark_blue(s).sum() > 100 and \
            exactly(s, AU_BAR_BG).sum() > 18 * 100

    shot = wait_for_screen(framebuffer, everything, timeout_s=WAIT_S, proc=proc)
    out, _ = finish(proc)
    m = re.search(r"showed (\d+) frames of ds/s000_00", out)
    assert m and int(m.group(1)) > 0, out
    assert looks_like_a_face(shot), "no face on the screen while imucap view session ran"
    assert dark_blue(shot).sum() > 100, "the session's sensors are not on the screen"
    assert exactly(shot, AU_BAR_BG).sum() > 18 * 100, "no AU panel on the screen"


def test_view_placement_command_shows_the_sensors_and_their_axes(screen):
    from xvfb_helpers import wait_for_screen

    display, framebuffer = screen

    def everything(s: np.ndarray) -> bool:
        return looks_like_a_face(s) and dark_blue(s).sum() > 500 and all(
            axis_colour(s, a).sum() > 50 for a in "xyz")

    proc = imucap_view(display, "placement", "imusic11", "--quit-after", "5")
    shot = wait_for_screen(framebuffer, everything, timeout_s=WAIT_S, proc=proc)
    out, _ = finish(proc)
    lines = out.splitlines()
    assert len(lines) == 11, out
    for line in lines:
        assert re.fullmatch(r"\S+\s+x\s+-?[\d.]+ cm\s+y\s+-?[\d.]+ cm\s+z\s+-?[\d.]+ cm", line), \
            line
    assert {ln.split()[0] for ln in lines} >= {"mentalis", "frontalis_l", "buccinator_r"}
    assert looks_like_a_face(shot), "no face on the screen"
    assert dark_blue(shot).sum() > 500, "no sensor boxes on the screen"
    counts = {a: int(axis_colour(shot, a).sum()) for a in "xyz"}
    assert all(n > 50 for n in counts.values()), f"axis colours on the screen: {counts}"


def test_view_live_device_command_shows_live_frames(screen):
    from xvfb_helpers import wait_for_screen

    display, framebuffer = screen
    proc = imucap_view(display, "live", "--device", "emulator:imusic11", "--no-model",
                       "--quit-after", "8")
    shot = wait_for_screen(framebuffer, lambda s: looks_like_a_face(s) and
                           dark_blue(s).sum() > 100, timeout_s=WAIT_S, proc=proc)
    out, _ = finish(proc)
    m = re.search(r"showed (\d+) live frames from emulator:imusic11", out)
    assert m and int(m.group(1)) > 0, out
    assert looks_like_a_face(shot), "no face on the screen"
    assert dark_blue(shot).sum() > 100, "the device's sensors are not on the screen"


# --- 6. Live Link packets ------------------------------------------------------------------------


class Phone:
    """Sends Live Link Face packets 60 times a second, like the iPhone app: ``weights`` is
    what the face does now."""

    def __init__(self, port: int) -> None:
        from imucap.sinks.livelink import LiveLinkSender

        self.sender = LiveLinkSender("127.0.0.1", port, subject="phone")
        self.weights = np.zeros(52, np.float32)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def jaw(self, value: float) -> None:
        w = np.zeros(52, np.float32)
        w[JAW] = value
        self.weights = w

    def _run(self) -> None:
        from imucap.inference.engine import FaceFrame

        t0 = time.monotonic()
        while not self._stop.wait(1 / 60):
            self.sender.send(FaceFrame(time_s=time.monotonic() - t0, weights=self.weights,
                                       confidence=1.0))

    def __enter__(self) -> Phone:
        self.sender.open()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sender.close()


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"waited {WAIT_S:.0f} s in vain for {what}"
        time.sleep(0.02)


def test_livelink_source_follows_the_packets():
    from imucap.viewers.live import LiveLinkLive

    port = free_udp_port()
    source = LiveLinkLive(f"livelink://127.0.0.1:{port}")
    assert (source.host, source.port) == ("127.0.0.1", port)
    with source, Phone(port) as phone:
        first = source.latest()
        assert not first.ended and not first.weights.any()
        phone.jaw(1.0)
        wait_for(lambda: source.latest().weights[JAW] == 1.0, "jawOpen 1 to arrive")
        state = source.latest()
        assert state.aus[AU_NAMES.index("AU26")] > 0, "an open jaw without AU26 Jaw Drop"
        assert np.count_nonzero(state.weights) == 1
        wait_for(lambda: "packets/s from phone" in source.latest().status, "the status")
        phone.jaw(0.0)
        wait_for(lambda: source.latest().weights[JAW] == 0.0, "jawOpen 0 to arrive")
        assert not source.latest().aus.any()
    assert source._thread is None, "stop() left the thread running"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # the port is free again


def test_livelink_window_opens_the_mouth_when_the_phone_does(display):
    from imucap.viewers.live import LiveLinkLive
    from imucap.viewers.look import FaceLook
    from imucap.viewers.overlay import OverlayState
    from imucap.viewers.scene import PanelState, Scene
    from imucap.viewers.window import FaceWindow, WindowFrame

    port = free_udp_port()
    source = LiveLinkLive(f"livelink://127.0.0.1:{port}")
    jaws: list[float] = []  # jawOpen of each frame handed to the window
    pictures: list[tuple[float, np.ndarray]] = []

    def next_frame() -> WindowFrame:
        st = source.latest()
        jaws.append(float(st.weights[JAW]))
        return WindowFrame([PanelState(st.weights)],
                           OverlayState(aus=st.aus, time_s=st.time_s, status=st.status))

    with source, Phone(port) as phone:
        window = FaceWindow("imucap test live", Scene(FaceLook(the_rig()), 1), next_frame,
                            size=(640, 480),
                            on_frame=lambda p: pictures.append((jaws[-1], p)))
        fw, fh = window.layout.face_size
        got: dict[str, np.ndarray] = {}

        def showing(jaw: float) -> Callable[[], bool]:
            return until(lambda: bool(pictures) and pictures[-1][0] == jaw,
                         f"a picture with jawOpen {jaw}")

        def scenario() -> Iterator[Step]:
            yield until(lambda: "packets/s" in source.latest().status, "packets")
            yield showing(0.0)
            got["closed"] = pictures[-1][1]
            phone.jaw(1.0)
            yield showing(1.0)
            got["open"] = pictures[-1][1]
            phone.jaw(0.0)
            yield showing(0.0)
            got["closed again"] = pictures[-1][1]
            window.root.focus_force()
            yield until(lambda: window.root.focus_get() is not None, "the keyboard focus")
            key(window, "Escape")
            yield until(lambda: False, "Escape to close the window")

        Script(window, scenario).run()
    closed, opened = got["closed"][:fh, :fw], got["open"][:fh, :fw]
    x0, y0, x1, y1 = bbox(face_mask(closed))
    h = y1 - y0
    diff = changed(closed, opened)
    assert diff[:y0 + int(0.4 * h)].sum() == 0, "the forehead and eyes moved"
    assert diff[y0 + int(0.6 * h):].sum() > 1500, "the mouth did not open on the screen"
    assert bbox(face_mask(opened))[3] > y1 + 3, "the chin did not drop"
    assert not changed(closed, got["closed again"][:fh, :fw]).any(), "the mouth did not close"
    # The AU panel shows the open jaw as a bar.
    assert exactly(got["open"][:fh, fw:], AU_BAR).sum() > exactly(got["closed"][:fh, fw:],
                                                                    AU_BAR).sum() + 50


def test_view_live_from_livelink_command_shows_the_phones_face(screen):
    from xvfb_helpers import wait_for_screen

    display, framebuffer = screen
    port = free_udp_port()
    with Phone(port) as phone:
        phone.jaw(1.0)
        proc = imucap_view(display, "live", "--from", f"livelink://127.0.0.1:{port}",
                           "--quit-after", "3")
        shot = wait_for_screen(framebuffer, looks_like_a_face, timeout_s=WAIT_S, proc=proc)
        out, _ = finish(proc)
    m = re.search(rf"showed (\d+) live frames from livelink://127.0.0.1:{port}$", out.strip())
    assert m and int(m.group(1)) > 0, out
    assert looks_like_a_face(shot), "no face on the screen"
    assert dark_blue(shot).sum() == 0, "Live Link has no sensors to show"
    assert exactly(shot, AU_BAR).sum() > 200, "the open jaw's AU bars are not on the screen"


@pytest.mark.parametrize("uri, message", [
    ("livelink://host:notaport", "the port must be a number"),
    ("http://x:1", "expected livelink://[HOST][:PORT]"),
])
def test_bad_livelink_uris_are_one_line_errors(display, uri, message, capsys):
    from imucap.truth.livelink import parse_livelink_uri

    with pytest.raises(ImucapError, match=re.escape(message)):
        parse_livelink_uri(uri)
    # Loopback unless the user names an address: the receiver listens on a network.
    assert parse_livelink_uri("livelink://:11111") == ("127.0.0.1", 11111)
    assert parse_livelink_uri("livelink://0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_livelink_uri("livelink://") == ("127.0.0.1", 11111)
    code = main(["view", "live", "--from", uri])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"imucap: error: --from {uri}: "), err
    assert message in lines[0]


# --- 7. a device through the model ---------------------------------------------------------------


def live_children() -> set[int]:
    """This process's child processes that still run (Linux /proc), except multiprocessing's
    resource tracker, which stays for the life of the process by design."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and \
                b"resource_tracker" not in cmdline:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_device_live_runs_the_model_and_stops_its_process():
    pytest.importorskip("torch", reason="the live model needs the [train] extra")
    from imucap.viewers.live import DeviceLive

    before = live_children()
    source = DeviceLive("emulator:imusic11", model="default")
    source.start()
    try:
        assert len(source.sites) == 11 and "mentalis" in source.sites
        child = source._proc.pid
        assert child in live_children()
        wait_for(lambda: "face" in source.latest().status and source.latest().weights.any(),
                 "faces from the model")
        state = source.latest()
        assert not state.ended, state.status
        assert re.search(r"IMU \d+/s  face \d+/s  latency p50 \d+ ms", state.status), state.status
        assert state.accel.shape == state.gyro.shape == (11, 3)
        assert np.isfinite(state.weights).all() and (0 <= state.weights).all()
        assert state.aus.shape == (18,)
    finally:
        source.stop()
    assert child not in live_children() and live_children() <= before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_device_live_with_a_bad_device_is_one_line_and_leaves_no_process():
    from imucap.viewers.live import DeviceLive

    before = live_children()
    started = time.monotonic()
    with pytest.raises(ImucapError) as info:
        DeviceLive("emulator:nope", model=None).start()
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert "unknown site preset 'nope'" in message and "imusic11" in message, message
    assert time.monotonic() - started < WAIT_S, "it waited for a device that cannot start"
    assert live_children() <= before, "the device process is still there"
