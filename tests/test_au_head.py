"""Tests for the learned AU head (imucap.models.au_head) and ``imucap au-head`` / ``convert
--au-head``, on real files.

There is no OpenFace-coded video here, so "a lab's own labels" are made by a synthetic coder,
:func:`coder_labels`, from the same blendshape curves the tracks hold. It is built to differ from
imucap's fixed mapping the way a real coder or OpenFace does, and nothing in the head knows its
rules:

* calibration: every AU has its own power curve, gain and offset (a coder's grades are not a
  linear ramp of a blendshape weight), and its own presence threshold;
* relations between AUs: AU6 is coded only when the cheek rises together with a smile (not in
  disgust, where the cheek also rises); narrowed eyes in a smile are given to AU6, so AU7 is
  coded only outside smiles; AU25 is coded whenever the lips part, whatever the shape (jaw,
  raised upper lip, lowered lower lip, funnel); AU4 is suppressed during AU1+AU2; AU26 needs the
  jaw clearly open;
* as OpenFace writes it: no ``AU28_r`` column, a stretch and scattered frames with ``success``
  0 (all AU values 0), label noise, values with 2 and 1 decimals, the OpenFace 2 header with
  gaze and pose columns, video at 30 fps whose start differs from the track's.

Tracks are made-up expressive faces (:func:`imucap.datasets.motion.expression_track`: smiles,
laughs, frowns, brow raises, disgust, speech, blinks ...) written as Live Link Face CSV or
imucap JSON, the files a lab would have.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from imucap.cli.main import main
from imucap.inference.offline import FaceTrack
from imucap.vocab import AU_NAMES, NUM_AUS, au_columns, au_intensities, index_of

torch = pytest.importorskip("torch", reason="the AU head needs the [train] extra")
pytest.importorskip("safetensors", reason="the AU head needs the [train] extra")

from imucap.models import au_head as ah  # noqa: E402

VIDEO_FPS = 30.0
TRACK_FPS = 60.0
PAIR_SECONDS = 75.0
TRAIN_PAIRS = 6
HELD_OUT_PAIRS = 2
EPOCHS = 8

# OpenFace 2 FeatureExtraction's leading, gaze and pose columns (written with -aus -gaze -pose).
OPENFACE_PREFIX = (
    "frame", "face_id", "timestamp", "confidence", "success",
    "gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z",
    "gaze_angle_x", "gaze_angle_y", "pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry",
    "pose_Rz",
)  # fmt: skip


# --- the synthetic coder --------------------------------------------------------------------------

_CODER_RNG = np.random.default_rng(1234)
# Per-AU calibration: grade = 5 * clip(gain * x ** gamma + offset, 0, 1); presence threshold.
GAMMA = _CODER_RNG.uniform(0.5, 1.4, NUM_AUS)
GAIN = _CODER_RNG.uniform(1.0, 1.8, NUM_AUS)
OFFSET = _CODER_RNG.uniform(-0.12, 0.0, NUM_AUS)
PRESENCE_AT = _CODER_RNG.uniform(0.8, 2.0, NUM_AUS)


def _bs(w: np.ndarray, name: str) -> np.ndarray:
    """A blendshape, or the stronger side of a Left/Right pair."""
    if name.endswith("*"):
        return np.maximum(w[:, index_of(name[:-1] + "Left")], w[:, index_of(name[:-1] + "Right")])
    return w[:, index_of(name)]


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def coder_evidence(w: np.ndarray) -> np.ndarray:
    """What the coder sees of each AU, 0-1, before calibration ``(N, 18)``."""
    smile = _ramp(_bs(w, "mouthSmile*"), 0.15, 0.35)
    brows_up = _ramp(np.minimum(_bs(w, "browInnerUp"), _bs(w, "browOuterUp*")), 0.2, 0.4)
    lips_apart = np.maximum.reduce([
        _bs(w, "jawOpen") - _bs(w, "mouthClose"), _bs(w, "mouthUpperUp*"),
        _bs(w, "mouthLowerDown*"), 0.8 * _bs(w, "mouthFunnel")])
    e = {
        "AU01": _bs(w, "browInnerUp"), "AU02": _bs(w, "browOuterUp*"),
        "AU04": _bs(w, "browDown*") * (1.0 - brows_up),
        "AU05": _bs(w, "eyeWide*"),
        "AU06": _bs(w, "cheekSquint*") * smile,
        "AU07": _bs(w, "eyeSquint*") * (1.0 - smile),
        "AU09": _bs(w, "noseSneer*"), "AU10": _bs(w, "mouthUpperUp*"),
        "AU12": _bs(w, "mouthSmile*"), "AU14": _bs(w, "mouthDimple*"),
        "AU15": _bs(w, "mouthFrown*"), "AU17": _bs(w, "mouthShrugLower"),
        "AU20": _bs(w, "mouthStretch*"), "AU23": _bs(w, "mouthPress*"),
        "AU25": _ramp(lips_apart, 0.04, 0.3),
        "AU26": _ramp(_bs(w, "jawOpen"), 0.15, 0.6),
        "AU28": np.maximum(_bs(w, "mouthRollLower"), _bs(w, "mouthRollUpper")),
        "AU45": _bs(w, "eyeBlink*"),
    }
    return np.clip(np.stack([e[code] for code in AU_NAMES], axis=1), 0.0, 1.0)


def coder_labels(w: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The coder's intensities (noisy, 0-5) and presence (0/1, 2 % flipped) ``(N, 18)``."""
    x = coder_evidence(w)
    clean = 5.0 * np.clip(GAIN * x**GAMMA + OFFSET, 0.0, 1.0)
    presence = (clean >= PRESENCE_AT).astype(np.uint8)
    flips = rng.random(presence.shape) < 0.02
    presence[flips] ^= 1
    intensity = np.clip(clean + rng.normal(0.0, 0.15, clean.shape), 0.0, 5.0)
    return intensity, presence


def make_track(seed: int, *, start_s: float = 12.5) -> FaceTrack:
    from imucap.datasets.motion import SubjectStyle, expression_track

    rng = np.random.default_rng(seed)
    style = SubjectStyle(blink_rate_per_min=18.0, expressiveness=float(rng.uniform(1.5, 2.2)),
                         asymmetry=0.1, talk_fraction=float(rng.uniform(0.2, 0.5)))
    w = expression_track(PAIR_SECONDS, TRACK_FPS, style, rng).astype(np.float32)
    return FaceTrack(times=start_s + np.arange(len(w)) / TRACK_FPS, weights=w, fps=TRACK_FPS,
                     source=f"synthetic {seed}")


def write_openface_labels(path: Path, track: FaceTrack, seed: int, *, offset_s: float = 0.0,
                          drop: tuple[str, ...] = ("AU28_r",), extra: tuple[str, ...] = ()
                          ) -> Path:
    """The coder's labels of a video that starts ``offset_s`` into the track, in OpenFace 2's
    CSV layout (``drop``: AU columns left out; ``extra``: other AU columns, filled with 1)."""
    rng = np.random.default_rng(seed + 7)
    span = track.duration_s - offset_s
    stamps = np.arange(int(span * VIDEO_FPS)) / VIDEO_FPS
    w = track.sample(track.times[0] + offset_s + stamps)
    intensity, presence = coder_labels(w, rng)
    success = rng.random(len(stamps)) > 0.03
    success[int(10 * VIDEO_FPS):int(11.5 * VIDEO_FPS)] = False  # the face turned away
    names = au_columns(include_au28_r=True)
    values = np.concatenate([intensity, presence], axis=1)
    values[~success] = 0.0
    columns = [n for n in names if n not in drop]
    au_cols = [names.index(n) for n in columns]
    header = list(OPENFACE_PREFIX) + columns + list(extra)
    lines = [", ".join(header)]
    for k, t in enumerate(stamps):
        lead = [f"{k + 1}", "0", f"{t:.3f}", f"{0.98 if success[k] else 0.0:.2f}",
                f"{int(success[k])}"] + ["0.1"] * (len(OPENFACE_PREFIX) - 5)
        aus = [f"{values[k, c]:.2f}" if names[c].endswith("_r") else f"{values[k, c]:.1f}"
               for c in au_cols]
        lines.append(", ".join(lead + aus + ["1.00"] * len(extra)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_pair(folder: Path, seed: int, *, offset_s: float = 0.0, kind: str = "csv",
               **label_options) -> tuple[Path, Path]:
    """A track file and its label file."""
    from imucap.export import write_track

    track = make_track(seed)
    track_path = write_track(folder / f"take{seed}.{'csv' if kind == 'csv' else 'json'}", track)
    labels = write_openface_labels(folder / f"take{seed}_openface.csv", track, seed,
                                   offset_s=offset_s, **label_options)
    return track_path, labels


def pair_args(pairs) -> list[str]:
    return [a for t, lab in pairs for a in ("--pair", str(t), str(lab))]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Six training pairs (one with the video starting 0.5 s into the track, half as JSON) and
    two held-out pairs, on disk."""
    folder = tmp_path_factory.mktemp("lab")
    train = [write_pair(folder, seed, offset_s=0.5 if seed == 1 else 0.0,
                        kind="json" if seed % 2 else "csv") for seed in range(TRAIN_PAIRS)]
    held = [write_pair(folder, 100 + k) for k in range(HELD_OUT_PAIRS)]
    return folder, train, held


@pytest.fixture(scope="module")
def trained(lab, tmp_path_factory):
    """``imucap au-head train`` on the training pairs: (head folder, stdout, seconds)."""
    _, train, _ = lab
    out = tmp_path_factory.mktemp("head") / "my_head"
    offsets = [a for k in range(TRAIN_PAIRS) for a in ("--offset", "0.5" if k == 1 else "0")]
    start = time.monotonic()
    import io
    from contextlib import redirect_stderr, redirect_stdout

    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(["au-head", "train", *pair_args(train), *offsets, "-o", str(out),
                     "--epochs", str(EPOCHS), "--seed", "3", "--threads", "2"])
    seconds = time.monotonic() - start
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), seconds


def held_out_report(capsys, head: Path, held, tmp_path: Path) -> dict:
    out = tmp_path / "held_out.json"
    code, stdout, err = cli(capsys, "au-head", "eval", head, *pair_args(held), "--json", out)
    assert code == 0, err
    assert "AU head vs fixed mapping" in stdout
    return json.loads(out.read_text(encoding="utf-8"))


# --- training and evaluation through the CLI ------------------------------------------------------


def test_train_writes_the_head_and_beats_the_fixed_mapping_on_held_out_pairs(
        lab, trained, capsys, tmp_path):
    _, _, held = lab
    head, stdout, seconds = trained
    assert (head / ah.WEIGHTS_FILE).is_file() and (head / ah.META_FILE).is_file()
    meta = json.loads((head / ah.META_FILE).read_text(encoding="utf-8"))
    assert meta["au_names"] == list(AU_NAMES) and meta["format"] == ah.HEAD_FORMAT
    assert meta["training"]["val_frames"] > 0 and meta["training"]["train_frames"] > 5000
    # Progress, then the validation comparison (both columns), then the held-out one.
    assert f"epoch {EPOCHS}/{EPOCHS}" in stdout
    assert "MAE head/fixed" in stdout and "validation" in stdout
    report = held_out_report(capsys, head, held, tmp_path)
    assert report["frames"] > 4000
    mean = report["mean"]
    print(f"\nheld-out mean: MAE head {mean['head']['mae']:.3f} vs fixed {mean['fixed']['mae']:.3f}"
          f"; F1 head {mean['head']['f1']:.3f} vs fixed {mean['fixed']['f1']:.3f}; ICC head "
          f"{mean['head']['icc']:.3f} vs fixed {mean['fixed']['icc']:.3f}; r head "
          f"{mean['head']['r']:.3f} vs fixed {mean['fixed']['r']:.3f}; trained in {seconds:.1f} s")
    assert mean["head"]["mae"] < 0.75 * mean["fixed"]["mae"]
    assert mean["head"]["f1"] > mean["fixed"]["f1"] + 0.08
    assert mean["head"]["icc"] > mean["fixed"]["icc"]
    # The relation-dependent AUs are where the fixed mapping fails most; the head learns them.
    rows = {r["au"]: r for r in report["aus"]}
    for code in ("AU07", "AU25"):
        assert rows[code]["head"]["f1"] > rows[code]["fixed"]["f1"] + 0.25, code
        assert rows[code]["head"]["mae"] < 0.6 * rows[code]["fixed"]["mae"], code


def test_reports_name_the_missing_au28_intensity_and_skipped_frames(lab, trained, capsys,
                                                                     tmp_path):
    _, _, held = lab
    head, stdout, _ = trained
    assert "no labels for AU28_r in any pair" in stdout
    assert "with success 0" in stdout
    report = held_out_report(capsys, head, held, tmp_path)
    assert report["no_labels"] == {"intensity": ["AU28"], "presence": []}
    au28 = next(r for r in report["aus"] if r["au"] == "AU28")
    assert au28["head"]["mae"] is None and au28["intensity_frames"] == 0
    assert au28["presence_frames"] > 0
    for pair in report["pairs"]:
        assert pair["no_success"] > 0.015 * pair["rows"]  # 3 % at random and a 1.5 s stretch
        assert pair["used"] == pair["rows"] - pair["no_success"] - pair["outside"] \
            - pair["no_face"] - pair["other_face"]


def test_labels_with_other_columns_train_on_what_overlaps(lab, capsys, tmp_path):
    """A label file without AU05 and AU26 but with AU27_r and AU43_c: trained on the rest, and
    the report says what was missing and what was ignored."""
    folder, _, _ = lab
    track, labels = write_pair(tmp_path, 7, drop=("AU28_r", "AU05_r", "AU05_c", "AU26_r",
                                                  "AU26_c"), extra=("AU27_r", "AU43_c"))
    code, out, err = cli(capsys, "au-head", "train", "--pair", track, labels, "-o",
                         tmp_path / "head", "--epochs", "1", "--threads", "2", "--json",
                         tmp_path / "report.json")
    assert code == 0, err
    assert "no labels for AU05_c, AU05_r, AU26_c, AU26_r, AU28_r in any pair" in out
    assert "ignored AU columns outside OpenFace's set: AU27_r, AU43_c" in out
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["no_labels"] == {"intensity": ["AU05", "AU26", "AU28"],
                                   "presence": ["AU05", "AU26"]}
    assert report["ignored_columns"] == ["AU27_r", "AU43_c"]
    assert report["mean"]["head"]["mae"] is not None
    # AUs without labels keep exactly the fixed mapping (their readouts got no gradient).
    from imucap.export import read_track

    head = ah.load_au_head(tmp_path / "head")
    taken = read_track(track)
    intensity, presence = head.predict_track(taken)
    fixed = au_intensities(taken.weights)
    for code in ("AU05", "AU26", "AU28"):
        k = AU_NAMES.index(code)
        np.testing.assert_allclose(intensity[:, k], fixed[:, k], atol=1e-5)
    for code in ("AU05", "AU26"):
        k = AU_NAMES.index(code)
        away = np.abs(fixed[:, k] - 1.0) > 1e-4
        np.testing.assert_array_equal(presence[away, k], fixed[away, k] >= 1.0)


def test_label_files_without_openface_aus_fail_with_one_line(lab, capsys, tmp_path):
    _, train, _ = lab
    track = train[0][0]
    other = tmp_path / "other_set.csv"
    other.write_text("frame, timestamp, success, AU27_r, AU43_r\n1, 0.000, 1, 1.0, 0.0\n"
                     "2, 0.033, 1, 1.2, 0.0\n", encoding="utf-8")
    code, _, err = cli(capsys, "au-head", "train", "--pair", track, other, "-o", tmp_path / "h")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("imucap: error: ")
    assert "none of" in err and "AU27_r" in err and "AU43_r" in err  # what it found
    no_aus = tmp_path / "no_aus.csv"
    no_aus.write_text("frame, timestamp, success, pose_Rx\n1, 0.0, 1, 0.1\n", encoding="utf-8")
    code, _, err = cli(capsys, "au-head", "train", "--pair", track, no_aus, "-o", tmp_path / "h")
    assert code == 2 and err.count("\n") == 1 and "AU" in err
    assert not (tmp_path / "h").exists()


def test_labels_that_miss_the_track_say_to_check_the_offset(lab, capsys, tmp_path):
    _, train, _ = lab
    track, labels = train[0]
    code, _, err = cli(capsys, "au-head", "train", "--pair", track, labels, "-o", tmp_path / "h",
                       "--offset", "500")
    assert code == 2 and err.count("\n") == 1
    assert "no usable label frame" in err and "--offset 500" in err
    code, _, err = cli(capsys, "au-head", "train", "--pair", track, labels, "--pair", track,
                       labels, "--offset", "0", "--offset", "1", "--offset", "2", "-o",
                       tmp_path / "h")
    assert code == 2 and "--offset was given 3 times for 2 pairs" in err


# --- head files -----------------------------------------------------------------------------------


def test_corrupt_or_wrong_heads_fail_with_one_line(lab, trained, capsys, tmp_path):
    import shutil

    _, _, held = lab
    head, _, _ = trained

    def eval_error(folder: Path) -> str:
        code, _, err = cli(capsys, "au-head", "eval", folder, *pair_args(held[:1]))
        assert code == 2 and err.count("\n") == 1 and err.startswith("imucap: error: ")
        return err

    truncated = tmp_path / "truncated"
    shutil.copytree(head, truncated)
    data = (truncated / ah.WEIGHTS_FILE).read_bytes()
    (truncated / ah.WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    assert "damaged or truncated" in eval_error(truncated)

    garbage = tmp_path / "garbage"
    shutil.copytree(head, garbage)
    (garbage / ah.META_FILE).write_text("{not json", encoding="utf-8")
    assert "damaged (not JSON)" in eval_error(garbage)

    other_aus = tmp_path / "other_aus"
    shutil.copytree(head, other_aus)
    meta = json.loads((other_aus / ah.META_FILE).read_text(encoding="utf-8"))
    meta["au_names"] = meta["au_names"][:-1]
    (other_aus / ah.META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    assert "not OpenFace's 18" in eval_error(other_aus)

    resized = tmp_path / "resized"
    shutil.copytree(head, resized)
    meta = json.loads((resized / ah.META_FILE).read_text(encoding="utf-8"))
    meta["config"]["d_node"] = 64
    (resized / ah.META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    assert "do not fit" in eval_error(resized)

    assert "does not exist" in eval_error(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "not an AU head folder" in eval_error(tmp_path / "empty")
    with pytest.raises(ah.AuHeadError, match="damaged or truncated"):
        ah.load_au_head(truncated)


def test_a_saved_head_predicts_what_it_did_before_saving(tmp_path):
    torch.manual_seed(0)
    head = ah.TrainedAuHead(ah.AuHead(ah.AuHeadConfig(d_face=16, d_node=8, edge_dim=4)).eval())
    with torch.no_grad():  # not at the residual start, so the comparison means something
        for p in head.model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ah.save_au_head(tmp_path / "h", head)
    again = ah.load_au_head(tmp_path / "h" / ah.META_FILE)
    assert again.config == head.config
    track = make_track(5)
    a, pa = head.predict_track(track)
    b, pb = again.predict_track(track)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)


# --- convert --au-head ----------------------------------------------------------------------------


def test_convert_with_the_head_writes_the_heads_aus(lab, trained, capsys, tmp_path):
    from imucap.export import read_openface_csv, read_track

    _, _, held = lab
    head_dir, _, _ = trained
    take = held[0][0]
    out = tmp_path / "take.au.csv"
    code, stdout, err = cli(capsys, "convert", take, "-o", out, "--au-head", head_dir)
    assert code == 0, err
    assert "AUs from the head" in stdout
    written = read_openface_csv(out)
    head = ah.load_au_head(head_dir)
    track = read_track(take)
    expected, _ = head.predict_track(track)
    keep = [k for k, code in enumerate(AU_NAMES) if code != "AU28"]  # no AU28_r in the file
    np.testing.assert_allclose(written.intensities[:, keep], expected[:, keep], atol=0.0051)
    # ... which are not the fixed mapping's, except AU28's: no labels, so left as it was.
    fixed = au_intensities(track.weights)
    au28 = AU_NAMES.index("AU28")
    np.testing.assert_allclose(expected[:, au28], fixed[:, au28], atol=1e-5)
    assert np.abs(written.intensities[:, keep] - fixed[:, keep]).mean() > 0.05
    # A Live Link CSV gets its AUs, from the head, in a .au.csv beside it ...
    (tmp_path / "ll").mkdir()
    code, stdout, err = cli(capsys, "convert", take, "-o", tmp_path / "ll" / "take.csv",
                            "--au-head", head_dir)
    assert code == 0 and "AUs in take.au.csv" in stdout, err
    beside = read_openface_csv(tmp_path / "ll" / "take.au.csv")
    np.testing.assert_allclose(beside.intensities[:, keep], expected[:, keep], atol=0.0051)
    # ... and with --no-aus, output without AUs says the head is not used.
    (tmp_path / "bare").mkdir()
    code, _, err = cli(capsys, "convert", take, "-o", tmp_path / "bare" / "take.csv",
                       "--au-head", head_dir, "--no-aus")
    assert code == 0 and "--au-head is used only for AU output" in err
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["take.csv"]
    code, _, err = cli(capsys, "convert", take, "-o", tmp_path / "x.au.csv", "--au-head",
                       tmp_path / "nowhere")
    assert code == 2 and "does not exist" in err


# --- the parts ------------------------------------------------------------------------------------


def test_an_untrained_head_is_the_fixed_mapping():
    """The residual start: corrections at zero, presence at grade A."""
    track = make_track(9)
    config = ah.AuHeadConfig()
    frames, fixed, ok = ah.face_features(track, track.times, config)
    assert ok.all()
    torch.manual_seed(1)
    head = ah.TrainedAuHead(ah.AuHead(config).eval())
    intensity, prob = head.predict(frames, fixed)
    np.testing.assert_allclose(intensity, au_intensities(track.weights), atol=1e-5)
    away = np.abs(fixed - 1.0) > 1e-3
    np.testing.assert_array_equal((prob >= 0.5)[away], (fixed >= 1.0)[away])


def test_the_relation_module_makes_edges_that_depend_on_the_face():
    torch.manual_seed(2)
    model = ah.AuHead(ah.AuHeadConfig(context=0)).eval()
    track = make_track(4)
    frames, fixed, _ = ah.face_features(track, track.times[::300], model.config)
    with torch.no_grad():
        f, x = torch.from_numpy(frames), torch.from_numpy(fixed)
        b = len(f)
        g = model.encoder(torch.cat([f.reshape(b, -1), x / 5], dim=-1))
        h = model.node_norm(model.node_from_face(g).view(b, NUM_AUS, -1)
                            + model.au_embedding + (x / 5)[:, :, None] * model.fixed_embedding)
        edges = model.relations.edges(h, g)
        other_face = model.relations.edges(h, g.roll(1, dims=0))
    assert edges.shape == (b, NUM_AUS, NUM_AUS, model.config.edge_dim)
    assert not torch.allclose(edges[:, 0, 1], edges[:, 1, 0])  # directed
    assert (edges - other_face).abs().mean() > 1e-3  # the same nodes in another face
    assert ah.AuHead(ah.AuHeadConfig(rounds=0)).relations is None


def test_alignment_offset_and_frames_without_a_face():
    config = ah.AuHeadConfig(context=1)
    track = make_track(3, start_s=40.0)
    weights = track.weights.copy()
    weights[600:660] = np.nan  # 1 s without a face, 10-11 s into the track
    confidence = np.ones(len(track), np.float32)
    confidence[1200:1230] = 0.0  # half a second of no usable sensor, 20-20.5 s
    track = FaceTrack(track.times, weights, confidence=confidence, fps=track.fps)
    from imucap.export import OpenFaceAus

    stamps = np.arange(0, 90, 1 / VIDEO_FPS)  # longer than the track from the offset
    n = len(stamps)
    success = np.ones(n, bool)
    success[:5] = False
    intensities = np.full((n, NUM_AUS), 1.0, np.float32)
    intensities[:, AU_NAMES.index("AU28")] = np.nan
    labels = OpenFaceAus(frame=np.arange(1, n + 1), timestamp=stamps,
                         confidence=np.ones(n, np.float32), success=success,
                         intensities=intensities, presence=np.ones((n, NUM_AUS), np.uint8),
                         columns=("frame", "timestamp", "success")
                         + tuple(c for c in au_columns()))
    pair = ah.pair_from_arrays(track, labels, config, offset_s=2.0, name="t")
    # Video time s is track time 42 + s: the track (75 s) ends at video time 73.
    inside = stamps <= PAIR_SECONDS - 1 / TRACK_FPS - 2.0 + 1e-6
    no_face = inside & success & (((stamps + 2 >= 10 - 1 / TRACK_FPS) & (stamps + 2 < 11))
                                  | ((stamps + 2 > 20 - 1 / TRACK_FPS)
                                     & (stamps + 2 < 20.5)))
    assert pair.counts == {"rows": n, "other_face": 0, "no_success": 5,
                           "outside": int((success & ~inside).sum()),
                           "no_face": int(no_face.sum()),
                           "used": int((success & inside & ~no_face).sum())}
    assert pair.missing == ("AU28_r",)
    # The features are the track's at the offset instants.
    np.testing.assert_allclose(pair.frames[:, 1], track.sample(40.0 + 2.0 + pair.times),
                               atol=1e-6)
    np.testing.assert_allclose(pair.fixed, au_intensities(pair.frames[:, 1]), atol=1e-5)
    assert np.isnan(pair.intensity[:, AU_NAMES.index("AU28")]).all()
    # A trained or untrained head gives no AUs where the track has no face.
    head = ah.TrainedAuHead(ah.AuHead(config).eval())
    intensity, presence = head.predict_track(track)
    assert np.isnan(intensity[600:660]).all() and np.isnan(intensity[1200:1230]).all()
    assert not presence[600:660].any()
    assert np.isfinite(intensity[:590]).all()


def test_validation_blocks_are_contiguous_and_guarded():
    config = ah.AuHeadConfig(context=0)
    pairs = []
    for seed in range(3):
        track = make_track(seed)
        stamps = np.arange(0, 60, 1 / VIDEO_FPS)
        frames, fixed, _ = ah.face_features(track, track.times[0] + stamps, config)
        nan = np.full((len(stamps), NUM_AUS), np.nan, np.float32)
        pairs.append(ah.AuPair(f"p{seed}", stamps, frames, fixed, nan, nan, {}, (), ()))
    train, val, block_s = ah.split_blocks(pairs, 0.25, seed=5)
    assert block_s == 10.0
    n_val = sum(int(v.sum()) for v in val)
    assert abs(n_val / sum(len(p.times) for p in pairs) - 0.25) < 0.06
    for pair, t, v in zip(pairs, train, val, strict=True):
        assert not (t & v).any()
        for start in np.flatnonzero(np.diff(v.astype(int)) == 1) + 1:  # whole 10 s blocks
            assert pair.times[start] % 10.0 < 1e-6
        if v.any() and t.any():
            gap = np.abs(pair.times[t][:, None] - pair.times[v][None, :]).min()
            assert gap > 1.0  # the guard band
    again = ah.split_blocks(pairs, 0.25, seed=5)
    assert all((a == b).all() for a, b in zip(train, again[0], strict=True))
    with pytest.raises(ah.AuHeadError, match="between 0 and 0.5"):
        ah.split_blocks(pairs, 0.9, seed=5)


def test_icc_and_correlation_follow_their_definitions():
    rng = np.random.default_rng(0)
    a = rng.normal(2.0, 1.0, 500)
    b = a + rng.normal(0.0, 0.5, 500)
    # For two raters ICC(3,1) reduces to 2 cov(a, b) / (var a + var b).
    cov = np.cov(a, b)
    assert ah.icc_3_1(a, b) == pytest.approx(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1]))
    assert ah.icc_3_1(a, a) == pytest.approx(1.0)
    assert ah.icc_3_1(a, a + 1.0) == pytest.approx(1.0)  # consistency: a constant bias is free
    assert ah.icc_3_1(a, 2 * a) < 0.9  # ... a different scale is not
    assert np.isnan(ah.icc_3_1(np.ones(5), np.ones(5)))
    assert np.isnan(ah.icc_3_1(a[:1], b[:1]))
