#!/usr/bin/env python3
"""Train both model families on the same cached data and split, and print them side by side.

    python tools/compare_families.py --config configs/train_default.yaml --output families.json

Reports, per family: the time to fit all binary models from cached landmarks (windows built,
calibration excluded), and per-emotion validation AUC / balanced accuracy, overall and on each
source (e.g. RAF-DB alone). Landmarks come from the extraction cache, so run
``realtime-fer extract`` (or a training run) first to make this fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train_default.yaml")
    ap.add_argument("--families", nargs="+", default=["randomized", "torch"])
    ap.add_argument("--output", help="write the comparison as JSON")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    from realtime_fer.errors import FerError
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.trainer import train

    try:
        config = load_train_config(args.config)
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for fam in args.families:
                results[fam] = train(config, family=fam, output=Path(tmp) / fam, progress=False)
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    emotions = list(next(iter(results.values()))["emotions"])
    sources = sorted(next(iter(results.values()))["by_source"])
    print("fit time (all binary models, cached landmarks): " + ", ".join(f"{f} {r['timing']['fit_s']:.2f} s" for f, r in results.items()))
    for scope in ["all", *sources]:
        print(f"\nvalidation AUC / balanced accuracy ({scope})")
        print(f"{'emotion':<10}" + "".join(f"{f:>24}" for f in results))
        for e in emotions:
            cells = []
            for r in results.values():
                m = r["emotions"][e] if scope == "all" else r["by_source"][scope]["emotions"].get(e, {})
                auc, bal = m.get("auc"), m.get("balanced_accuracy")
                cells.append(f"{'-' if auc is None else f'{auc:.3f}':>12} / {'-' if bal is None else f'{bal:.3f}':<9}")
            print(f"{e:<10}" + "".join(f"{c:>24}" for c in cells))
        ov = [r["overall"] if scope == "all" else r["by_source"][scope]["overall"] for r in results.values()]
        print(f"{'overall':<10}" + "".join(f"{_fmt(o['accuracy']):>24}" for o in ov))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
