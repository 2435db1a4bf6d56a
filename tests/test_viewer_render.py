"""Headless rendering checked by its pixels, the way a person would check a frame: the face is
in frame, jawOpen moves the chin and not the forehead, a left blink shows on the image's right,
error colouring marks only what differs, sensor glyphs and AU bars appear; then ``imucap
render`` end to end (sessions and takes to MP4 and PNG) and its one-line errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open3d", reason="the viewers need Open3D (pip install 'imucap[viewer]')")

from imucap.cli.main import main  # noqa: E402
from imucap.viewers.look import BACKGROUND, FaceLook, error_albedo, vertex_error  # noqa: E402
from imucap.viewers.offscreen import OffscreenRenderer  # noqa: E402
from imucap.viewers.scene import PanelState, Scene, ViewerError  # noqa: E402
from imucap.vocab import ARKIT_NAMES, AU_NAMES  # noqa: E402

BG = np.round(BACKGROUND * 255).astype(int)  # (237, 237, 240)
SESSION = "s000_00"


def weights(**named: float) -> np.ndarray:
    w = np.zeros(52, np.float32)
    for name, value in named.items():
        w[ARKIT_NAMES.index(name)] = value
    return w


def face_mask(img: np.ndarray) -> np.ndarray:
    """Pixels that are not background."""
    return np.abs(img.astype(int) - BG).sum(-1) > 12


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` inclusive of the true pixels."""
    ys, xs = np.nonzero(mask)
    assert len(xs), "nothing drawn"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def changed(a: np.ndarray, b: np.ndarray, threshold: int = 30) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(-1) > threshold


def red(img: np.ndarray) -> np.ndarray:
    """Pixels in the error colour's red (skin is R/G ≈ 1.3, the orange midpoint ≈ 1.5)."""
    i = img.astype(int)
    return (i[..., 0] > 120) & (i[..., 0] > 2.2 * i[..., 1]) & (i[..., 0] > 2.2 * i[..., 2])


def dark_blue(img: np.ndarray) -> np.ndarray:
    """The sensor boxes' slate colour: dark and bluer than red (shaded skin is never bluer)."""
    i = img.astype(int)
    return (i[..., 2] > i[..., 0] + 8) & (i.max(-1) < 110)


def orange(img: np.ndarray) -> np.ndarray:
    """The acceleration vectors' orange."""
    i = img.astype(int)
    return (i[..., 0] > 200) & (i[..., 1] > 90) & (i[..., 1] < 160) & (i[..., 2] < 70)


def skin(img: np.ndarray) -> np.ndarray:
    i = img.astype(int)
    return (i[..., 0] > i[..., 1] + 15) & (i[..., 1] > i[..., 2] + 8) & (i[..., 0] > 80)


# --- fixtures: one rig, renderers shared by the module ---------------------------------------


@pytest.fixture(scope="module")
def rig():
    from imucap.datasets.builtin_rig import builtin_rig

    return builtin_rig()


@pytest.fixture(scope="module")
def make_renderer():
    made: list[OffscreenRenderer] = []

    def make(scene: Scene, width: int = 640, height: int = 480) -> OffscreenRenderer:
        try:
            r = OffscreenRenderer(scene, width, height)
        except ViewerError as exc:
            pytest.skip(f"cannot render here: {exc}")
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="module")
def frontal(rig, make_renderer):
    """One face seen straight on (yaw 0): left and right are clean halves."""
    return make_renderer(Scene(FaceLook(rig, yaw_deg=0), 1))


@pytest.fixture(scope="module")
def quarter(rig, make_renderer):
    """One face in the default three-quarter view, as every viewer shows it."""
    return make_renderer(Scene(FaceLook(rig), 1))


@pytest.fixture(scope="module")
def frontal_neutral(frontal):
    img = frontal.render([PanelState(weights())])
    return img, bbox(face_mask(img))


def render1(renderer: OffscreenRenderer, w: np.ndarray, **kw) -> np.ndarray:
    return renderer.render([PanelState(w, **kw)])


# --- a. the face is in frame ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["frontal", "quarter"])
def test_the_face_is_whole_and_large_in_the_frame(which, request):
    renderer = request.getfixturevalue(which)
    img = render1(renderer, weights())
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    corners = img[[0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
    assert np.abs(corners - BG).max() <= 2, "the background is not BACKGROUND"
    mask = face_mask(img)
    x0, y0, x1, y1 = bbox(mask)
    margin = 8
    assert x0 >= margin and y0 >= margin and x1 < 640 - margin and y1 < 480 - margin, \
        f"the face touches the edge: bbox {(x0, y0, x1, y1)}"
    assert mask.mean() > 0.10, f"the face covers only {mask.mean():.1%} of the frame"
    assert (y1 - y0) > 0.55 * 480, "the face is small in the frame"
    # The face is in the middle, and it is a face: mostly skin.
    assert abs((x0 + x1) / 2 - 320) < 64 and abs((y0 + y1) / 2 - 240) < 48
    assert skin(img)[mask].mean() > 0.9


def test_the_most_open_jaw_stays_in_frame(frontal, quarter):
    for renderer in (frontal, quarter):
        x0, y0, x1, y1 = bbox(face_mask(render1(renderer, weights(jawOpen=1.0,
                                                                  mouthStretchLeft=1.0))))
        assert x0 > 4 and y0 > 4 and x1 < 635 and y1 < 475


def test_two_panels_are_two_whole_faces_side_by_side(rig, make_renderer):
    renderer = make_renderer(Scene(FaceLook(rig), 2))
    img = renderer.render([PanelState(weights()), PanelState(weights())])
    mask = face_mask(img)
    cols = np.flatnonzero(mask.any(axis=0))
    gaps = np.flatnonzero(np.diff(cols) > 1)
    assert len(gaps) == 1, "expected two separate faces"
    x0, y0, x1, y1 = bbox(mask)
    assert x0 >= 4 and y0 >= 4 and x1 < 636 and y1 < 476
    left, right = mask[:, :cols[gaps[0]] + 1].sum(), mask[:, cols[gaps[0] + 1]:].sum()
    assert 0.8 < left / right < 1.25, "the faces differ in size"


# --- b. jawOpen moves the chin, not the forehead -----------------------------------------------


def test_jaw_open_changes_the_mouth_and_chin_only(frontal, frontal_neutral):
    base, (x0, y0, x1, y1) = frontal_neutral
    h = y1 - y0
    opened = render1(frontal, weights(jawOpen=1.0))
    diff = changed(opened, base)
    upper = diff[:y0 + int(0.4 * h)]  # forehead and eyes
    lower = diff[y0 + int(0.6 * h):]  # mouth and chin (and below, where the chin goes)
    assert upper.sum() == 0, f"{upper.sum()} pixels changed above the eyes"
    assert lower.sum() > 2000, "jawOpen barely changed the mouth and chin"
    assert bbox(face_mask(opened))[3] > y1 + 5, "the chin did not drop"
    half = render1(frontal, weights(jawOpen=0.5))
    assert 0 < changed(half, base).sum() < diff.sum(), "half open is not in between"


# --- c. left is the face's left: the image's right ---------------------------------------------


@pytest.mark.parametrize("left, right", [("eyeBlinkLeft", "eyeBlinkRight"),
                                         ("mouthSmileLeft", "mouthSmileRight")])
def test_the_faces_left_shows_on_the_images_right(frontal, frontal_neutral, left, right):
    base, (x0, _, x1, _) = frontal_neutral
    mid = (x0 + x1) // 2
    for name, own_side in ((left, "right"), (right, "left")):
        diff = changed(render1(frontal, weights(**{name: 1.0})), base)
        image_left, image_right = diff[:, :mid].sum(), diff[:, mid:].sum()
        expected, other = (image_right, image_left) if own_side == "right" else \
            (image_left, image_right)
        assert expected > 200, f"{name} barely changed the image"
        assert expected > 5 * other, \
            f"{name}: {image_left} pixels changed on the image's left, {image_right} on its right"


def test_the_three_quarter_view_turns_the_faces_left_toward_the_camera(quarter):
    base = render1(quarter, weights())
    area = {name: changed(render1(quarter, weights(**{name: 1.0})), base).sum()
            for name in ("eyeBlinkLeft", "eyeBlinkRight")}
    assert area["eyeBlinkLeft"] > 1.2 * area["eyeBlinkRight"], area


# --- d. error colouring ---------------------------------------------------------------------------


def test_error_colouring_marks_the_second_face_where_it_differs(rig, make_renderer):
    look = FaceLook(rig)
    renderer = make_renderer(Scene(look, 2))
    cam = renderer.camera
    split = int(cam.project(np.array([sum(renderer.scene.offsets) / 2, 0.0, 0.0]))[0])
    truth, shown = weights(), weights(jawOpen=1.0)
    error = vertex_error(look.vertices(shown), look.vertices(truth))
    img = renderer.render([PanelState(truth), PanelState(shown, albedo=error_albedo(error))])
    r = red(img)
    assert r[:, :split].sum() == 0, "red on the truth panel"
    assert r[:, split:].sum() > 1500, "no red where the faces differ"
    face2 = face_mask(img[:, split:])
    _, y0, _, y1 = bbox(face2)
    ys = np.nonzero(r[:, split:])[0]
    assert ys.min() > y0 + 0.5 * (y1 - y0), "red above the mouth, where nothing moved"
    same = error_albedo(vertex_error(look.vertices(truth), look.vertices(truth)))
    img = renderer.render([PanelState(truth), PanelState(truth, albedo=same)])
    assert red(img).sum() == 0
    assert skin(img)[face_mask(img)].mean() > 0.9


# --- e. sensor glyphs ---------------------------------------------------------------------------


def test_sensor_boxes_sit_where_the_camera_projects_them(rig, quarter, make_renderer):
    from imucap.datasets.placement import preset
    from imucap.viewers.glyphs import SiteGlyphs

    look = quarter.scene.look
    attachment = preset("imusic11", rig).attach(rig)
    renderer = make_renderer(Scene(look, 1, glyphs=SiteGlyphs(look, attachment)))
    plain = render1(quarter, weights())
    with_boxes = render1(renderer, weights())
    n = len(attachment.names)
    assert dark_blue(plain).sum() == 0
    assert dark_blue(with_boxes).sum() > 40 * n
    dark = dark_blue(with_boxes)
    centres = renderer.scene.arrays(0, PanelState(weights())).glyphs.centres
    for name, (u, v) in zip(attachment.names, renderer.camera.project(centres), strict=True):
        u, v = int(round(u)), int(round(v))
        near = dark[max(v - 7, 0):v + 8, max(u - 7, 0):u + 8].sum()
        assert near >= 5, f"no box drawn near {name}'s projected centre ({u}, {v})"
    # Acceleration vectors appear as orange lines when the frame has them.
    assert orange(with_boxes).sum() == 0
    accel = np.tile([[5.0, 0.0, 0.0]], (n, 1))
    assert orange(render1(renderer, weights(), accel=accel)).sum() > 20 * n


# --- f. the composed frame --------------------------------------------------------------------


def test_compose_fills_the_layout_and_draws_au_bars():
    from imucap.viewers.overlay import Layout, OverlayState, compose

    layout = Layout(640, 480)
    fw, fh = layout.face_size
    assert (fw, fh) == (640 - layout.au_width, 480 - layout.strip_height)
    faces = np.random.default_rng(0).integers(0, 256, (fh, fw, 3), dtype=np.uint8)
    blue = np.array([52, 110, 200])

    def bar_pixels(aus):
        out = compose(faces, layout, OverlayState(aus=aus))
        assert out.shape == (480, 640, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out[:fh, :fw], faces)  # the render is pasted unchanged
        return np.all(out.astype(int) == blue, axis=-1)

    assert bar_pixels(np.zeros(18)).sum() == 0
    k = AU_NAMES.index("AU26")
    aus = np.zeros(18)
    aus[k] = 5.0
    full = bar_pixels(aus)
    ys, xs = np.nonzero(full)
    assert len(xs) > 100 and xs.min() >= fw, "the bar is not in the AU panel"
    row = (fh - 36 - 4) / len(AU_NAMES)
    assert 36 + k * row <= ys.min() and ys.max() <= 36 + (k + 1) * row, "bar on the wrong row"
    aus[k] = 2.5
    half = bar_pixels(aus)
    width_full = np.ptp(xs) + 1
    width_half = np.ptp(np.nonzero(half)[1]) + 1
    assert width_half == pytest.approx(width_full / 2, abs=3)
    with pytest.raises(ValueError, match="layout wants"):
        compose(faces[:-1], layout, OverlayState())


# --- g. imucap render end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gl(frontal):
    """Rendering works here (else the module's renderers skip), and ffmpeg is found."""
    from imucap.viewers.video import find_ffmpeg

    try:
        find_ffmpeg()
    except ViewerError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("render") / "ds"
    synthesize(path, subjects=1, minutes=0.03, imu_rate_hz=100, seed=1)  # 1.8 s, 11 sensors
    return path


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["render", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_mp4(path: Path) -> tuple[dict, list[np.ndarray]]:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
    return meta, frames


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_render_a_session_to_mp4_and_png(gl, dataset, tmp_path, capsys):
    out, pngs = tmp_path / "clip.mp4", tmp_path / "frames"
    code, text, err = cli(capsys, dataset, "--session", SESSION, "--no-model", "-o", out,
                          "--png-dir", pngs, "--size", "320x240", "--end", "1")
    assert code == 0, err
    assert "31 frames 320x240 at 30 fps" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "frames"]
    meta, frames = read_mp4(out)
    assert meta["size"] == (320, 240) and meta["fps"] == pytest.approx(30.0)
    assert len(frames) == 31
    files = sorted(pngs.iterdir())
    assert [p.name for p in files] == [f"frame_{k:05d}.png" for k in range(31)]
    for k in (0, 15, 30):
        png = read_png(files[k])
        assert png.shape == (240, 320, 3)
        face = png[:206, :214]  # the 3-D render: left of the AU panel, above the strip
        mask = face_mask(face)
        assert 0.1 < mask.mean() < 0.7, "no face in the frame"
        assert skin(face)[mask].mean() > 0.6, "the face is not skin coloured"
        assert dark_blue(face).sum() > 30, "the dataset's sensors are not shown"
        # The video shows the same picture (not mirrored, not BGR), up to compression.
        assert np.abs(frames[k].astype(int) - png.astype(int)).mean() < 4
    # Frames follow the session: the face moves between the first and the last.
    assert changed(read_png(files[0])[:206, :214], read_png(files[30])[:206, :214]).sum() > 20


def test_render_a_livelink_take(gl, tmp_path, capsys):
    from imucap.export import FaceTrack, write_livelink_csv

    n = 61  # one second at 60 fps; the jaw opens over it
    w = np.zeros((n, 52), np.float32)
    w[:, ARKIT_NAMES.index("jawOpen")] = np.linspace(0.0, 1.0, n)
    take = tmp_path / "take.csv"
    write_livelink_csv(take, FaceTrack(times=np.arange(n) / 60.0, weights=w, fps=60.0))
    out, pngs = tmp_path / "take.mp4", tmp_path / "frames"
    code, text, err = cli(capsys, take, "-o", out, "--png-dir", pngs, "--size", "320x240",
                          "--fps", "10")
    assert code == 0, err
    assert "11 frames 320x240 at 10 fps" in text
    meta, frames = read_mp4(out)
    assert len(frames) == 11 and meta["size"] == (320, 240)
    first, last = (read_png(pngs / f"frame_{k:05d}.png")[:206, :214] for k in (0, 10))
    x0, y0, x1, y1 = bbox(face_mask(first))
    diff = changed(first, last)
    assert diff[:y0 + int(0.4 * (y1 - y0))].sum() == 0, "the forehead moved"
    assert diff[y0 + int(0.6 * (y1 - y0)):].sum() > 100, "the jaw did not open"
    assert dark_blue(first).sum() == 0, "a take has no sensors to show"


# --- h. bad input: one line, exit 2, nothing left behind --------------------------------------


def one_line_error(code: int, err: str, message: str) -> None:
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # progress lines
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("imucap: error: "), err
    assert message in lines[0], lines[0]


def obj_rig_with_other_names(folder: Path) -> Path:
    folder.mkdir()
    square = ["v 0 0 0", "v 0.1 0 0", "v 0.1 0.1 0", "v 0 0.1 0"]
    (folder / "neutral.obj").write_text("\n".join(square + ["f 1 2 3 4"]) + "\n")
    for name in ("smile", "frown"):
        (folder / f"{name}.obj").write_text("\n".join(square) + "\n")
    return folder


@pytest.mark.parametrize("case", ["missing folder", "parent is a file", "read-only folder",
                                  "png parent missing", "avi", "odd size", "bad size",
                                  "end before start", "rig without ARKit names",
                                  "newer dataset", "ffmpeg not executable"])
def test_render_errors_are_one_line(gl, dataset, tmp_path, capsys, monkeypatch, case):
    work = tmp_path / "work"
    work.mkdir()
    args = [dataset, "--session", SESSION, "--no-model", "--size", "320x240", "--end", "0.2"]
    out = work / "clip.mp4"
    if case == "missing folder":
        out, message = work / "nowhere" / "clip.mp4", "does not exist: create it first"
    elif case == "parent is a file":
        (work / "file").write_text("x")
        out, message = work / "file" / "clip.mp4", "is not a folder"
    elif case == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked = work / "locked"
        locked.mkdir(mode=0o500)
        out, message = locked / "clip.mp4", "is not writable"
    elif case == "png parent missing":
        args += ["--png-dir", work / "no" / "frames"]
        out, message = None, "does not exist: create it first"
    elif case == "avi":
        out, message = work / "clip.avi", "imucap render writes .mp4"
    elif case == "odd size":
        args += ["--size", "321x240"]
        message = "video needs even sides, e.g. 322x240"
    elif case == "bad size":
        args += ["--size", "big"]
        message = "give WIDTHxHEIGHT"
    elif case == "end before start":
        args += ["--start", "1", "--end", "0.5"]
        message = "--end 0.5 must not come before --start 1"
    elif case == "rig without ARKit names":
        args += ["--rig", obj_rig_with_other_names(tmp_path / "rig")]
        message = "named after an ARKit blendshape (found: "
    elif case == "newer dataset":
        newer = tmp_path / "newer"
        shutil.copytree(dataset, newer)
        info = json.loads((newer / "info.json").read_text())
        info["format"] = 99
        (newer / "info.json").write_text(json.dumps(info))
        args[0] = newer
        message = "dataset format 99"
    else:  # ffmpeg not executable
        fake = tmp_path / "ffmpeg"
        fake.write_text("not a program")
        fake.chmod(0o644)
        monkeypatch.setenv("IMUCAP_FFMPEG", str(fake))
        message = f"IMUCAP_FFMPEG={fake} is not an executable file"
    code, _, err = cli(capsys, *args, *(["-o", out] if out is not None else []))
    one_line_error(code, err, message)
    if case == "rig without ARKit names":
        assert "smile" in err and "frown" in err, err
    left = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    assert left in ([], ["file"], ["locked"]), f"left behind: {left}"


def test_ffmpeg_failing_midway_leaves_no_video_and_no_part(gl, dataset, tmp_path, capsys,
                                                           monkeypatch):
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor a; do last="$a"; done\necho partial > "$last"\n'
                    'echo "x264: simulated encoder failure" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("IMUCAP_FFMPEG", str(fake))
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = cli(capsys, dataset, "--session", SESSION, "--no-model", "--size", "320x240",
                       "--end", "1", "-o", work / "clip.mp4")
    one_line_error(code, err, "ffmpeg failed writing")
    assert "simulated encoder failure" in err
    assert list(work.iterdir()) == [], "a partial video was left behind"


def test_a_failed_start_leaves_no_png_folder(gl, dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMUCAP_FFMPEG", str(tmp_path / "none"))
    code, _, err = cli(capsys, dataset, "--session", SESSION, "--no-model", "--size", "320x240",
                       "--end", "0.2", "-o", tmp_path / "clip.mp4", "--png-dir",
                       tmp_path / "frames")
    one_line_error(code, err, "is not an executable file")
    assert not (tmp_path / "frames").exists()


@pytest.mark.parametrize("case", ["ffmpeg", "png dir"])
def test_outputs_are_checked_before_the_input_is_loaded(gl, dataset, tmp_path, capsys,
                                                        monkeypatch, case):
    import imucap.viewers.playback as playback

    def never(*args, **kwargs):
        raise AssertionError("the input was loaded before the outputs were checked")

    monkeypatch.setattr(playback, "load_playback", never)
    args = [dataset, "--session", SESSION, "--size", "320x240"]
    if case == "ffmpeg":
        monkeypatch.setenv("IMUCAP_FFMPEG", str(tmp_path / "none"))
        args += ["-o", tmp_path / "clip.mp4"]
        message = "is not an executable file"
    else:
        args += ["--png-dir", tmp_path / "no" / "frames"]
        message = "does not exist"
    code, _, err = cli(capsys, *args)
    one_line_error(code, err, message)


# --- a rig from a file: the real ARKit-topology blendshape set ---------------------------------

REFERENCE_ZIP = Path(__file__).resolve().parents[2] / "shared" / "assets" / \
    "arkit_reference_blendshapes.zip"


@pytest.mark.skipif(not REFERENCE_ZIP.is_file(),
                    reason=f"shared test asset {REFERENCE_ZIP} is absent")
def test_a_loaded_arkit_rig_renders_and_its_jaw_opens(make_renderer):
    from imucap.datasets.placement import preset
    from imucap.datasets.rig_io import load_rig
    from imucap.viewers.glyphs import SiteGlyphs

    rig = load_rig(REFERENCE_ZIP)
    look = FaceLook(rig, yaw_deg=0)
    renderer = make_renderer(Scene(look, 1, glyphs=SiteGlyphs(
        look, preset("imusic11", rig).attach(rig), axes=True)))
    base = render1(renderer, weights())
    x0, y0, x1, y1 = bbox(face_mask(base))
    assert x0 > 0 and y0 > 0 and x1 < base.shape[1] - 1 and y1 < base.shape[0] - 1
    assert skin(base).mean() > 0.1, "the loaded face is not in the picture"
    assert dark_blue(base).sum() > 11 * 10, "the sensor boxes are missing"
    diff = changed(render1(renderer, weights(jawOpen=1.0)), base)
    h = y1 - y0
    assert diff[:y0 + int(0.35 * h)].sum() == 0, "jawOpen moved the forehead"
    assert diff[y0 + int(0.6 * h):].sum() > 1000, "jawOpen did not open the loaded rig's mouth"


def test_without_torch_a_session_with_the_model_says_which_extra(dataset):
    # As in an install with [viewer] but without [train]: the prediction cannot run, and the
    # user is told what to install or how to show the truth alone, in one line.
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['safetensors'] = None\n"
            "from imucap.viewers.playback import load_playback\n"
            "from imucap.errors import ImucapError\n"
            "try:\n"
            f"    load_playback({str(dataset)!r}, session={SESSION!r}, model='default')\n"
            "except ImucapError as exc:\n"
            "    print('error:', exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error:" in proc.stdout and "pip install 'imucap[train]'" in proc.stdout
    assert "--no-model" in proc.stdout
