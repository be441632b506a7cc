#!/usr/bin/env python3
"""Time landmark extraction locally and on a loopback Dask cluster of 1 and 2 workers.

    python tools/bench_distributed.py --data ../shared/data/rafdb/train --limit 200

Takes ``--limit`` files of the folder (spread evenly over its label folders, as symlinks in a
temporary ImageFolder; a folder of label-named files such as ``video/mead`` is taken whole), then extracts them into a fresh cache each time: with a local pool of
1 and 2 processes, and through ``--scheduler`` on a cluster of 1 and 2 single-thread
``dask worker --no-nanny`` processes started here (the cluster is up and its workers registered
before the clock starts, so each Dask time includes the workers' first detector, as the local
times include starting the pool). Each of ``--repeat`` rounds runs every count, local then Dask,
into fresh caches on fresh clusters. Prints the seconds of each run, the medians, the speed-up
of 2 workers over 1, and whether every Dask cache entry equals the local one.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _subset(src: Path, dst: Path, limit: int) -> int:
    """Symlink about ``limit`` files of ``src``'s label folders into ``dst``; returns how many."""
    import numpy as np

    labels = sorted(d for d in src.iterdir() if d.is_dir())
    if not labels:  # label-named files (e.g. the MEAD clips): the folder as it is
        dst.symlink_to(src.resolve(), target_is_directory=True)
        return sum(1 for f in src.iterdir() if f.is_file())
    per = max(1, limit // len(labels))
    n = 0
    for d in labels:
        files = sorted(f for f in d.iterdir() if f.is_file())
        pick = [files[i] for i in np.linspace(0, len(files) - 1, min(per, len(files))).round().astype(int)] if files else []
        (dst / d.name).mkdir(parents=True, exist_ok=True)
        for f in dict.fromkeys(pick):
            (dst / d.name / f.name).symlink_to(f.resolve())
            n += 1
    return n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Cluster:
    """``dask scheduler`` + ``n`` ``dask worker --nthreads 1 --no-nanny`` on loopback."""

    def __init__(self, n: int, logdir: Path) -> None:
        import distributed

        self.address = f"tcp://127.0.0.1:{_free_port()}"
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.procs: list[subprocess.Popen] = []
        try:
            port = self.address.rsplit(":", 1)[1]
            self._start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"], env, logdir / "scheduler.log")
            for i in range(n):
                self._start([str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard"], env, logdir / f"worker{i}.log")
            with distributed.Client(self.address, timeout="60s", set_as_default=False) as client:
                client.wait_for_workers(n, timeout=120)
        except BaseException:
            self.close()
            raise

    def _start(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        with open(log, "wb") as fh:
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent, start_new_session=True))

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait(timeout=30)


def _same(a: Path, b: Path) -> bool:
    import numpy as np

    ea = {p.relative_to(a): p for p in a.rglob("*.npz")}
    eb = {p.relative_to(b): p for p in b.rglob("*.npz")}
    if sorted(ea) != sorted(eb):
        return False
    for k in ea:
        with np.load(ea[k]) as za, np.load(eb[k]) as zb:
            if sorted(za.files) != sorted(zb.files) or not all(np.array_equal(za[f], zb[f], equal_nan=za[f].dtype.kind == "f") for f in za.files):
                return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/rafdb/train", help="an ImageFolder (label folders of files)")
    ap.add_argument("--limit", type=int, default=200, help="about this many files, spread over the labels")
    ap.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (each: every count, local then Dask, fresh caches and clusters)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from realtime_fer.data.executors import DaskExecutor, DaskOptions
    from realtime_fer.data.extract import extract_dataset
    from realtime_fer.errors import FerError

    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="fer_bench_dask_") as tmp_s:
        tmp = Path(tmp_s)
        n = _subset(Path(args.data), tmp / "data", args.limit)
        print(f"{n} files of {args.data}; {os.cpu_count()} CPU cores; 1-min load average {os.getloadavg()[0]:.2f}")
        rows = []
        try:
            for r in range(args.repeat):
                for w in counts:
                    run = tmp / f"r{r}w{w}"
                    t0 = time.perf_counter()
                    res = extract_dataset(tmp / "data", run / "local", workers=w, progress=False)
                    rows.append(("local pool", w, time.perf_counter() - t0, len(res.samples), None))
                    (run / "logs").mkdir()
                    cluster = _Cluster(w, run / "logs")
                    try:
                        with DaskExecutor(DaskOptions(cluster.address)) as ex:
                            t0 = time.perf_counter()
                            res = extract_dataset(tmp / "data", run / "dask", progress=False, executor=ex)
                            rows.append(("dask", w, time.perf_counter() - t0, len(res.samples), _same(run / "local", run / "dask")))
                    finally:
                        cluster.close()
                    print(f"round {r + 1}, {w} worker(s): local {rows[-2][2]:.2f} s, dask {rows[-1][2]:.2f} s; load average {os.getloadavg()[0]:.2f}", flush=True)
        except FerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"all Dask caches equal to the local ones: {'yes' if all(s for *_, s in rows if s is not None) else 'NO'}")
    for kind in ("local pool", "dask"):
        med = {w: statistics.median(s for kd, ww, s, _, _ in rows if kd == kind and ww == w) for w in counts}
        k = rows[0][3]
        print(f"{kind:10s} " + ", ".join(f"{w} worker(s) {s:.2f} s ({k / s:.1f} samples/s)" for w, s in med.items()) + " (median of rounds)")
        if 1 in med and 2 in med:
            print(f"{kind:10s} 2 workers vs 1: {med[1] / med[2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
