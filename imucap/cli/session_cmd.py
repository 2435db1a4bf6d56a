"""``imucap session``: inspect, repair and (re)align recorded session files."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from imucap.errors import ImucapError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("session", help="inspect, recover and align recorded sessions",
                       description="Work on session files written by `imucap record`.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    i = verbs.add_parser("info", help="what a session holds, and how well it is synchronised")
    i.add_argument("path", help="session .mcap file")
    i.set_defaults(run=run_info)

    r = verbs.add_parser("recover", help="repair the index of a session cut short by a crash")
    r.add_argument("path", help="session .mcap file")
    r.set_defaults(run=run_recover)

    a = verbs.add_parser("align", help="fit the clocks and align the truth again; or import "
                                       "an iPhone take (Live Link Face CSV) as the truth")
    a.add_argument("path", help="session .mcap file")
    a.add_argument("--truth", default=None, metavar="CSV",
                   help="a Live Link Face CSV recorded on the phone: replaces the session's "
                        "truth and is aligned by the tap and cross-correlation")
    a.add_argument("--fps", type=float, default=60.0, help="the CSV's frame rate")
    a.add_argument("--tap-site", default=None,
                   help="site tapped for alignment (default: the chin/mentalis site)")
    a.set_defaults(run=run_align)


def run_info(args: argparse.Namespace) -> int:
    from imucap.record.session_file import read_session
    from imucap.sync.session_sync import SYNC_METADATA

    c = read_session(args.path)
    s = c.session
    dev = s.get("device") or {}
    print(f"session   {s.get('session', Path(args.path).stem)}  subject {s.get('subject')}  "
          f"recorded {s.get('created')}")
    state = "complete" if c.complete else \
        "not closed (a crash?): run `imucap session recover` to repair its index"
    print(f"file      {c.path}  ({state})")
    print(f"device    {dev.get('name')}  chip {dev.get('chip')}  firmware {dev.get('firmware')}"
          f"  {dev.get('rate_hz')} Hz  sites {', '.join(c.sites)}")
    if c.imu.n:
        span = c.imu.host_time_s[-1] - c.imu.host_time_s[0]
        print(f"imu       {c.imu.n} samples over {span:.1f} s, {c.imu.frames_lost} frames lost")
    truth = s.get("truth")
    if truth:
        faces = int(np.isfinite(c.truth.weights).all(axis=1).sum())
        print(f"truth     {truth.get('name')}: {c.truth.n} frames, {c.truth.n - faces} "
              f"without a face")
    gaps = [e for e in c.events if e.get("kind") == "truth_gap"]
    print(f"markers   {len(c.markers)}   events {len(c.events)}   truth gaps {len(gaps)}")
    if "imucap.calibration" in c.metadata:
        cal = c.metadata["imucap.calibration"]
        still = cal.get("still") or {}
        print(f"calibration still {'ok' if still.get('still') else 'moved'}, neutral "
              f"{(cal.get('neutral') or {}).get('truth_frames', 0)} truth frames")
    sync = c.metadata.get(SYNC_METADATA)
    if sync:
        from imucap.sync.session_sync import SessionSync

        from .record_cmd import sync_summary

        print(sync_summary(SessionSync.from_json(sync)))
    else:
        print("sync      not stored: run `imucap session align`")
    return 0


def run_recover(args: argparse.Namespace) -> int:
    from imucap.record.session_file import recover_session

    report = recover_session(args.path)
    if report.was_complete:
        print(f"{report.path} is complete: nothing to recover ({report.messages} messages)")
    else:
        print(f"{report.path}: recovered {report.messages} messages; "
              f"{report.torn_bytes} torn bytes at the end dropped")
    return 0


def run_align(args: argparse.Namespace) -> int:
    from imucap.record.session_file import TruthTable, read_session, replace_session
    from imucap.sync.session_sync import SYNC_METADATA, synchronise
    from imucap.truth.base import TruthFrame
    from imucap.vocab import ARKIT_NAMES

    from .record_cmd import sync_summary

    c = read_session(args.path)
    if not c.complete:
        raise ImucapError(f"{args.path} was not closed (a crash?): run `imucap session recover "
                          f"{args.path}` first")
    changes: dict = {}
    metadata: dict = {}
    if args.truth is not None:
        from imucap.datasets.takes import TakeError, read_livelink_csv

        try:
            take = read_livelink_csv(args.truth, fps=args.fps)
        except TakeError as exc:
            raise ImucapError(str(exc)) from None
        frames = [TruthFrame(i, float(t), math.nan, w,
                             None if take.head_ypr is None else take.head_ypr[i])
                  for i, (t, w) in enumerate(zip(take.time_s, take.weights, strict=True))]
        c.truth = TruthTable.from_frames(frames)
        session = dict(c.session)
        session["truth"] = {"kind": "livelink_csv", "name": str(args.truth), "live": False,
                            "latency_s": 0.0, "unmeasured": [
                                ARKIT_NAMES.index(n) for n in take.missing
                                if n in ARKIT_NAMES]}
        c.metadata["imucap.session"] = session
        metadata["imucap.session"] = session
        changes["replace_truth"] = frames
    sync = synchronise(c, tap_site=args.tap_site,
                       search_s=None if args.truth is not None else 1.0)
    metadata[SYNC_METADATA] = sync.to_json()
    replace_session(args.path, metadata=metadata, **changes)
    print(sync_summary(sync))
    return 0
