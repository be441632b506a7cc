"""``realtime-fer extract DATA_DIR``: extract face landmarks of a dataset into the cache.

Prints per-label detection counts, the files that failed or were skipped, and the time taken.
Exits 0 when at least one sample was extracted (failed files are listed, not fatal).
With ``--scheduler tcp://HOST:PORT`` the landmarks are computed on a Dask cluster and the cache
is written here, as in a local run (docs/distributed.md).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realtime_fer.data.extract import ExtractionResult

#: Most failed/skipped entries printed of each kind (``--report`` writes them all).
MAX_LISTED = 50


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 2], got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_scheduler_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scheduler``, ``--scheduler-timeout`` and ``--send-files`` (also used by ``evaluate``)."""
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run the landmark extraction on a Dask cluster, e.g. tcp://HOST:8786 (needs the distributed extra; --workers is then not used; docs/distributed.md)",
    )
    parser.add_argument("--scheduler-timeout", metavar="S", type=_positive_float, default=10.0, help="with --scheduler: seconds to wait for the scheduler, and for a worker when the cluster has none (default: %(default)s)")
    parser.add_argument("--send-files", action="store_true", help="with --scheduler: send the files' bytes to the workers (storage not shared); default: workers read the same paths")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``realtime-fer extract``."""
    parser.add_argument("data_dir", metavar="DATA_DIR", help="dataset folder (ImageFolder, CK+, RAVDESS, CREMA-D or label-named files)")
    parser.add_argument("--output", metavar="CACHE", default=".fer_cache", help="landmark cache folder (default: %(default)s)")
    parser.add_argument("--workers", metavar="N", type=_non_negative_int, default=None, help="worker processes (default: all cores; 0: in this process)")
    parser.add_argument("--max-video-frames", metavar="N", type=_positive_int, default=None, help="read at most the first N frames of each video")
    parser.add_argument(
        "--pad-fraction",
        metavar="F",
        type=_fraction,
        default=None,
        help="black border around stills (and videos under 200 px), as a fraction of the longer side (default: 0.25)",
    )
    parser.add_argument("--landmarker-model", metavar="PATH", default=None, help="face_landmarker.task to use (default: see docs)")
    parser.add_argument("--blendshapes", action="store_true", help="also store MediaPipe's 52 blendshape scores per frame (a separate cache entry)")
    parser.add_argument("--no-find-faces", action="store_true", help="do not look for small faces with the face finder in images where the whole image shows none (a separate cache entry)")
    add_scheduler_arguments(parser)
    parser.add_argument("--report", metavar="PATH", default=None, help="write a JSON report (all counts, failed and skipped files)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the extraction and print its summary."""
    from realtime_fer.data.executors import scheduler_executor
    from realtime_fer.data.extract import default_options, extract_dataset
    from realtime_fer.errors import DataError

    options = default_options()
    if args.pad_fraction is not None:
        options.pad_fraction = args.pad_fraction
    if args.landmarker_model:
        options.model_path = args.landmarker_model
    options.blendshapes = bool(args.blendshapes)
    options.find_faces = not args.no_find_faces
    with scheduler_executor(args.scheduler, connect_timeout_s=args.scheduler_timeout, send_files=args.send_files) as executor:
        result = extract_dataset(
            args.data_dir,
            args.output,
            options=options,
            workers=args.workers,
            progress=not args.no_progress,
            max_video_frames=args.max_video_frames,
            executor=executor,
        )
    _print_summary(result, args.output)
    if args.report:
        _write_report(result.to_report(), args.report)
    if not result.samples:
        raise DataError(f"nothing could be extracted from {args.data_dir}: all {len(result.failed)} sample(s) failed (listed above)")
    return 0


def _write_report(report: dict, path: str) -> None:
    import json
    from pathlib import Path

    from realtime_fer.errors import FerError

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        from realtime_fer.io_atomic import write_text_atomic

        write_text_atomic(p, json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise FerError(f"cannot write report {p}: {exc.strerror or exc}") from None


def _print_summary(result: "ExtractionResult", cache_dir: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    per_label = result.per_label
    multi = any(s.n_frames > 1 for s in result.samples)
    table = Table(title=f"{result.data_dir} ({result.layout} layout)")
    table.add_column("label")
    table.add_column("n", justify="right")
    table.add_column("detected", justify="right")
    table.add_column("rate", justify="right")
    if multi:
        table.add_column("frames", justify="right")
        table.add_column("frames w/ face", justify="right")
    tot = [0, 0, 0, 0]
    for label, c in per_label.items():
        row = [label, str(c["n"]), str(c["detected"]), f"{c['rate']:.1%}"]
        if multi:
            row += [str(c["frames"]), f"{c['frames_detected'] / max(1, c['frames']):.1%}"]
        table.add_row(*row)
        for i, k in enumerate(("n", "detected", "frames", "frames_detected")):
            tot[i] += int(c[k])
    total = ["total", str(tot[0]), str(tot[1]), f"{tot[1] / max(1, tot[0]):.1%}"]
    if multi:
        total += [str(tot[2]), f"{tot[3] / max(1, tot[2]):.1%}"]
    table.add_section()
    table.add_row(*total, style="bold")
    console.print(table)
    for title, items in (("failed", result.failed), ("skipped", result.skipped)):
        if not items:
            continue
        console.print(f"[bold]{title}: {len(items)} file(s)[/bold]")
        for path, reason in items[:MAX_LISTED]:
            console.print(f"  {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True)
        if len(items) > MAX_LISTED:
            console.print(f"  ... and {len(items) - MAX_LISTED} more (--report PATH writes them all)")
    console.print(
        f"{len(result.samples)} sample(s): {result.n_cached} from the cache, {result.n_computed} computed, "
        f"{len(result.failed)} failed, {len(result.skipped)} skipped in {result.elapsed_s:.1f} s; cache: {escape(str(cache_dir))}",
        highlight=False,
        soft_wrap=True,
    )
