#!/usr/bin/env python3
"""Write one split of a training config's data as a symlinked ImageFolder, to evaluate on it.

    python tools/export_split.py --config configs/train_default.yaml --split validation \
        --source rafdb --output /tmp/rafdb_val
    realtime-fer evaluate --data /tmp/rafdb_val --output rafdb_val_metrics.json

The split is the one ``realtime-fer train`` uses (group hash with the config's split seed), so
the images are exactly the held-out validation (or calibration) images of the trained model.
Only image samples are exported.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train_default.yaml")
    ap.add_argument("--split", choices=["train", "validation", "calibration"], default="validation")
    ap.add_argument("--source", help="only this source (its name in the config)")
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    from realtime_fer.data.layouts import discover
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.splits import group_split
    from realtime_fer.training.trainer import CALIBRATION, TRAIN, VALIDATION

    cfg = load_train_config(args.config)
    want = {"train": TRAIN, "validation": VALIDATION, "calibration": CALIBRATION}[args.split]
    out = Path(args.output)
    n = 0
    for src in cfg.data.sources:
        name = src.name or Path(src.path).name
        if args.source and name != args.source:
            continue
        found = discover(src.path)
        groups = [f"{name}:{s.group}" for s in found.samples]
        split = group_split(groups, [cfg.data.validation_fraction, cfg.data.calibration_fraction], seed=cfg.data.split_seed)
        for s, k in zip(found.samples, split):
            if k != want or s.kind != "image":
                continue
            dest = out / s.label / f"{name}__{s.path.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                os.symlink(s.path.resolve(), dest)
            n += 1
    print(f"{n} images of the {args.split} split -> {out}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
