"""Entry point of the ``imucap`` command: sub-commands, and one-line errors for user mistakes."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from imucap import __version__
from imucap.errors import ImucapError

from . import (
    au_cmd,
    au_head_cmd,
    convert_cmd,
    dataset_cmd,
    devices_cmd,
    emulate_cmd,
    eval_cmd,
    expression_cmd,
    finetune_cmd,
    record_cmd,
    render_cmd,
    session_cmd,
    speech_data_cmd,
    stream_cmd,
    train_cmd,
    view_cmd,
)

COMMANDS = (devices_cmd, stream_cmd, emulate_cmd, dataset_cmd, train_cmd, eval_cmd,
            finetune_cmd, convert_cmd, render_cmd, view_cmd, record_cmd,
            session_cmd, au_cmd, expression_cmd, au_head_cmd, speech_data_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imucap",
        description="Sensor-based facial capture: face-worn IMUs to ARKit blendshapes and AUs.",
    )
    parser.add_argument("--version", action="version", version=f"imucap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Commands whose KEY=VALUE settings may come after options collect the stragglers.
    target = getattr(args, "trailing", None)
    if extra and target and not any(e.startswith("-") for e in extra):
        getattr(args, target).extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that left is noticed here
        return code
    except ImucapError as exc:
        print(f"imucap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``imucap … | head``): not an error; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
