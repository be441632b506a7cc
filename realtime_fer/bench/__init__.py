"""``realtime-fer bench``: where the time of the pipeline goes, against a bare landmarker loop.

One module per bench, and what they share:

- :mod:`~realtime_fer.bench.file`: a **video file** (or image). Three passes over the same frames:
  *staged* (:mod:`~realtime_fer.bench.staged`: one thread runs each stage in turn and times it),
  *bare* (:mod:`~realtime_fer.bench.bare`: a fresh VIDEO-mode Face Landmarker alone over the
  decoded frames, on the landmarker's CPU when ``pin_threads`` is on) and *end-to-end* (the real
  :class:`~realtime_fer.pipeline.recognizer.Recognizer`). Bare and end-to-end passes alternate
  ``repeat`` times; the report's ratio is the median of the pair ratios.
- :mod:`~realtime_fer.bench.live`: a **live source** (camera, stream) for ``duration`` seconds:
  stage times, capture-to-publish latency, then the bare landmarker over the frames it saw.
- :mod:`~realtime_fer.bench.streams`: ``--streams N``, N copies of a video at once through the
  multi-stream path of ``run``; per stream fps and latency.
- :mod:`~realtime_fer.bench.harness`: the draining subscriber process, the bench's publishing
  socket, one end-to-end pass; :mod:`~realtime_fer.bench.report`: the single-stream report.
"""

from __future__ import annotations

import os

from realtime_fer.bench.file import bench_file
from realtime_fer.bench.live import bench_live
from realtime_fer.bench.report import BenchReport
from realtime_fer.bench.streams import StreamBench, StreamsBenchReport, run_bench_streams
from realtime_fer.capture.sources import parse_source
from realtime_fer.models.bundle import load_bundle
from realtime_fer.pipeline.config import RuntimeConfig, config_for_bundle

__all__ = ["BenchReport", "StreamBench", "StreamsBenchReport", "run_bench", "run_bench_streams"]


def run_bench(
    source_arg: str,
    config: RuntimeConfig,
    *,
    max_frames: int | None = None,
    repeat: int = 1,
    duration_s: float = 20.0,
) -> BenchReport:
    """Benchmark the pipeline on ``source_arg``: a file with :func:`~realtime_fer.bench.file.bench_file`,
    a live source with :func:`~realtime_fer.bench.live.bench_live`.

    Raises:
        FerError: the bundle or the source cannot be opened.
    """
    bundle = load_bundle(config.model)
    config = config_for_bundle(config, bundle)  # the bare loop computes what the pipeline's landmarker does
    load_before = os.getloadavg()
    if parse_source(source_arg).is_live:  # opened once only: a stream server may take one client
        return bench_live(source_arg, config, bundle, duration_s, load_before)
    return bench_file(source_arg, config, bundle, max_frames=max_frames, repeat=repeat, load_before=load_before)
