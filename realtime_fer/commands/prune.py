"""``realtime-fer prune --config configs/prune_default.yaml``: IG-guided progressive landmark
pruning with a random ablation; writes curves, a report and the pruned bundle."""

from __future__ import annotations

import argparse

from realtime_fer.commands.extract import add_scheduler_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="pruning config (YAML): a training config plus a 'prune' section, e.g. configs/prune_default.yaml")
    p.add_argument("--output", help="folder for curves and report (default: the config's prune.output)")
    p.add_argument("--bundle", help="pruned bundle folder to write (default: the config's prune.bundle)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    add_scheduler_arguments(p)


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console
    from rich.table import Table

    from realtime_fer.training.prune_config import load_prune_config
    from realtime_fer.training.pruning import run_prune

    config = load_prune_config(args.config)
    if args.output:
        config.prune.output = args.output
    if args.bundle:
        config.prune.bundle = args.bundle
    err = Console(stderr=True)
    show = not args.no_progress and err.is_terminal
    from realtime_fer.data.executors import scheduler_executor

    with scheduler_executor(args.scheduler, connect_timeout_s=args.scheduler_timeout, send_files=args.send_files):
        with err.status("pruning", spinner="dots", console=err) if show else _Null() as status:
            report = run_prune(config, progress=(lambda msg: status.update(msg)) if show else None, data_progress=not args.no_progress)

    console = Console(file=sys.stdout, width=max(Console().width, 120))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    table = Table(title=f"pruned bundle -> {report['bundle']} (validation split; criterion {config.prune.criterion}, tolerance {config.prune.tolerance})")
    for col in ("emotion", "landmarks", "AUC", "bal. acc.", "IG-random at chosen", "IG>random", "MACs saved", "ONNX ms/window"):
        table.add_column(col, justify="left" if col == "emotion" else "right")
    for e, r in report["emotions"].items():
        n, c, sel = r["n_landmarks"], r["cost"], r["selection"]
        margin = r["margins"].get(n["pruned"])
        auc = f"{fmt(r['full']['auc'])} -> {fmt(r['pruned']['auc'])}"
        if r["full"]["auc"] is None:  # no validation positive: chosen on the calibration split
            auc = f"cal. {fmt(sel['full'])} -> {fmt(sel['chosen'])}"
        table.add_row(
            e, f"{n['full']} -> {n['pruned']}", auc, f"{fmt(r['full']['balanced_accuracy'])} -> {fmt(r['pruned']['balanced_accuracy'])}",
            "-" if margin is None else f"{margin:+.3f}", f"{r['margin_summary'].get('ig_better', 0)}/{r['margin_summary']['sizes']}",
            f"{100 * c['macs_saved']:.0f}%", f"{c['full']['onnx_ms_per_window']:.3f} -> {c['pruned']['onnx_ms_per_window']:.3f}",
        )
    console.print(table)
    t = report["timing"]
    ca = report["cost_all_emotions"]
    console.print(f"all emotions: ONNX {ca['onnx_ms_per_window_full']:.3f} -> {ca['onnx_ms_per_window_pruned']:.3f} ms per window; "
                  f"MACs {ca['macs_full']:,} -> {ca['macs_pruned']:,}")
    console.print(f"wall time {t['total_s']:.1f} s (data {t['prepare_s']:.1f} s, IG pruning {t['ig_pruning_s']:.1f} s of which relevance {t['ig_relevance_s']:.1f} s, "
                  f"random ablation {t['random_ablation_s']:.1f} s); curves and report in {config.prune.output}")
    for e, why in report["skipped"].items():
        console.print(f"skipped {e}: {why}")
    return 0


class _Null:
    """A stand-in for a rich status when no progress is shown."""

    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, *args: object, **kwargs: object) -> None:
        return None
