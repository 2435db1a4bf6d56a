"""``imucap speech-data``: make or import paired speech and face data for the speech model."""

from __future__ import annotations

import argparse
import sys

from imucap.errors import ImucapError

_EPILOG = """\
make: synthetic speech from espeak-ng (English accents and voice variants, random rates and
pitches) over sentences from a built-in grammar, with mouth curves from the viseme model and a
speaking style per speaker. Validation and test speakers use voices and sentences that no
training clip has. Needs libespeak-ng (Debian/Ubuntu: apt install libespeak-ng1).

import: your own paired data. Each INPUT is a folder holding
  a Live Link Face take    the take's CSV and its video (the sound track is the audio)
  BEAT-style pairs         NAME.wav (or any audio) beside NAME.json or NAME.csv
or a folder of such folders. Audio of any format ffmpeg reads ([audio] extra).

Then train (stage 1, the mouth's motion prior; stage 2, audio conditioning):
  imucap train experiment=audio_prior data.path=data/speech trainer.out_dir=runs/sp/prior
  imucap train experiment=audio2face data.path=data/speech \\
      trainer.init_from=runs/sp/prior/best trainer.out_dir=runs/sp/model
Fine-tune the shipped model to your data:
  imucap train experiment=audio2face data.path=data/mine \\
      trainer.init_from=speech trainer.lr=1e-4 trainer.epochs=10

examples:
  imucap speech-data make data/speech --clips 4000 --workers 2
  imucap speech-data import takes/ -o data/mine
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "speech-data", help="make or import paired speech and face data (speech model)",
        description="Make a synthetic speech dataset, or import paired audio and blendshape "
                    "files, for training the speech-to-face model.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="{make,import}")
    verbs.required = True
    m = verbs.add_parser("make", help="synthetic speech with mouth curves (espeak-ng)")
    m.add_argument("out", metavar="OUT", help="new dataset folder")
    m.add_argument("--clips", type=int, default=4000, help="utterances (default 4000, ~3 h)")
    m.add_argument("--speakers", type=int, default=60, help="training speakers (default 60)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--workers", type=int, default=1, help="processes speaking in parallel")
    m.add_argument("--overwrite", action="store_true", help="replace a dataset in OUT")
    m.set_defaults(run=run_make)
    i = verbs.add_parser("import", help="paired audio and blendshape files of your own")
    i.add_argument("inputs", nargs="+", metavar="INPUT", help="take or pair folders")
    i.add_argument("-o", "--out", required=True, metavar="OUT", help="new dataset folder")
    i.add_argument("--seed", type=int, default=0, help="seed of the split")
    i.add_argument("--overwrite", action="store_true", help="replace a dataset in OUT")
    i.set_defaults(run=run_import)


def _summary(dataset: object) -> str:
    info = dataset.info  # type: ignore[attr-defined]
    hours = sum(c.duration_s for c in info.clips) / 3600.0
    splits = ", ".join(f"{k} {len(v)}" for k, v in info.splits.items())
    return f"{len(info.clips)} clips, {hours:.2f} h of speech ({splits})"


def run_make(args: argparse.Namespace) -> int:
    from imucap.datasets.speech import make_speech_dataset

    if args.workers < 1:
        raise ImucapError(f"--workers must be at least 1, got {args.workers}")
    tty = sys.stderr.isatty()
    step = max(1, args.clips // 10)

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\r[speech-data] {done}/{total} clips", end="", file=sys.stderr, flush=True)
        elif done % step == 0 or done == total:
            print(f"[speech-data] {done}/{total} clips", file=sys.stderr, flush=True)

    dataset = make_speech_dataset(args.out, clips=args.clips, speakers=args.speakers,
                                  seed=args.seed, workers=args.workers,
                                  overwrite=args.overwrite, progress=progress)
    if tty:
        print(file=sys.stderr)
    print(f"wrote {args.out}: {_summary(dataset)}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from imucap.datasets.speech import import_paired

    dataset = import_paired(args.inputs, args.out, seed=args.seed, overwrite=args.overwrite,
                            say=lambda text: print(text, flush=True))
    print(f"wrote {args.out}: {_summary(dataset)}")
    return 0
