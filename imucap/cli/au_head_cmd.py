"""``imucap au-head``: train a learned AU head on a lab's own OpenFace-format AU labels, and
compare it with the fixed mapping.

``train`` aligns each face track with the AU CSV of the same video, trains
:class:`imucap.models.au_head.AuHead` (relation module over AU nodes, starting from the fixed
mapping), holds out blocks of time for validation and prints the comparison; ``eval`` scores a
trained head against the fixed mapping on other pairs. ``imucap convert TAKE -o out.au.csv
--au-head DIR`` then writes the head's AUs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from imucap.errors import ImucapError

_EPILOG = """\
A pair is a face track and the OpenFace-format AU CSV of the same video:
  TRACK    any take imucap reads: Live Link Face CSV (the iPhone take, or the model's output
           written by imucap convert), blendshape CSV, imucap face-track JSON, animated .glb
  LABELS   OpenFace FeatureExtraction output (any other columns are ignored), or your own
           coding in its layout: timestamp, success, AUxx_r (0-5) and AUxx_c (0/1) columns

The labels' timestamps count from their video's first frame, the track's from its own first
frame; --offset S says where on the track the video starts (negative: the video started
first). Give it once for every pair, or once per pair in --pair order.

examples:
  imucap au-head train --pair take1.csv take1_openface.csv --pair take2.csv take2_openface.csv \\
      -o runs/au_head
  imucap au-head eval runs/au_head --pair take3.csv take3_openface.csv --json report.json
  imucap convert take3.csv -o take3.au.csv --au-head runs/au_head
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "au-head", help="train and evaluate a learned AU head on your own AU labels",
        description="Learn AUs from your own OpenFace-format labels: a small head over the "
                    "blendshapes that models relations between AUs and starts from imucap's "
                    "fixed mapping; every report shows both side by side.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def pairs(q: argparse.ArgumentParser) -> None:
        q.add_argument("--pair", nargs=2, action="append", required=True,
                       metavar=("TRACK", "LABELS"), help="a face track and its AU labels "
                       "(repeat for more)")
        q.add_argument("--offset", type=float, action="append", default=None, metavar="S",
                       help="seconds into the track at which the labels' video starts "
                            "(default 0; once for all pairs or once per pair)")
        q.add_argument("--fps", type=float, default=60.0,
                       help="the rate Live Link timecodes count (default 60)")
        q.add_argument("--json", default=None, metavar="OUT",
                       help="also write the comparison report as JSON")
        q.add_argument("--threads", type=int, default=0,
                       help="torch CPU threads (0: torch's default)")

    t = verbs.add_parser("train", help="train a head on pairs of tracks and AU labels",
                         epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    pairs(t)
    t.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="folder to write the head to (au_head.safetensors, au_head.json)")
    t.add_argument("--epochs", type=int, default=None,
                   help="passes over the frames (default: enough for about 600 steps of 256 "
                        "frames, 2 to 30 epochs)")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, weights and order")
    t.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of the time held out for validation, in blocks of up to 10 s "
                        "(default 0.2; 0: none, the report is then on the training frames)")
    t.add_argument("--context", type=int, default=2, metavar="N",
                   help="track instants used either side of each label, 1/30 s apart "
                        "(default 2)")
    t.add_argument("--rounds", type=int, default=2,
                   help="message-passing rounds of the relation module (default 2; 0 leaves "
                        "it out)")
    t.set_defaults(run=run_train)

    e = verbs.add_parser("eval", help="compare a trained head with the fixed mapping",
                         epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("head", metavar="HEAD_DIR", help="a folder from imucap au-head train")
    pairs(e)
    e.set_defaults(run=run_eval)


def _module() -> Any:
    try:
        import safetensors.torch  # noqa: F401

        from imucap.models import au_head
    except ImportError:
        raise ImucapError("the AU head needs the [train] extra (torch, safetensors): "
                          "pip install 'imucap[train]'") from None
    return au_head


def _offsets(args: argparse.Namespace) -> list[float]:
    given = args.offset or [0.0]
    if len(given) == 1:
        return given * len(args.pair)
    if len(given) != len(args.pair):
        raise ImucapError(f"--offset was given {len(given)} times for {len(args.pair)} pairs: "
                          f"give it once for all, or once per --pair")
    return given


def _check_common(args: argparse.Namespace) -> None:
    if not 0 < args.fps <= 1000:
        raise ImucapError(f"--fps must be between 0 and 1000, got {args.fps:g}")
    if args.threads < 0:
        raise ImucapError(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    if args.json is not None:
        from imucap.export import check_output_path

        check_output_path(args.json)
    for track, labels in args.pair:
        for path in (track, labels):
            if not Path(path).is_file():
                raise ImucapError(f"{path} does not exist" if not Path(path).exists()
                                  else f"{path} is not a file")


def _load_pairs(module: Any, args: argparse.Namespace, config: Any) -> list[Any]:
    pairs = []
    for (track, labels), offset in zip(args.pair, _offsets(args), strict=True):
        pair = module.load_pair(track, labels, config, offset_s=offset, fps=args.fps)
        print(f"{pair.name}: {module.describe_counts(pair.counts)}", flush=True)
        pairs.append(pair)
    missing = sorted(set.intersection(*(set(p.missing) for p in pairs)))
    partly = sorted(set.union(*(set(p.missing) for p in pairs)) - set(missing))
    if missing:
        print(f"no labels for {', '.join(missing)} in any pair: those AUs are not learned "
              f"(the head keeps the fixed mapping's intensity) and not scored")
    if partly:
        print(f"labels for {', '.join(partly)} missing in some pairs: masked there")
    ignored = sorted(set().union(*(set(p.ignored) for p in pairs)))
    if ignored:
        print(f"ignored AU columns outside OpenFace's set: {', '.join(ignored)}")
    return pairs


def _write_json(path: str | None, report: dict[str, Any]) -> None:
    if path is None:
        return
    try:
        Path(path).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ImucapError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}")


def run_train(args: argparse.Namespace) -> int:
    module = _module()
    _check_common(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ImucapError(f"{out} is a file; -o takes a folder for the head")
    try:
        config = module.AuHeadConfig(context=args.context, rounds=args.rounds)
    except ValueError as exc:
        raise ImucapError(f"bad head settings: {exc}") from None
    pairs = _load_pairs(module, args, config)
    start = time.monotonic()
    head = module.train_au_head(pairs, config=config, epochs=args.epochs, seed=args.seed,
                                val_fraction=args.val_fraction, threads=args.threads,
                                progress=lambda line: print(line, flush=True))
    module.save_au_head(out, head)
    training = head.training
    print(f"wrote {out} ({module.WEIGHTS_FILE}, {module.META_FILE}): {training['train_frames']} "
          f"training and {training['val_frames']} validation frames, best epoch "
          f"{training['best_epoch']} of {training['epochs']}, {time.monotonic() - start:.1f} s")
    report = training["report"]
    print(module.format_report(report))
    _write_json(args.json, report)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    module = _module()
    _check_common(args)
    head = module.load_au_head(args.head)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    pairs = _load_pairs(module, args, head.config)
    report = module.compare(head, pairs, subset=f"{len(pairs)} pair"
                            f"{'s' if len(pairs) > 1 else ''} given to eval")
    report["head"] = str(args.head)
    print(module.format_report(report))
    _write_json(args.json, report)
    return 0
