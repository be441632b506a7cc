"""``realtime-fer train --config configs/train_default.yaml``: train a model bundle."""

from __future__ import annotations

import argparse

from realtime_fer.commands.extract import add_scheduler_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="training config (YAML), e.g. configs/train_default.yaml")
    p.add_argument("--output", help="bundle folder to write (default: the config's 'output')")
    p.add_argument("--family", choices=["randomized", "torch"], help="override the config's model family")
    p.add_argument("--report", help="also write the training report (JSON) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_scheduler_arguments(p)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from rich.console import Console
    from rich.table import Table

    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.trainer import train

    from realtime_fer.data.executors import scheduler_executor

    config = load_train_config(args.config)
    with scheduler_executor(args.scheduler, connect_timeout_s=args.scheduler_timeout, send_files=args.send_files):
        report = train(config, family=args.family, output=args.output, progress=not args.no_progress)
    if args.report:
        from realtime_fer.io_atomic import atomic_write

        with atomic_write(args.report) as fh:
            json.dump(report, fh, indent=2)
    console = Console(file=sys.stdout, width=max(Console().width, 110))
    table = Table(title=f"{report['family']} models -> {report['bundle']} (validation split)")
    for col in ("emotion", "AUC", "accuracy", "bal. acc.", "F1", "threshold", "n_pos", "n_neg", "landmarks"):
        table.add_column(col, justify="right" if col != "emotion" else "left")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for e, m in report["emotions"].items():
        table.add_row(e, fmt(m["auc"]), fmt(m["accuracy"]), fmt(m["balanced_accuracy"]), fmt(m["f1"]), fmt(m["threshold"]), str(m["n_pos"]), str(m["n_neg"]), str(m["n_landmarks"]))
    console.print(table)
    ov = report["overall"]
    console.print(f"overall accuracy (decision rule) {fmt(ov['accuracy'])} on {ov['n']} windows; fit {report['timing']['fit_s']:.2f} s, total {report['timing']['total_s']:.1f} s")
    for e, why in report["skipped"].items():
        console.print(f"skipped {e}: {why}")
    return 0
