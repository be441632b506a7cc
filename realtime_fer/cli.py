"""The ``realtime-fer`` command line: one subcommand per job.

Each subcommand lives in :mod:`realtime_fer.commands` as a module with
``add_arguments(parser)`` and ``run(args) -> int``; command modules import only argparse at
module level and their heavy dependencies inside ``run``, so ``--help`` starts fast. Expected failures (:class:`~realtime_fer.errors.FerError`) print one
``error:`` line and exit non-zero (2); so do OS errors while a command runs (a full disk, a
permission denied: 1) and unexpected ones (1). No traceback is shown unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from realtime_fer import __version__
from realtime_fer.errors import FerError

#: subcommand -> (module under realtime_fer.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "extract": ("extract", "extract face landmarks from a dataset folder into a cache"),
    "train": ("train", "train per-emotion classifiers and write a model bundle"),
    "evaluate": ("evaluate", "evaluate a model bundle on a labelled folder of images/videos"),
    "listen": ("listen", "print messages published by a running recognizer"),
    "keys": ("keys", "write a CURVE key pair (NAME.key, NAME.key_secret) for secure publishing"),
    "bridge": ("bridge", "republish the stream on other middleware (ros4hri: ROS 2 REP-155 topics)"),
    "run": ("run", "recognize a live source and publish the results over ZeroMQ"),
    "serve": ("serve", "serve a live page (video, faces, emotions, their drivers) for a browser"),
    "analyze": ("analyze", "recognize every frame of a file into a JSON-lines file"),
    "bench": ("bench", "per-stage latency and throughput against a bare landmarker loop"),
    "explain": ("explain", "dataset-level relevance of face regions, blendshapes and landmarks per emotion (Integrated Gradients) with heatmaps"),
    "prune": ("prune", "IG-guided progressive landmark pruning with a random ablation; writes a pruned bundle"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realtime-fer", description="Real-time, explainable facial emotion recognition.")
    parser.add_argument("--version", action="version", version=f"realtime-fer {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        mod = importlib.import_module(f"realtime_fer.commands.{module}")
        mod.add_arguments(p)
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # MediaPipe/absl and TFLite log through glog to stderr; keep them quiet unless debugging.
    import os

    os.environ.setdefault("GLOG_minloglevel", "2" if verbosity < 2 else "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if verbosity < 2 else "0")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    mod = importlib.import_module(f"realtime_fer.commands.{args._module}")
    try:
        return int(mod.run(args) or 0)
    except FerError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permission denied, ... while the command ran
        if args.debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only with --debug
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
