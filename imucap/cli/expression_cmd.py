"""``imucap expression``: the basic expression of each moment, with the AU evidence for it."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from imucap.errors import ImucapError

from .au_cmd import add_au_input_options

_EPILOG = """\
INPUT is one of:
  a dataset folder        with --session ID: the truth and the model's prediction, each read
  a session file          sessions/<id>.npz inside a dataset folder (the same)
  a recording             a .mcap file from imucap record (the same, streams synchronised)
  a blendshape take       Live Link Face CSV, blendshape CSV, imucap JSON or animated .glb
  an OpenFace AU CSV      OpenFace FeatureExtraction output (AUxx_r columns and timestamp)

Each frame's 18 AU intensities are matched against the EMFACS prototypes of happiness,
sadness, surprise, fear, anger, disgust and contempt, and against neutral. The best match is
the label. Its confidence is score x score / sum of all scores, and the AUs that support it are
listed. Frames whose active AUs match no prototype read "other", and frames without a face read
"no face". Frames are merged into episodes with hysteresis and a shortest episode. This is a
heuristic readout of facial actions, not a validated emotion classifier; the readout is
documented in imucap.analysis.expressions.

--csv writes one row per frame: series, timestamp, label, confidence, then the 8 scores.
--json writes the episodes and time shares of each series.

examples:
  imucap expression take.csv
  imucap expression openface/session01.csv --csv frames.csv --json episodes.json
  imucap expression data/synth --session s000_00 --no-model
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "expression", help="basic expressions over time, with the AU evidence for each",
        description="Read the basic expression of each moment (happiness, sadness, surprise, "
                    "fear, anger, disgust, contempt, neutral) from the Action Units, with a "
                    "confidence and the AUs behind it, and list the episodes.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_au_input_options(p, threshold=False)
    p.add_argument("--min-duration", type=float, default=0.3, metavar="S",
                   help="shortest episode in seconds; shorter runs join a neighbour "
                        "(default 0.3)")
    p.add_argument("--margin", type=float, default=0.1,
                   help="score lead a new expression needs to end the current episode "
                        "(hysteresis; default 0.1, 0 for none)")
    p.add_argument("--csv", default=None, metavar="OUT.csv",
                   help="write the per-frame readout (label, confidence, 8 scores)")
    p.add_argument("--json", default=None, metavar="OUT.json",
                   help="write the episodes and time shares")
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    from imucap.export.base import check_output_path

    if not (math.isfinite(args.min_duration) and 0 <= args.min_duration <= 60):
        raise ImucapError(f"--min-duration must be 0 to 60 seconds, got {args.min_duration:g}")
    if not (math.isfinite(args.margin) and 0 <= args.margin <= 1):
        raise ImucapError(f"--margin is a score difference from 0 to 1, got {args.margin:g}")
    outs = [Path(p) for p in (args.csv, args.json) if p is not None]
    if len(outs) == 2 and outs[0].resolve() == outs[1].resolve():
        raise ImucapError(f"--csv and --json both name {outs[0]}: give two files")
    for out in outs:
        check_output_path(out)


def _fmt_s(value: float) -> str:
    return f"{value:7.2f}"


def _report(series, readout, eps, shares, unscored) -> list[str]:  # noqa: ANN001
    n_face = int(readout.valid.sum())
    lines = [f"{series.label}: {len(series)} frames, {series.duration_s:.1f} s at "
             f"{series.fps:g} fps" + (f", {len(series) - n_face} without a face"
                                      if n_face < len(series) else "")]
    for e in eps:
        lines.append(f"{_fmt_s(e.start_s)}-{_fmt_s(e.end_s)} s  {e.evidence}")
    lines.append("time share: " + ", ".join(f"{label} {100 * share:.0f} %"
                                            for label, share in shares.items()))
    for label, lack in unscored.items():
        if lack.core:
            lines.append(f"note: {label} cannot be read: {series.source} has no "
                         f"{', '.join(lack.core)}")
        elif lack.other:
            lines.append(f"note: {label} is scored without {', '.join(lack.other)} (not in "
                         f"{series.source})")
    return lines


def _write_csv(path: str, rows: list[tuple]) -> None:
    from imucap.analysis.expressions import EXPRESSIONS
    from imucap.export.base import write_atomic

    def write(part: Path) -> None:
        with part.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["series", "timestamp", "label", "confidence", *EXPRESSIONS])
            for name, times, readout in rows:
                for i in range(len(readout)):
                    conf = readout.confidence[i]
                    scores = readout.scores[i]
                    w.writerow([name, f"{times[i]:.4f}", readout.labels[i],
                                "" if not math.isfinite(conf) else f"{conf:.4f}",
                                *("" if not math.isfinite(s) else f"{s:.4f}" for s in scores)])

    write_atomic(path, write)


def _write_json(path: str, doc: dict) -> None:
    from imucap.export.base import write_atomic

    def write(part: Path) -> None:
        part.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")

    write_atomic(path, write)


def run(args: argparse.Namespace) -> int:
    from imucap.analysis.au_input import load_au_series
    from imucap.analysis.expressions import (
        episodes,
        label_shares,
        read_expressions,
        unscored_aus,
    )

    _check(args)
    series = load_au_series(args.input, session=args.session, model=args.model,
                            no_model=args.no_model, fps=args.fps, steps=args.steps,
                            seed=args.seed)
    blocks: list[str] = []
    csv_rows: list[tuple] = []
    doc: dict = {"input": str(args.input),
                 "settings": {"min_duration_s": args.min_duration, "margin": args.margin},
                 "series": []}
    for s in series:
        for note in s.notes:
            print(f"imucap: note: {note}", file=sys.stderr)
        if not len(s):
            continue
        readout = read_expressions(s.intensities, valid=s.valid, weights=s.weights)
        eps = episodes(readout, s.times, min_duration_s=args.min_duration,
                       switch_margin=args.margin)
        shares = label_shares(eps)
        unscored = unscored_aus(s.missing)
        blocks.append("\n".join(_report(s, readout, eps, shares, unscored)))
        csv_rows.append((s.name, s.times, readout))
        doc["series"].append({
            "name": s.name, "source": s.source, "fps": s.fps, "frames": len(s),
            "frames_without_face": int(len(s) - readout.valid.sum()),
            "duration_s": round(s.duration_s, 4), "missing": list(s.missing),
            "unscored": {k: {"core": list(v.core), "other": list(v.other)}
                         for k, v in unscored.items()},
            "time_share": {k: round(v, 4) for k, v in shares.items()},
            "episodes": [e.to_dict(s.times) for e in eps]})
    print("\n\n".join(blocks))
    if args.csv is not None:
        _write_csv(args.csv, csv_rows)
        print(f"wrote {args.csv}: {sum(len(r) for _, _, r in csv_rows)} frames")
    if args.json is not None:
        _write_json(args.json, doc)
        print(f"wrote {args.json}: {sum(len(x['episodes']) for x in doc['series'])} episodes")
    return 0
