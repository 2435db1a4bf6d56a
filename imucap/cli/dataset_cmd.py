"""``imucap dataset``: make a synthetic dataset, say what a dataset holds, plot one of its clips."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from imucap.errors import ImucapError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="make, inspect and plot datasets",
                       description="Make a synthetic paired IMU/blendshape dataset, or inspect "
                                   "one.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    s = verbs.add_parser("synth", help="simulate a paired IMU and ARKit-blendshape dataset")
    s.add_argument("--subjects", type=int, default=None, help="made-up subjects")
    s.add_argument("--minutes", type=float, default=None, help="minutes per subject")
    s.add_argument("--takes", nargs="+", default=None, metavar="FILE",
                   help="simulate IMUs from real takes instead (Live Link Face CSV, "
                        "blendshape CSV, BEAT-style JSON), one session each")
    s.add_argument("--placement", default="imusic11",
                   help="preset (imusic11, imusic11+head, face6, face4) or a placement .json")
    s.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    s.add_argument("--rig", default=None, metavar="PATH",
                   help="your rig (.glb/.gltf, or a folder/zip of OBJ targets); built-in head "
                        "by default")
    s.add_argument("--chip", default="ICM-42688-P", help="ICM-42688-P, BMI270 or QMI8658")
    s.add_argument("--rate-hz", type=float, default=200.0, help="IMU output rate")
    s.add_argument("--blendshape-rate-hz", type=float, default=60.0, help="blendshape rate")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes (default: one per core)")
    s.add_argument("--mag", action="store_true", help="also simulate a magnetometer per site")
    s.add_argument("--quat", action="store_true",
                   help="also store each sensor's on-board orientation")
    s.add_argument("--tissue-lag-ms", type=float, default=0.0,
                   help="soft tissue: the sensor follows the skin with this time constant")
    s.add_argument("--resume", action="store_true", help="finish an interrupted run")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    s.set_defaults(run=run_synth)

    b = verbs.add_parser("build", help="turn recorded sessions into a dataset",
                         description="Turn session files from `imucap record` into the dataset "
                                     "format the simulator writes: clocks fitted, truth "
                                     "aligned, cut at gaps.")
    b.add_argument("sessions", nargs="+", help="session .mcap files or folders of them")
    b.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    b.add_argument("--name", default=None, help="dataset name (default: the folder's)")
    b.add_argument("--min-segment-s", type=float, default=5.0,
                   help="shortest stretch of paired data kept (default 5)")
    b.add_argument("--max-gap-s", type=float, default=0.25,
                   help="a gap longer than this in either stream cuts the recording")
    b.add_argument("--seed", type=int, default=0, help="seed of the subject split")
    b.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    b.set_defaults(run=run_build)

    i = verbs.add_parser("info", help="what a dataset holds")
    i.add_argument("path", help="dataset folder")
    i.set_defaults(run=run_info)

    pl = verbs.add_parser("plot", help="plot IMU channels over blendshape curves for one clip")
    pl.add_argument("path", help="dataset folder")
    pl.add_argument("--clip", type=int, default=0, help="session index (see 'info')")
    pl.add_argument("--start", type=float, default=0.0, help="seconds into the clip")
    pl.add_argument("--seconds", type=float, default=20.0, help="length to plot")
    pl.add_argument("-o", "--out", default=None, help="PNG path (default: clipN.png)")
    pl.set_defaults(run=run_plot)


class _Progress:
    """A one-line progress bar on stderr (a line per 10 % when not on a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        elapsed = time.monotonic() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        text = (f"{self.label} {done}/{total} sessions [{'#' * int(frac * 30):<30}] "
                f"{100 * frac:3.0f}%  {elapsed:5.0f} s elapsed, about {eta:4.0f} s left")
        if self.tty:
            sys.stderr.write("\r" + text)
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif int(frac * 10) > self.last_decile:
            self.last_decile = int(frac * 10)
            print(text, file=sys.stderr, flush=True)


def run_synth(args: argparse.Namespace) -> int:
    from imucap.datasets.synth import synthesize

    rig = None
    if args.rig:
        from imucap.datasets.rig_io import load_rig_with_report

        loaded = load_rig_with_report(args.rig)
        print(loaded.report.summary())
        rig = loaded.rig
    if args.workers < 1:
        raise ImucapError(f"--workers must be at least 1, got {args.workers}")
    if not args.takes and (args.subjects is None or args.minutes is None):
        raise ImucapError("say how much to make: --subjects N --minutes M, or --takes FILE…")
    command = "imucap " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    start = time.monotonic()
    info = synthesize(args.out, subjects=args.subjects or 0, minutes=args.minutes or 0.0,
                      takes=args.takes, with_mag=args.mag, with_quat=args.quat,
                      tissue_lag_ms=args.tissue_lag_ms,
                      placement=args.placement, rig=rig, chip=args.chip,
                      imu_rate_hz=args.rate_hz, blendshape_rate_hz=args.blendshape_rate_hz,
                      seed=args.seed, progress=_Progress("synth"), resume=args.resume,
                      overwrite=args.overwrite, workers=args.workers, command=command)
    minutes = sum(s.duration_s for s in info.sessions) / 60
    print(f"wrote {args.out}: {len(info.sessions)} sessions, {minutes:.1f} subject-minutes, "
          f"{len(info.sites)} sites at {info.imu_rate_hz:g} Hz, in "
          f"{time.monotonic() - start:.1f} s")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from imucap.record.build import build_dataset

    report = build_dataset(args.sessions, args.out, name=args.name,
                           min_segment_s=args.min_segment_s, max_gap_s=args.max_gap_s,
                           overwrite=args.overwrite, seed=args.seed,
                           progress=_Progress("building"))
    for row in report.recordings:
        residual = "-" if row["residual_ms"] is None else f"{row['residual_ms']:.2f} ms"
        note = f" ({row['alignment_error']})" if row["alignment_error"] else ""
        print(f"{row['file']}: {len(row['sessions'])} session(s), {row['seconds']:.1f} s, "
              f"sync residual {residual}{note}")
    for file, reason in report.skipped:
        print(f"skipped {file}: {reason}")
    info = report.info
    print(f"wrote {args.out}: {len(info.sessions)} sessions of {len(info.subjects)} subject(s)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from imucap.datasets.dataset import open_dataset

    ds = open_dataset(args.path)
    info = ds.info
    size = sum(f.stat().st_size for f in Path(args.path).rglob("*") if f.is_file())
    minutes = sum(s.duration_s for s in info.sessions) / 60
    print(f"{info.name}  ({info.source}, format {info.format}, created {info.created})")
    print(f"  IMU        {len(info.sites)} sites at {info.imu_rate_hz:g} Hz, {info.chip}, "
          f"±{info.accel_range_g} g, ±{info.gyro_range_dps} °/s")
    print(f"  sites      {', '.join(info.sites)}")
    print(f"  placement  {info.placement.get('name', '?')}")
    print(f"  truth      52 ARKit blendshapes and head pose at {info.blendshape_rate_hz:g} Hz")
    print(f"  sessions   {len(info.sessions)}, {minutes:.1f} minutes, "
          f"{len(info.subjects)} subjects, {size / 1e6:.1f} MB")
    for split in ("train", "val", "test"):
        subjects = info.splits.get(split, ())
        n = len(ds.split_indices(split))
        print(f"  {split:<10} {len(subjects)} subjects, {n} sessions")
    gen = info.generator or {}
    if gen:
        print("  generator  " + ", ".join(f"{k}={v}" for k, v in gen.items()
                                          if not isinstance(v, (dict, list))))
    print("  clips:")
    for k, s in enumerate(info.sessions[:20]):
        print(f"    {k:3d}  {s.id:<24} subject {s.subject:<8} {s.duration_s:7.1f} s")
    if len(info.sessions) > 20:
        print(f"    … and {len(info.sessions) - 20} more")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImucapError("plotting needs matplotlib: pip install 'imucap[plot]'") from None
    import numpy as np

    from imucap.datasets.dataset import open_dataset
    from imucap.vocab import ARKIT_NAMES

    ds = open_dataset(args.path)
    if not 0 <= args.clip < len(ds):
        raise ImucapError(f"--clip {args.clip} does not exist: the dataset has clips 0 to "
                          f"{len(ds) - 1} ('imucap dataset info {args.path}' lists them)")
    s = ds.session(args.clip)
    t0, t1 = args.start, args.start + args.seconds
    imu = (s.imu_time_s >= t0) & (s.imu_time_s < t1)
    bs = (s.blendshape_time_s >= t0) & (s.blendshape_time_s < t1)
    if not imu.any():
        raise ImucapError(f"clip {args.clip} has no data between {t0:g} and {t1:g} s "
                          f"(it lasts {s.imu_time_s[-1]:.1f} s)")
    sites = ds.info.sites
    weights = s.blendshapes[bs]
    top = np.argsort(weights.std(axis=0))[::-1][:8]
    rows = len(sites) + 2
    fig, axes = plt.subplots(rows, 1, figsize=(12, 1.0 * rows + 3.0), sharex=True,
                             gridspec_kw={"height_ratios": [1] * (rows - 1) + [3]})
    # The head's own turning rate, from the truth head pose: bursts seen on every site at
    # once and here too are head motion; bursts on some sites only are the face.
    from imucap.rotations import matrix_to_rotvec, rotvec_to_matrix

    head_r = rotvec_to_matrix(s.head_rotvec.astype(float))
    dt = np.diff(s.blendshape_time_s)
    head_rate = np.degrees(np.linalg.norm(matrix_to_rotvec(
        head_r[:-1].swapaxes(-1, -2) @ head_r[1:]), axis=-1) / dt)
    hb = bs[1:]
    axes[0].plot(s.blendshape_time_s[1:][hb], head_rate[hb], lw=0.8, color="black")
    axes[0].set_ylabel("head\n(truth)", rotation=0, ha="right", va="center", fontsize=8)
    gyro_dps = np.degrees(np.linalg.norm(s.gyro[imu], axis=-1))
    accel_dyn = np.abs(np.linalg.norm(s.accel[imu], axis=-1) - 9.80665)
    for k, site in enumerate(sites):
        ax = axes[k + 1]
        ax.plot(s.imu_time_s[imu], gyro_dps[:, k], lw=0.7, color="tab:blue")
        ax2 = ax.twinx()
        ax2.plot(s.imu_time_s[imu], accel_dyn[:, k], lw=0.6, color="tab:orange", alpha=0.7)
        ax2.set_yscale("symlog", linthresh=0.2)
        ax2.set_ylim(bottom=0)
        ax2.set_yticks([])
        ax.set_ylabel(site, rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes[:-1]:
        ax.set_yscale("symlog", linthresh=5.0)  # small face motions stay visible
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
    axes[0].set_title(f"{ds.info.name}, clip {args.clip} ({s.id}, subject {s.subject})\n"
                      f"head turning rate °/s (truth, black); per site |gyro| °/s (blue) and "
                      f"||accel| − g| m/s² (orange), log scales; below, the blendshapes that "
                      f"move most", fontsize=9)
    ax = axes[-1]
    for j in top:
        ax.plot(s.blendshape_time_s[bs], weights[:, j], lw=1.0, label=ARKIT_NAMES[j])
    ax.set_ylim(0, 1)
    ax.set_ylabel("weight")
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    out = Path(args.out or f"clip{args.clip}.png")
    try:
        fig.savefig(out, dpi=90)
    except OSError as exc:
        raise ImucapError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    print(f"wrote {out}")
    return 0
