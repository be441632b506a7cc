#!/usr/bin/env python3
"""Time the fitting of all binary models from cached landmarks (the "trains in seconds" claim).

    python tools/bench_training.py --config configs/train_default.yaml --repeat 3

Loads the config's sources from the landmark cache (run ``realtime-fer extract`` or a training
run first), builds the training windows once, then fits every emotion's model on the full face
mesh ``--repeat`` times and prints each fit time with the load average. Only the fit is timed:
hidden features, Gram matrices and the per-emotion ridge solves (randomized family), or the
gradient training (``--family torch``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train_default.yaml")
    ap.add_argument("--family", choices=["randomized", "torch"], help="override the config's family")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import numpy as np

    from realtime_fer.errors import FerError
    from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.fitting import fit_models
    from realtime_fer.training.trainer import prepare

    try:
        config = load_train_config(args.config)
        prep = prepare(config, progress=False)
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    family = args.family or config.model.family
    subsets = {e: list(range(NUM_MESH_LANDMARKS)) for e in prep.emotions}
    print(f"{family}: {len(prep.emotions)} emotions, {len(prep.train_rows)} training windows, {prep.jittered.features.shape[1]} pooled inputs")
    times = []
    for k in range(args.repeat):
        load = os.getloadavg()[0]
        _, seconds = fit_models(family, prep.jittered, prep.codes_train, prep.positives, subsets, window_length=config.window.length,
                                randomized=config.model.randomized, torch=config.model.torch, rows=prep.train_rows)
        times.append(seconds)
        print(f"fit {k + 1}: {seconds:.2f} s (1-min load average before: {load:.2f})")
    print(f"median {float(np.median(times)):.2f} s, min {min(times):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
