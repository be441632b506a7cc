"""Detection rate of dataset extraction with and without the face finder (issue 21).

    PYTHONPATH=. python tools/bench_extract_faces.py [--n 500] [--seed 0]

A random sample of ``--n`` images of each of ``../shared/data/rafdb/train`` and
``../shared/data/fer2013/train`` goes through :func:`realtime_fer.data._worker.extract_one`
with the dataset defaults (25 % padding), then with ``find_faces: true``; prints the share of
images that yield a face. Nothing is cached or written.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from pathlib import Path

import numpy as np

from realtime_fer.data import _worker
from realtime_fer.data.extract import default_options
from realtime_fer.data.layouts import SampleRef

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name in ("rafdb", "fer2013"):
        files = sorted((DATA / name / "train").glob("*/*"))
        if not files:
            print(f"{name}: no data under {DATA / name / 'train'}")
            continue
        sample = random.Random(args.seed).sample(files, min(args.n, len(files)))
        for find in (False, True):
            config = _worker.WorkerConfig(options=dataclasses.replace(default_options(), find_faces=find), quiet_native=False)
            t0 = time.perf_counter()
            found = 0
            for f in sample:
                ref = SampleRef(path=f, label=f.parent.name, group=f.stem, kind="image")
                cached = _worker.extract_one(ref, config)
                found += int(not np.isnan(cached.landmarks).all())
            dt = time.perf_counter() - t0
            print(f"{name:8s} find_faces={str(find):5s}: {found}/{len(sample)} = {100.0 * found / len(sample):.1f} % with a face ({1000 * dt / len(sample):.1f} ms/image)", flush=True)
            _worker.close_detectors()


if __name__ == "__main__":
    main()
