"""``imucap au``: summarise the Action Units of a session, take or OpenFace CSV."""

from __future__ import annotations

import argparse
import json
import sys

_EPILOG = """\
INPUT is one of:
  a dataset folder        with --session ID: the truth and the model's prediction
  a session file          sessions/<id>.npz inside a dataset folder (the same)
  a recording             a .mcap file from imucap record (the same, streams synchronised)
  a blendshape take       Live Link Face CSV, blendshape CSV, imucap JSON or animated .glb
  an OpenFace AU CSV      OpenFace FeatureExtraction output (or imucap's .au.csv): AUxx_r,
                          AUxx_c and timestamp columns; other columns are ignored

Per AU: occurrence rate (share of frames with a face where AUxx_c = 1), mean AUxx_r when
present, the intensity histogram; the co-occurrence P(column AU | row AU); blinks per minute
(AU45 events; needs at least 60 s with a face). Frames without a face are counted and left out.

examples:
  imucap au take.csv
  imucap au openface/session01.csv --json session01_aus.json --plot figs/
  imucap au data/synth --session s000_00 --no-model
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "au", help="summarise the Action Units of a session, take or OpenFace CSV",
        description="AU occurrence rates, intensity histograms, co-occurrence and blink rate, "
                    "per track of the input (truth and prediction for sessions), in OpenFace's "
                    "AU naming.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_au_input_options(p)
    p.add_argument("--json", default=None, metavar="OUT.json",
                   help="also write the full summary as JSON")
    p.add_argument("--plot", default=None, metavar="DIR",
                   help="write histogram and co-occurrence PNGs into DIR (needs matplotlib)")
    p.set_defaults(run=run)


def add_au_input_options(p: argparse.ArgumentParser, *, threshold: bool = True) -> None:
    """The INPUT options of the AU commands (as ``imucap render``'s, plus ``--threshold``
    unless ``threshold`` is False)."""
    p.add_argument("input", metavar="INPUT",
                   help="dataset folder, session file, recording (.mcap), take or OpenFace CSV")
    p.add_argument("--session", default=None, metavar="ID",
                   help="the session of a dataset folder")
    p.add_argument("--model", default=None, metavar="CKPT",
                   help="checkpoint for the prediction ('default': the shipped model)")
    p.add_argument("--no-model", action="store_true",
                   help="sessions: the truth alone (no model run, no [train] extra needed)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame grid of sessions (default 60); resample a take to this rate "
                        "(default: its own frames)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model's sampling noise")
    if not threshold:
        return
    p.add_argument("--threshold", type=float, default=1.0,
                   help="AU intensity from which an AU counts as present (default 1.0, FACS "
                        "grade A; 2 for the DISFA convention)")


def run(args: argparse.Namespace) -> int:
    from imucap.analysis.au_input import load_au_series
    from imucap.analysis.au_summary import (
        format_report,
        plot_summaries,
        summarise,
        summary_json,
    )

    if args.json is not None:
        from imucap.export.base import check_output_path

        check_output_path(args.json)
    series = load_au_series(args.input, session=args.session, model=args.model,
                            no_model=args.no_model, fps=args.fps, steps=args.steps,
                            seed=args.seed, threshold=args.threshold)
    summaries = [summarise(s, threshold=args.threshold) for s in series if s.valid.any()]
    for s in series:
        if not s.valid.any():
            print(f"imucap: note: {s.label} has no frame with a face; left out", file=sys.stderr)
    sys.stdout.write(format_report(summaries))
    if args.json is not None:
        from imucap.export.base import write_atomic

        text = json.dumps(summary_json(summaries, input_path=str(args.input)), indent=1)
        path = write_atomic(args.json, lambda part: part.write_text(text + "\n",
                                                                    encoding="utf-8"))
        print(f"wrote {path}")
    if args.plot is not None:
        for path in plot_summaries(summaries, args.plot):
            print(f"wrote {path}")
    return 0
