"""Speech to face end to end: the synthetic speech dataset, training the audio model through the
IMU model's trainer, offline conversion of sound files of several formats (windows joined
without seams, bounded memory, silent and broken files), ``--text``, the live stream, the
speech-data commands and the evaluation against the baselines."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest

from imucap.audio.features import FeatureConfig, frame_count
from imucap.cli.main import main
from imucap.vocab import index_of

espeak = pytest.importorskip("imucap.audio.espeak")
if not espeak.library_available():
    pytest.skip("libespeak-ng is not installed (apt install libespeak-ng1)",
                allow_module_level=True)

from imucap.datasets.speech import (  # noqa: E402
    SpeakingStyle,
    SpeechDatasetError,
    SpeechWindows,
    apply_style,
    make_speech_dataset,
    open_speech_dataset,
)


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def _has_sounddevice() -> bool:
    import importlib.util

    return importlib.util.find_spec("sounddevice") is not None


def ffmpeg() -> str:
    from imucap.audio.io import find_ffmpeg

    exe = find_ffmpeg()
    if exe is None:
        pytest.skip("no ffmpeg (pip install 'imucap[audio]')")
    return exe


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "ds"
    make_speech_dataset(path, clips=48, speakers=6, seed=3)
    return path


@pytest.fixture(scope="module")
def ckpt(data, tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from imucap.models.config import compose_config
    from imucap.models.train import train

    out = tmp_path_factory.mktemp("run") / "a2f"
    cfg = compose_config(["experiment=audio2face", "model=tiny", "model.imu_patch=2",
                          f"data.path={data}", f"trainer.out_dir={out}", "trainer.epochs=1",
                          "trainer.max_steps=12", "trainer.batch_size=8",
                          "trainer.warmup_steps=2", "trainer.log_every=100"])
    train(cfg)
    return out / "best"


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    speech = espeak.synthesize("Maya bought a big blue boat for Bob. Pass the pepper, please.",
                               voice="en-us+m3")
    return write_wav(tmp_path_factory.mktemp("wav") / "speech.wav", speech.samples,
                     speech.rate)


# --- the dataset ----------------------------------------------------------------------------------


def test_the_dataset_holds_out_voices_and_sentences(data):
    ds = open_speech_dataset(data)
    splits = ds.info.splits
    assert {k: len(v) for k, v in splits.items()} == {"train": 41, "val": 2, "test": 5}
    by_id = {c.id: c for c in ds.info.clips}
    texts = {k: {by_id[i].text for i in v} for k, v in splits.items()}
    variants = {k: {by_id[i].speaker.split("+")[-1].rstrip(")") for i in v}
                for k, v in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["val"]
    assert not variants["train"] & variants["test"] and not variants["train"] & variants["val"]
    clip = ds.clip(splits["test"][0])
    assert len(clip.weights) == frame_count(len(clip.audio), 16000, 60.0)
    assert clip.weights.min() >= 0 and clip.weights.max() <= 1
    assert clip.phonemes and clip.text == by_id[clip.id].text
    # Only the mouth moves, and the mouth does move.
    eyes = [index_of(n) for n in ("eyeBlinkLeft", "browInnerUp", "cheekSquintLeft")]
    assert np.all(clip.weights[:, eyes] == 0)
    assert clip.weights[:, index_of("jawOpen")].max() > 0.2


def test_the_speaking_style_departs_from_the_viseme_model(data):
    from imucap.audio.visemes import phonemes_to_blendshapes

    ds = open_speech_dataset(data)
    clip = ds.clip(ds.info.splits["train"][0])
    canonical = phonemes_to_blendshapes(clip.phonemes, len(clip.audio) / 16000, 60.0,
                                        n_frames=len(clip.weights))
    again = apply_style(canonical, SpeakingStyle(**clip.style), clip.rate_wpm)
    np.testing.assert_allclose(again, clip.weights, atol=1e-6)
    assert np.abs(canonical - clip.weights).mean() > 1e-3
    # The mouth leads the sound: with a lead, the jaw opens earlier.
    jaw = index_of("jawOpen")
    led = apply_style(canonical, SpeakingStyle(lead_s=0.05), 175.0)
    first = np.argmax(canonical[:, jaw] > 0.1)
    assert np.argmax(led[:, jaw] > 0.1) == pytest.approx(first - 3, abs=1)
    # Faster speech undershoots.
    fast = apply_style(canonical, SpeakingStyle(), 300.0)
    assert fast[:, jaw].max() < canonical[:, jaw].max()


def test_windows_normalise_pad_and_augment(data):
    ds = open_speech_dataset(data)
    plain = SpeechWindows(ds, "train", window_s=1.0, hop_s=0.5)
    item = plain[0]
    assert item["imu"].shape == (60, 1, 80) and item["blendshapes"].shape == (60, 52)
    assert abs(float(item["imu"].mean())) < 1.5
    noisy = SpeechWindows(ds, "train", window_s=1.0, hop_s=0.5, augment=True, seed=1)
    aug = noisy[0]
    assert not np.allclose(aug["imu"], item["imu"])
    np.testing.assert_array_equal(aug["blendshapes"], item["blendshapes"])
    # A window longer than every clip: padded with silence and a neutral face.
    long = SpeechWindows(ds, "val", window_s=30.0, hop_s=30.0)
    feats, weights = long.raw(0)
    assert len(feats) == 1800 and np.all(weights[-60:] == 0)
    assert np.allclose(feats[-1], math.log(1e-10))


def test_bad_dataset_folders_fail_in_one_line(tmp_path, data):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(SpeechDatasetError, match="is not empty"):
        make_speech_dataset(tmp_path / "full", clips=3)
    with pytest.raises(SpeechDatasetError, match="holds other files"):
        make_speech_dataset(tmp_path / "full", clips=3, overwrite=True)
    with pytest.raises(SpeechDatasetError, match="not a speech dataset"):
        open_speech_dataset(tmp_path)
    with pytest.raises(SpeechDatasetError, match="at least 3"):
        make_speech_dataset(tmp_path / "new", clips=2)


# --- joining windows, with a stand-in for the network --------------------------------------------


class StandIn:
    """A speech model whose output at each frame depends only on that frame's features: any
    window that covers a frame predicts the same value for it, so a correct join must return
    exactly that value everywhere (the seams cannot hide)."""

    def __init__(self, window: int = 60) -> None:
        from imucap.datasets.speech import SpeechStats

        self.window, self.fps, self.audio_rate, self.steps = window, 60.0, 16000, 1
        self.features = FeatureConfig()
        self.stats = SpeechStats(np.zeros(80, np.float32), np.ones(80, np.float32))
        self.runs = 0

    def frame_values(self, feats: np.ndarray) -> np.ndarray:
        level = 1.0 / (1.0 + np.exp(-(feats[..., 10] + 10.0) / 3.0))
        out = np.zeros((*feats.shape[:-1], 52), np.float32)
        out[..., index_of("jawOpen")] = level
        out[..., index_of("mouthClose")] = 1.0 - level
        return out

    def run(self, windows, noise, steps=None):
        self.runs += len(windows)
        return self.frame_values(windows)

    def noise(self, seed, index):
        return np.zeros((self.window, 52), np.float32)


def test_windows_join_without_seams_whatever_the_length(speech_wav):
    from imucap.audio.features import compute_features
    from imucap.audio.io import load_audio
    from imucap.inference.speech import infer_speech

    model = StandIn()
    audio = load_audio(speech_wav).samples
    for n in (100, 16000 - 7, 16000 * 3 + 123, len(audio)):  # shorter than a window, ...
        x = audio[:n]
        result = infer_speech(x, model, rate=16000, batch=3)
        want = model.frame_values(compute_features(x, 16000, model.features))
        assert len(result.track) == frame_count(n, 16000, 60.0)
        np.testing.assert_allclose(result.track.weights, want, atol=1e-5)
    # Half-overlapping windows: about two model runs per window length of audio.
    seconds = (100 + 16000 - 7 + 16000 * 3 + 123 + len(audio)) / 16000
    assert model.runs <= seconds * 2 + 4 * 2


def test_a_long_file_converts_in_bounded_memory(tmp_path):
    from imucap.inference.speech import infer_speech

    rate, minutes = 16000, 10
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for _ in range(minutes * 6):  # 10 s blocks of tone bursts in noise
            t = np.arange(rate * 10) / rate
            x = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
            x += 0.01 * rng.standard_normal(len(t))
            w.writeframes((x * 32767).astype("<i2").tobytes())
    size = path.stat().st_size
    model = StandIn()
    tracemalloc.start()
    result = infer_speech(path, model)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(result.track) == minutes * 60 * 60
    track_bytes = result.track.weights.nbytes * 2  # the output, and its float64 accumulator
    assert peak < track_bytes + size / 4, (peak, size)


def test_silent_clipped_empty_and_broken_input(tmp_path, capsys):
    from imucap.inference.speech import infer_speech

    model = StandIn()
    silent = infer_speech(np.zeros(16000 * 2, np.float32), model, rate=16000)
    assert silent.silent and "silent" in silent.notes[0]
    assert np.all(silent.track.weights == 0) and len(silent.track) == 120
    loud = np.clip(3 * np.sin(np.arange(32000) / 5.0), -1, 1).astype(np.float32)
    clipped = infer_speech(loud, model, rate=16000)
    assert clipped.clipped_fraction > 0.5 and "clipped" in clipped.notes[-1]
    # Files: each bad one is a single line from convert, and nothing is written.
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0), 16000)
    text = tmp_path / "notes.wav"
    text.write_text("this is not a recording\n")
    for bad, message in ((empty, "no audio"), (text, "not")):
        code, _, err = cli(capsys, "convert", bad, "-o", tmp_path / "out.csv")
        assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out.csv").exists()


# --- the trained model, through the trainer and the CLI ------------------------------------------


def test_training_writes_an_audio_checkpoint_the_imu_paths_refuse(ckpt):
    from imucap.models.checkpoint import CheckpointError, load_checkpoint

    loaded = load_checkpoint(ckpt)
    assert loaded.training["input"] == "audio" and loaded.sites == ["audio"]
    assert loaded.model_config["imu_channels"] == 80
    assert loaded.training["features"]["n_mels"] == 80
    with pytest.raises(CheckpointError, match="speech-to-face model"):
        loaded.site_ids(["brow_L", "brow_R"])


def test_the_audio_model_starts_from_an_imu_prior(data, tmp_path):
    pytest.importorskip("torch")
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.config import compose_config
    from imucap.models.pretrained import default_checkpoint
    from imucap.models.train import train

    lines: list[str] = []
    cfg = compose_config(["experiment=audio2face", f"data.path={data}",
                          f"trainer.out_dir={tmp_path / 'run'}", "trainer.max_steps=2",
                          "trainer.batch_size=4", f"trainer.init_from={default_checkpoint()}"])
    train(cfg, progress=lines.append)
    carried = next(line for line in lines if "carried over" in line)
    n, total = (int(v) for v in carried.split(": ")[1].split(" weight")[0].split(" of "))
    assert 0.8 * total < n < total  # all but the input projection
    out = load_checkpoint(tmp_path / "run" / "last")
    imu = load_checkpoint(default_checkpoint())
    assert out.model_config["imu_channels"] == 80 and "audio" in out.sites
    assert out.model_config["d_model"] == imu.model_config["d_model"]


def test_fine_tuning_starts_from_the_shipped_speech_model(data, tmp_path):
    pytest.importorskip("torch")
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.config import compose_config
    from imucap.models.pretrained import speech_checkpoint
    from imucap.models.train import train

    cfg = compose_config(["experiment=audio2face", f"data.path={data}",
                          f"trainer.out_dir={tmp_path / 'run'}", "trainer.max_steps=2",
                          "trainer.batch_size=4", "trainer.init_from=speech",
                          "trainer.lr=1e-5"])
    train(cfg)
    tuned = load_checkpoint(tmp_path / "run" / "last")
    shipped = load_checkpoint(speech_checkpoint())
    # The shipped model's statistics are kept (new data is normalised as the old was), and
    # two small steps move the weights only a little.
    assert tuned.stats == shipped.stats and tuned.sites == shipped.sites
    drift = max(float((tuned.state[k] - shipped.state[k]).abs().max()) for k in shipped.state)
    assert 0 < drift < 0.01


def test_convert_reads_wav_flac_and_mp3_alike(ckpt, speech_wav, tmp_path, capsys):
    from imucap.export import read_openface_csv, read_track

    exe = ffmpeg()
    tracks = {}
    for ext in ("wav", "flac", "mp3"):
        src = speech_wav if ext == "wav" else tmp_path / f"speech.{ext}"
        if ext != "wav":
            subprocess.run([exe, "-y", "-loglevel", "error", "-i", str(speech_wav), str(src)],
                           check=True)
        out = tmp_path / f"face_{ext}.csv"
        code, text, err = cli(capsys, "convert", src, "-o", out, "--model", ckpt)
        assert code == 0, err
        assert "x real time" in text and f"AUs in face_{ext}.au.csv" in text
        tracks[ext] = read_track(out)
        assert len(read_openface_csv(tmp_path / f"face_{ext}.au.csv").frame) == \
            len(tracks[ext])
    n = len(tracks["wav"])
    assert abs(len(tracks["flac"]) - n) <= 1 and abs(len(tracks["mp3"]) - n) <= 4
    # FLAC is lossless: the same face; MP3 is close.
    np.testing.assert_allclose(tracks["flac"].weights[:n], tracks["wav"].weights[:n],
                               atol=2e-3)
    m = min(n, len(tracks["mp3"]))
    assert np.abs(tracks["mp3"].weights[:m] - tracks["wav"].weights[:m]).mean() < 0.05


def test_convert_is_deterministic_and_stereo_48k_reads_as_mono(ckpt, speech_wav, tmp_path,
                                                               capsys):
    from imucap.audio.io import load_audio
    from imucap.export import read_json_track

    clip = load_audio(speech_wav)
    t = np.arange(int(len(clip.samples) * 3)) / 48000
    x = np.interp(t, np.arange(len(clip.samples)) / 16000, clip.samples)
    stereo = write_wav(tmp_path / "stereo.wav", np.repeat(x[:, None], 2, 1).ravel(), 48000, 2)
    runs = []
    for k, (src, seed) in enumerate(((speech_wav, 0), (speech_wav, 0), (speech_wav, 5),
                                     (stereo, 0))):
        out = tmp_path / f"run{k}.json"
        code, _, err = cli(capsys, "convert", src, "-o", out, "--model", ckpt, "--seed", seed)
        assert code == 0, err
        runs.append(read_json_track(out).weights)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.abs(runs[0] - runs[2]).max() > 1e-4  # another seed, other noise
    n = min(len(runs[0]), len(runs[3]))
    assert np.abs(runs[0][:n] - runs[3][:n]).mean() < 0.02


def test_text_to_face_writes_the_track_and_the_speech(tmp_path, capsys):
    from imucap.export import read_gltf_track

    code, text, err = cli(capsys, "convert", "--text", "Pass the pepper, please.", "-o",
                          tmp_path / "line.glb", "--audio", tmp_path / "line.wav",
                          "--voice", "en+f2")
    assert code == 0, err
    track = read_gltf_track(tmp_path / "line.glb")
    with wave.open(str(tmp_path / "line.wav")) as w:
        seconds = w.getnframes() / w.getframerate()
    assert track.duration_s == pytest.approx(seconds, abs=0.05)
    close = track.weights[:, index_of("mouthClose")]
    assert close.max() > 0.9  # p, p, p, l-ea-s
    assert (tmp_path / "line.au.csv").exists() and "speech in" in text
    code, _, err = cli(capsys, "convert", "--text", "  ", "-o", tmp_path / "x.csv")
    assert code == 2 and "--text is empty" in err
    code, _, err = cli(capsys, "convert", "--text", "hi", "-o", tmp_path / "x.csv", "--voice",
                       "zz-nonexistent")
    assert code == 2 and err.count("\n") == 1
    code, _, err = cli(capsys, "convert", "-o", tmp_path / "x.csv")
    assert code == 2 and "nothing to convert" in err


def test_convert_speech_to_mp4_has_the_sound(ckpt, speech_wav, tmp_path, capsys):
    pytest.importorskip("open3d", reason="rendering needs the [viewer] extra")
    exe = ffmpeg()
    out = tmp_path / "face.mp4"
    code, text, err = cli(capsys, "convert", speech_wav, "-o", out, "--model", ckpt)
    if code != 0 and "OpenGL" in err:
        pytest.skip(err.strip())
    assert code == 0, err
    probe = subprocess.run([exe, "-hide_banner", "-i", str(out)], capture_output=True,
                           text=True).stderr
    assert "Video: h264" in probe and "Audio: aac" in probe
    assert list(p.name for p in tmp_path.iterdir()) == ["face.mp4"]


# --- live -----------------------------------------------------------------------------------------


def test_the_live_stream_trails_by_its_lookahead_and_joins_without_seams(speech_wav):
    from imucap.audio.features import compute_features
    from imucap.audio.io import load_audio
    from imucap.inference.speech import SpeechStream

    model = StandIn()
    audio = load_audio(speech_wav).samples
    stream = SpeechStream(model, lookahead_s=0.1, hop=2)
    assert stream.latency_s == pytest.approx(0.1 + 0.0124, abs=1e-3)  # 6 frames ahead
    frames = []
    for i in range(0, len(audio), 160):  # 10 ms pushes, as a sound card delivers them
        frames.append(stream.push(audio[i:i + 160]))
        have = sum(len(f) for f in frames)
        heard = frame_count(min(i + 160, len(audio)), 16000, 60.0)
        # Never ahead of what was heard minus the look-ahead; never more than a hop behind.
        assert have <= max(0, heard - 6 - 1) + 1
    out = np.concatenate(frames)
    want = model.frame_values(compute_features(audio, 16000, model.features))
    assert len(out) >= len(want) - 6 - 2 - 2
    np.testing.assert_allclose(out, want[:len(out)], atol=1e-5)
    with pytest.raises(Exception, match="look-ahead"):
        SpeechStream(model, lookahead_s=0.6)


def test_stream_speech_from_a_file_drives_live_link(ckpt, speech_wav):
    from imucap.sinks.livelink import LiveLinkReceiver

    with LiveLinkReceiver(port=0, host="127.0.0.1") as receiver:
        port = receiver.address[1]
        proc = subprocess.run(
            [sys.executable, "-m", "imucap", "stream", "--speech", str(speech_wav), "--model",
             str(ckpt), "--to", f"livelink://127.0.0.1:{port}", "--duration", "2.5"],
            capture_output=True, text=True, timeout=120)
        packets = []
        while (packet := receiver.read(timeout_s=0.2)) is not None:
            packets.append(packet)
    assert proc.returncode == 0, proc.stderr
    # 2.5 s of sound, less the look-ahead: about 145 frames at 60 Hz, numbered in order.
    assert 120 <= len(packets) <= 151, len(packets)
    numbers = np.array([p.frame_number for p in packets])
    assert np.all(np.diff(numbers) == 1)
    assert "latency from sound to face p50" in proc.stdout and "frames/s" in proc.stdout
    # Bad sources and mixing a device with speech: one line each.
    for argv, message in ((["--speech", "nowhere.wav"], "does not exist"),
                          (["--speech", str(speech_wav), "--device", "emulator:imusic11"],
                           "not both"),
                          ([], "nothing to stream"),
                          (["--speech", "mic"] if not _has_sounddevice() else
                           ["--speech", "mic:999"], "microphone")):
        bad = subprocess.run([sys.executable, "-m", "imucap", "stream", *argv],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
        assert message in bad.stderr


# --- speech-data and eval -------------------------------------------------------------------------


def test_speech_data_import_reads_takes_and_beat_pairs(tmp_path, capsys, speech_wav):
    from imucap.audio.io import load_audio
    from imucap.export import write_track
    from imucap.inference.offline import FaceTrack

    exe = ffmpeg()
    clip = load_audio(speech_wav)
    n = frame_count(len(clip.samples), 16000, 60.0)
    weights = np.zeros((n, 52), np.float32)
    weights[:, index_of("jawOpen")] = np.linspace(0, 1, n)
    beat = tmp_path / "beat"
    beat.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(speech_wav, beat / f"{name}.wav")
        write_track(beat / f"{name}.json", FaceTrack(np.arange(n) / 60.0, weights))
    take = tmp_path / "takes" / "20261206_take1"
    take.mkdir(parents=True)
    write_track(take / "take1_iPhone.csv", FaceTrack(np.arange(n // 2) / 30.0,
                                                     weights[::2][: n // 2], fps=30.0))
    subprocess.run([exe, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=64x64:r=30", "-i", str(speech_wav), "-shortest", "-c:v",
                    "libx264", "-c:a", "aac", str(take / "take1_iPhone.mov")], check=True)
    code, text, err = cli(capsys, "speech-data", "import", beat, tmp_path / "takes", "-o",
                          tmp_path / "mine")
    assert code == 0, err
    assert "4 clips" in text
    ds = open_speech_dataset(tmp_path / "mine")
    for c in ds.info.clips:
        got = ds.clip(c.id)
        assert abs(len(got.weights) - n) <= 2
        jaw = got.weights[:, index_of("jawOpen")]
        assert jaw[0] < 0.05 and jaw[len(jaw) // 2] == pytest.approx(0.5, abs=0.05)
    code, _, err = cli(capsys, "speech-data", "import", tmp_path / "nowhere", "-o",
                       tmp_path / "x")
    assert code == 2 and "is not a folder" in err


def test_eval_scores_the_model_beside_its_baselines(ckpt, data, tmp_path, capsys):
    code, text, err = cli(capsys, "eval", ckpt, "--data", data, "--out", tmp_path / "ev")
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    methods = metrics["methods"]
    assert set(methods) == {"model", "ridge", "mean", "visemes"}
    for m in methods.values():
        assert 0 <= m["mouth_mae"] < 0.5 and m["lve_mm"] > 0
        assert set(m["lip_mae"]) == {"jawOpen", "mouthClose", "mouthFunnel", "mouthPucker",
                                     "mouthPress", "mouthSmile"}
    # The viseme model knows the words and their timing, but not the speaker's style: close,
    # not exact; and it beats the mean face.
    assert 0 < methods["visemes"]["mouth_mae"] < methods["mean"]["mouth_mae"]
    assert (tmp_path / "ev" / "curves.png").stat().st_size > 10_000
    assert "LVE mm" in text


def test_the_shipped_speech_model_is_the_default_and_reads_a_new_voice(tmp_path, capsys):
    pytest.importorskip("torch")
    from imucap.audio.visemes import phonemes_to_blendshapes
    from imucap.datasets.speech import MOUTH_CHANNELS
    from imucap.export import read_track

    # A voice variant and a sentence no training clip has.
    speech = espeak.synthesize("Who moved the purple bottle over the bridge?",
                               voice="en-us+f4", rate_wpm=160)
    wav = write_wav(tmp_path / "new.wav", speech.samples, speech.rate)
    code, text, err = cli(capsys, "convert", wav, "-o", tmp_path / "face.csv")
    assert code == 0, err
    got = read_track(tmp_path / "face.csv").weights
    canonical = phonemes_to_blendshapes(speech.phonemes, speech.duration_s, 60.0,
                                        n_frames=len(got))
    # The truth as the average training speaker would say it (the middle of the style ranges).
    want = apply_style(canonical, SpeakingStyle(smile=0.075, lead_s=0.03), 160)
    mouth = list(MOUTH_CHANNELS)
    err_model = np.abs(got[:, mouth] - want[:, mouth]).mean()
    err_mean = np.abs(want[:, mouth].mean(0) - want[:, mouth]).mean()
    assert err_model < 0.7 * err_mean, (err_model, err_mean)
    jaw = index_of("jawOpen")
    assert np.corrcoef(got[:, jaw], want[:, jaw])[0, 1] > 0.8


def test_the_shipped_speech_models_report_has_it_ahead_of_ridge():
    from imucap.models.pretrained import speech_checkpoint

    metrics = json.loads((speech_checkpoint() / "eval" / "metrics.json").read_text())
    methods = metrics["methods"]
    assert metrics["split"] == "test" and metrics["clips"] >= 100
    assert methods["model"]["mouth_mae"] < methods["ridge"]["mouth_mae"]
    assert methods["model"]["lve_mm"] < methods["ridge"]["lve_mm"]


def test_importing_the_speech_modules_loads_no_torch():
    code = ("import sys, imucap.audio.io, imucap.audio.features, imucap.datasets.speech, "
            "imucap.inference.speech, imucap.cli.speech_convert, imucap.cli.speech_data_cmd; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
