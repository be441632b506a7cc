"""Options shared by the commands that run a model bundle over a labelled folder
(``evaluate``, ``explain``). Like the command modules, this imports only argparse at module level."""

from __future__ import annotations

import argparse


def add_dataset_arguments(p: argparse.ArgumentParser, output_help: str) -> None:
    """``--data``, ``--model``, ``--output`` and the extraction options."""
    p.add_argument("--data", required=True, help="labelled folder (ImageFolder, CK+, RAVDESS, CREMA-D or label-named files)")
    p.add_argument("--model", help="model bundle folder (default: the shipped default model)")
    p.add_argument("--output", required=True, help=output_help)
    p.add_argument("--cache", default=".fer_cache", help="landmark cache folder (default .fer_cache)")
    p.add_argument("--workers", type=int, help="extraction processes (default: all cores)")
    p.add_argument("--max-video-frames", type=int, help="read at most this many frames of each video")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def output_path(path: str):  # noqa: ANN201 - pathlib is imported lazily
    """``path`` as a Path, after checking that its folder exists."""
    from pathlib import Path

    from realtime_fer.errors import FerError

    out = Path(path)
    if not out.parent.exists():
        raise FerError(f"output folder does not exist: {out.parent}")
    return out
