"""The dataset format: writing, reading, windows, statistics, splits and the synthetic pipeline."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from imucap.datasets.builtin_rig import builtin_rig
from imucap.datasets.dataset import (
    DATASET_FORMAT,
    DatasetError,
    DatasetFormatError,
    DatasetInfo,
    DatasetWriter,
    SessionRecord,
    WindowDataset,
    make_splits,
    open_dataset,
    save_session,
)
from imucap.datasets.motion import SubjectStyle, expression_track, head_track
from imucap.datasets.placement import preset
from imucap.datasets.sensor_model import lsb_si
from imucap.datasets.simulate import simulate_imu
from imucap.datasets.synth import synthesize
from imucap.vocab import ARKIT_NAMES

SMALL = {"subjects": 4, "minutes": 0.2, "imu_rate_hz": 100.0, "seed": 7}


@pytest.fixture(scope="module")
def synth_ds(tmp_path_factory) -> Path:
    """A tiny synthetic dataset: 4 subjects × 12 s at 100 Hz (one session each)."""
    path = tmp_path_factory.mktemp("synth") / "ds"
    synthesize(path, **SMALL)
    return path


@pytest.fixture
def ds_copy(synth_ds, tmp_path) -> Path:
    """A copy of the tiny dataset that a test may damage."""
    return Path(shutil.copytree(synth_ds, tmp_path / "ds"))


def _digests(path: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted((path / "sessions").iterdir())}


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


def _info(n_sites: int = 2, **changes) -> DatasetInfo:
    fields = {"format": DATASET_FORMAT, "name": "hand", "source": "recorded",
              "created": "2026-01-01T00:00:00+00:00", "imu_rate_hz": 100.0,
              "blendshape_rate_hz": 30.0, "chip": "ICM-42688-P", "accel_range_g": 8,
              "gyro_range_dps": 1000, "sites": tuple(f"s{i}" for i in range(n_sites)),
              "placement": {"format": 1, "name": "none", "sites": []}}
    fields.update(changes)
    return DatasetInfo(**fields)


def _record(rng: np.random.Generator, n: int = 500, n_sites: int = 2, *, rate: float = 100.0,
            bs_rate: float = 30.0, bs_offset: float = 0.013, level: float = 0.0
            ) -> SessionRecord:
    """A hand-made session whose values encode their own time (for alignment checks)."""
    t = 5.0 + np.arange(n) / rate  # a recording's clock need not start at zero
    accel = rng.integers(-3000, 3000, (n, n_sites, 3)).astype(np.int16)
    accel[:, 0, 0] = np.round((t - 5.0) * 1000).astype(np.int16)  # milliseconds since 5 s
    gyro = (rng.integers(-500, 500, (n, n_sites, 3)) + int(level * 1000)).astype(np.int16)
    m = int(np.floor((t[-1] - t[0] - bs_offset) * bs_rate)) + 1
    tb = t[0] + bs_offset + np.arange(m) / bs_rate
    bs = rng.uniform(0, 1, (m, 52)).astype(np.float32) * 0.5 + level
    bs[:, 0] = ((tb - 5.0) / 100.0).astype(np.float32)  # the time, as a weight
    return SessionRecord(t, accel, gyro, tb, bs.astype(np.float32),
                         rng.normal(0, 0.1, (m, 3)).astype(np.float32),
                         rng.normal(0, 0.01, (m, 3)).astype(np.float32))


def _write(path: Path, records: dict[tuple[str, str], SessionRecord], splits=None, **info):
    writer = DatasetWriter(path, info=_info(**info))
    for (session_id, subject), rec in records.items():
        writer.add_session(session_id, subject, rec)
    return writer.finish(splits=splits)


# --- round trip ---------------------------------------------------------------------------


def test_simulated_session_round_trips_through_the_format(tmp_path):
    rig = builtin_rig()
    sites = preset("face4", rig).attach(rig)
    rng = np.random.default_rng(3)
    style = SubjectStyle(talk_fraction=0.5)
    weights = expression_track(4.0, 100.0, style, rng)
    rotvec, pos = head_track(4.0, 100.0, style, rng)
    sim = simulate_imu(rig, sites, weights, rotvec, pos, rate_hz=100.0, rng=rng)
    t = np.arange(len(weights)) / 100.0
    rec = SessionRecord(t, sim.accel_counts, sim.gyro_counts, t[::2].copy(),
                        weights[::2].astype(np.float32), rotvec[::2].astype(np.float32),
                        pos[::2].astype(np.float32))
    info = _write(tmp_path / "ds", {("take1", "alice"): rec}, n_sites=4,
                  splits={"train": ["alice"], "val": [], "test": []})
    ds = open_dataset(tmp_path / "ds", verify=True)
    assert len(ds) == 1 and ds.info.complete and ds.info.sessions == info.sessions
    raw = ds.record(0)
    for name, array in rec.arrays().items():
        got = getattr(raw, name)
        assert got.dtype == array.dtype and np.array_equal(got, array), name
    session = ds.session("take1")
    accel_lsb, gyro_lsb = lsb_si(8, 1000)
    assert session.accel.dtype == np.float32 and session.subject == "alice"
    assert np.allclose(session.accel, sim.accel_counts * accel_lsb, rtol=1e-6)
    assert np.allclose(session.gyro, sim.gyro_counts * gyro_lsb, rtol=1e-6)
    # Counts in SI units track the noise-free physics within the chip's errors.
    assert np.abs(session.accel - sim.accel_ideal).mean() < 0.5
    assert ds.info.blendshape_names == ARKIT_NAMES


def test_synthetic_dataset_is_complete_and_consistent(synth_ds):
    ds = open_dataset(synth_ds, verify=True)
    info = ds.info
    assert info.complete and info.source == "synthetic" and info.format == DATASET_FORMAT
    assert len(ds) == 4 and info.subjects == ("s000", "s001", "s002", "s003")
    assert info.sites == preset("imusic11+head", builtin_rig()).sites
    assert info.generator["seed"] == 7
    for i, entry in enumerate(info.sessions):
        s = ds.session(i)
        assert s.accel.shape == (entry.n_imu, 12, 3) and s.blendshapes.shape[1] == 52
        assert entry.n_imu == 1200  # 12 s at 100 Hz
        assert abs(np.diff(s.blendshape_time_s).mean() - 1 / 60) < 1e-9
        assert 0 <= s.blendshape_time_s[0] < 1 / 60  # its own clock, started a little later
        assert 11.9 < entry.duration_s <= 12.0
        # Gravity shows through: the head-reference sensor reads about 1 g.
        assert abs(np.linalg.norm(s.accel[:, -1].mean(axis=0)) - 9.81) < 0.5
        assert s.blendshapes.min() >= 0 and s.blendshapes.max() <= 1


# --- windows ------------------------------------------------------------------------------


def _expected_windows(duration_s: float, window_s: float, hop_s: float) -> int:
    k = 0
    while k * hop_s + window_s <= duration_s + 1e-9:
        k += 1
    return k


@pytest.mark.parametrize("window_s, hop_s", [(2.0, 1.0), (3.0, 0.5), (20.0, 1.0)])
def test_window_shapes_and_count_follow_the_durations(synth_ds, window_s, hop_s):
    ds = open_dataset(synth_ds)
    for split in ("train", "val", "test"):
        windows = WindowDataset(ds, split, window_s=window_s, hop_s=hop_s)
        sessions = ds.info.sessions_of(split)
        expected = sum(_expected_windows(s.duration_s, window_s, hop_s) for s in sessions)
        assert len(windows) == expected
        if expected:
            item = windows[-1]
            assert item["imu"].shape == (round(window_s * 100), 12, 6)
            assert item["blendshapes"].shape == (round(window_s * 60), 52)
            assert item["imu"].dtype == np.float32 and item["blendshapes"].dtype == np.float32
            assert item["session"] in {s.id for s in sessions}
    with pytest.raises(IndexError):
        WindowDataset(ds, "train")[10_000]


def test_window_values_are_the_normalised_session(synth_ds):
    ds = open_dataset(synth_ds)
    windows = WindowDataset(ds, "train", window_s=2.0, hop_s=1.0)
    stats = ds.info.stats
    item = windows[3]
    session = ds.session(item["session"])
    i0 = int(np.flatnonzero(session.imu_time_s == item["t0_s"])[0])
    accel = (session.accel[i0:i0 + 200] - stats.accel_mean) / stats.accel_std
    gyro = (session.gyro[i0:i0 + 200] - stats.gyro_mean) / stats.gyro_std
    assert np.allclose(item["imu"][..., :3], accel, atol=1e-4)
    assert np.allclose(item["imu"][..., 3:], gyro, atol=1e-4)
    raw = WindowDataset(ds, "train", normalize=False)[3]
    assert np.allclose(raw["imu"][..., :3], session.accel[i0:i0 + 200])
    # Normalised train windows are roughly standardised.
    imu = np.concatenate([windows[i]["imu"] for i in range(len(windows))])
    assert abs(float(imu.mean())) < 0.2 and 0.5 < float(imu.std()) < 1.5


def test_blendshapes_and_imu_of_a_window_cover_the_same_span(tmp_path):
    # Streams at 100 Hz and 30 Hz, the camera starting 13 ms after the IMU; each stream's
    # values encode their own time, so a misaligned window shows.
    rng = np.random.default_rng(0)
    records = {(f"take{i}", f"p{i}"): _record(rng, n=700 + 50 * i) for i in range(3)}
    _write(tmp_path / "ds", records, splits={"train": ["p0", "p1", "p2"], "val": [], "test": []})
    windows = WindowDataset(tmp_path / "ds", "train", window_s=1.5, hop_s=0.7, normalize=False)
    accel_lsb = lsb_si(8, 1000)[0]
    assert len(windows) > 20
    starts: dict[str, list[float]] = {}
    for i in range(len(windows)):
        item = windows[i]
        starts.setdefault(item["session"], []).append(item["t0_s"] - 5.0)
        t0 = item["t0_s"] - 5.0
        imu_t = item["imu"][:, 0, 0] / accel_lsb / 1000.0
        bs_t = item["blendshapes"][:, 0] * 100.0
        assert imu_t.shape == (150,) and bs_t.shape == (45,)
        assert np.allclose(imu_t, t0 + np.arange(150) / 100.0, atol=1e-3)
        assert np.allclose(bs_t, t0 + np.arange(45) / 30.0, atol=1e-4)
        # Both cover [t0, t0 + 1.5 s): the last samples are one period short of the end.
        assert abs((imu_t[-1] + 0.01) - (bs_t[-1] + 1 / 30)) < 1e-3
    # Window k starts at the first IMU sample at or after the common start (13 ms) + k hops.
    for got in starts.values():
        want = np.ceil((0.013 + 0.7 * np.arange(len(got))) * 100 - 1e-6) / 100
        assert np.allclose(got, want, atol=1e-9)


# --- statistics ---------------------------------------------------------------------------


def test_stats_come_from_the_train_split_only(tmp_path):
    splits = {"train": ["a", "b"], "val": ["c"], "test": ["d"]}

    def build(name: str, val_level: float, train_level: float = 0.0):
        rng = np.random.default_rng(1)
        records = {("a1", "a"): _record(rng, level=train_level), ("b1", "b"): _record(rng),
                   ("c1", "c"): _record(rng, level=val_level), ("d1", "d"): _record(rng)}
        return _write(tmp_path / name, records, splits=splits), records

    base, records = build("base", 0.0)
    other_val, _ = build("val", 0.4)
    other_train, _ = build("train", 0.0, train_level=0.4)
    assert np.array_equal(base.stats.gyro_mean, other_val.stats.gyro_mean)
    assert np.array_equal(base.stats.blendshape_std, other_val.stats.blendshape_std)
    assert not np.allclose(base.stats.gyro_mean, other_train.stats.gyro_mean)
    assert not np.allclose(base.stats.blendshape_mean, other_train.stats.blendshape_mean)
    # And they are the plain mean and deviation over the train sessions' samples, in SI units.
    accel_lsb, gyro_lsb = lsb_si(8, 1000)
    train = [records[("a1", "a")], records[("b1", "b")]]
    accel = np.concatenate([r.accel for r in train]) * accel_lsb
    gyro = np.concatenate([r.gyro for r in train]) * gyro_lsb
    bs = np.concatenate([r.blendshapes for r in train]).astype(np.float64)
    st = base.stats
    assert st.n_imu == len(accel) and st.n_blendshape == len(bs) and st.split == "train"
    assert np.allclose(st.accel_mean, accel.mean(0)) and np.allclose(st.accel_std, accel.std(0))
    assert np.allclose(st.gyro_mean, gyro.mean(0)) and np.allclose(st.gyro_std, gyro.std(0))
    assert np.allclose(st.blendshape_mean, bs.mean(0), atol=1e-6)
    assert np.allclose(st.blendshape_std, bs.std(0), atol=1e-6)
    # The stored statistics survive info.json.
    assert np.allclose(open_dataset(tmp_path / "base").info.stats.gyro_std, st.gyro_std)


def test_recomputed_stats_ignore_a_changed_val_session(ds_copy):
    ds = open_dataset(ds_copy)
    stored = ds.info.stats
    val_id = ds.info.sessions_of("val")[0].id
    rec = ds.record(val_id)
    louder = SessionRecord(rec.imu_time_s, (rec.accel // 2).astype(np.int16), rec.gyro * 3,
                           rec.blendshape_time_s, rec.blendshapes * 0.5, rec.head_rotvec,
                           rec.head_pos)
    save_session(ds_copy / "sessions" / f"{val_id}.npz", louder)
    again = ds.compute_stats()
    assert np.allclose(again.accel_mean, stored.accel_mean)
    assert np.allclose(again.blendshape_std, stored.blendshape_std)
    assert not np.allclose(ds.compute_stats("val").gyro_std, again.gyro_std)


# --- splits -------------------------------------------------------------------------------


def test_splits_are_by_subject_disjoint_and_deterministic():
    ids = [f"p{i:02d}" for i in range(20)]
    a = make_splits(ids, seed=5)
    assert a == make_splits(list(reversed(ids)) + ids[:3], seed=5)  # order and repeats ignored
    assert sorted(a["train"] + a["val"] + a["test"]) == ids
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (16, 2, 2)
    assert any(make_splits(ids, seed=s) != a for s in range(6, 10))
    for n in range(3, 13):
        split = make_splits([f"x{i}" for i in range(n)], seed=n)
        sets = [set(split[k]) for k in ("train", "val", "test")]
        assert all(sets) and len(sets[0] | sets[1] | sets[2]) == sum(map(len, sets)) == n
    assert make_splits(["only"]) == {"train": ("only",), "val": (), "test": ()}
    with pytest.raises(DatasetError):
        make_splits(ids, (0.5, 0.3, 0.3))


def test_synthetic_splits_keep_each_subject_in_one_split(synth_ds):
    info = open_dataset(synth_ds).info
    assert info.splits == make_splits(info.subjects, seed=SMALL["seed"])
    seen = [s for k in ("train", "val", "test") for s in info.splits[k]]
    assert sorted(seen) == list(info.subjects)
    for k in ("train", "val", "test"):
        assert info.splits[k]


# --- determinism, interruption, resume ------------------------------------------------------


def test_same_seed_same_files_whatever_the_worker_count(synth_ds, tmp_path):
    synthesize(tmp_path / "again", workers=2, **SMALL)
    assert _digests(tmp_path / "again") == _digests(synth_ds)
    a = json.loads((synth_ds / "info.json").read_text())
    b = json.loads((tmp_path / "again" / "info.json").read_text())
    for d in (a, b):
        d.pop("created"), d.pop("name")
    assert a == b
    synthesize(tmp_path / "other", **{**SMALL, "seed": 8})
    other = _digests(tmp_path / "other")
    assert other.keys() == _digests(synth_ds).keys() and other != _digests(synth_ds)


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_run_is_refused_then_resumed(synth_ds, tmp_path, workers):
    path = tmp_path / "ds"

    def stop_after_two(done: int, total: int) -> None:
        assert total == 4
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(path, progress=stop_after_two, workers=workers, **SMALL)
    with pytest.raises(DatasetError, match="interrupted") as exc:
        open_dataset(path)
    assert "resume" in _one_line(exc)
    with pytest.raises(DatasetError, match="resume"):
        synthesize(path, **SMALL)  # neither resume nor overwrite
    with pytest.raises(DatasetError, match="other settings"):
        synthesize(path, resume=True, **{**SMALL, "seed": 1})
    listed = json.loads((path / "info.json").read_text())["sessions"]
    assert len(listed) == 2  # the partial info.json lists what was done
    first = [path / s["file"] for s in listed]
    before = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in first}
    calls = []
    synthesize(path, resume=True, progress=lambda d, t: calls.append(d), workers=workers,
               **SMALL)
    assert calls == [3, 4]
    after = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in first}
    assert after == before  # the sessions written before the interruption were kept
    assert open_dataset(path, verify=True).info.complete
    assert _digests(path) == _digests(synth_ds)


def test_session_files_without_info_are_a_partial_dataset(ds_copy):
    (ds_copy / "info.json").unlink()
    with pytest.raises(DatasetError, match="interrupted") as exc:
        open_dataset(ds_copy)
    _one_line(exc)


# --- damaged and foreign datasets -----------------------------------------------------------


def test_other_format_version_is_named(ds_copy):
    data = json.loads((ds_copy / "info.json").read_text())
    data["format"] = 2
    (ds_copy / "info.json").write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError) as exc:
        open_dataset(ds_copy)
    message = _one_line(exc)
    assert "format 2" in message and f"reads format {DATASET_FORMAT}" in message
    assert isinstance(exc.value, DatasetError)


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("sites"), "missing key 'sites'"),
    (lambda d: d.update(imu_rate_hz="fast"), "'imu_rate_hz' must be a number"),
    (lambda d: d.update(complete="yes"), "'complete' must be true or false"),
    (lambda d: d.update(accel_range_g=True), "'accel_range_g' must be an integer"),
    (lambda d: d["sessions"][0].pop("n_imu"), "missing key 'n_imu'"),
    (lambda d: d["splits"]["val"].extend(d["splits"]["train"][:1]), "both the train"),
    (lambda d: d.update(blendshape_names=d["blendshape_names"][::-1]), "ARKit order"),
    (lambda d: d["stats"].update(accel_mean=[[0.0] * 3]), "accel_mean: expected (12, 3)"),
])
def test_info_json_is_validated(ds_copy, change, words):
    data = json.loads((ds_copy / "info.json").read_text())
    change(data)
    (ds_copy / "info.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError) as exc:
        open_dataset(ds_copy)
    assert words in _one_line(exc)


def test_truncated_or_missing_session_file_is_named(ds_copy):
    ds = open_dataset(ds_copy)
    victim = ds_copy / ds.info.sessions[1].file
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(DatasetError) as exc:
        ds.session(1)
    assert str(victim) in _one_line(exc) and "truncated" in str(exc.value)
    with pytest.raises(DatasetError, match=victim.name):
        open_dataset(ds_copy, verify=True)
    with zipfile.ZipFile(victim.with_name("bad.npz"), "w") as zf:  # right zip, wrong arrays
        zf.writestr("accel.npy", b"")
    victim.with_name("bad.npz").replace(victim)
    with pytest.raises(DatasetError, match=victim.name):
        ds.record(1)
    victim.unlink()
    with pytest.raises(DatasetError, match=f"{victim.name} is missing") as exc:
        open_dataset(ds_copy)
    _one_line(exc)


def test_session_with_the_wrong_shape_is_refused(ds_copy):
    ds = open_dataset(ds_copy)
    rec = ds.record(0)
    with pytest.raises(DatasetError, match="accel") as exc:
        save_session(ds_copy / "x.npz", SessionRecord(
            rec.imu_time_s, rec.accel[:, :5], rec.gyro, rec.blendshape_time_s, rec.blendshapes,
            rec.head_rotvec, rec.head_pos), n_sites=12)
    _one_line(exc)
    with pytest.raises(DatasetError, match="int16"):
        save_session(ds_copy / "x.npz", SessionRecord(
            rec.imu_time_s, rec.accel.astype(np.float32), rec.gyro, rec.blendshape_time_s,
            rec.blendshapes, rec.head_rotvec, rec.head_pos))


# --- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    ({"subjects": 0}, "subjects"),
    ({"subjects": 2.5}, "subjects"),
    ({"minutes": 0}, "minutes"),
    ({"minutes": -1.0}, "minutes"),
    ({"placement": "nose-only"}, "unknown placement"),
    ({"chip": "MPU-0000"}, "unknown IMU chip"),
    ({"accel_range_g": 3}, "±3 g"),
    ({"workers": 0}, "workers"),
    ({"imu_rate_hz": -100.0}, "imu_rate_hz"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, words):
    with pytest.raises(DatasetError) as exc:
        synthesize(tmp_path / "ds", **{**SMALL, **kwargs})
    assert words in _one_line(exc)
    assert not (tmp_path / "ds").exists()  # nothing was started


def test_existing_folders_are_protected(synth_ds, tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"meow")
    (foreign / "info.json").write_text('{"camera": "someone else\'s"}')
    (foreign / "sessions").mkdir()
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(DatasetError, match="not a dataset") as exc:
            synthesize(foreign, **SMALL, **flags)
        _one_line(exc)
    assert (foreign / "cat.jpg").read_bytes() == b"meow" and (foreign / "info.json").exists()
    done = Path(shutil.copytree(synth_ds, tmp_path / "done"))
    with pytest.raises(DatasetError, match="complete dataset") as exc:
        synthesize(done, **SMALL)
    assert "overwrite" in _one_line(exc)
    info = synthesize(done, overwrite=True, **{**SMALL, "subjects": 3})
    assert len(info.sessions) == 3 and len(list((done / "sessions").iterdir())) == 3
    with pytest.raises(DatasetError, match="no dataset"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="not an imucap dataset"):
        open_dataset(foreign)
    with pytest.raises(DatasetError, match="unknown split"):
        WindowDataset(done, "holdout")
