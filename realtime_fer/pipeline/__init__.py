"""The live recognizer, one job per module.

* :mod:`.config`: :class:`RuntimeConfig` (``configs/runtime_default.yaml``).
* :mod:`.processor`: :class:`FrameProcessor`, one frame through landmarks, tracking, the Numba
  feature selector and the emotion models.
* :mod:`.inference`: :class:`WindowScorer`, all emotion models on gathered batches.
* :mod:`.recognizer`: :class:`Recognizer`, the capture loop, status events and sinks;
  :func:`open_recognizer` builds one from a source and a config.
* :mod:`.sinks`: ZeroMQ publisher, JSON lines, memory.
* :mod:`.display`: the ``--show`` window.
* ``realtime-fer bench`` lives in :mod:`realtime_fer.bench`.
* :mod:`.stats`: latency summaries.
"""

from realtime_fer.pipeline.config import RuntimeConfig, load_runtime_config
from realtime_fer.pipeline.processor import FaceResult, FrameProcessor, FrameResult, StageTimes
from realtime_fer.pipeline.recognizer import Recognizer, RunSummary, open_recognizer
from realtime_fer.pipeline.sinks import JsonlSink, ListSink, MessageSink, PublisherSink

__all__ = [
    "FaceResult",
    "FrameProcessor",
    "FrameResult",
    "JsonlSink",
    "ListSink",
    "MessageSink",
    "PublisherSink",
    "Recognizer",
    "RunSummary",
    "RuntimeConfig",
    "StageTimes",
    "load_runtime_config",
    "open_recognizer",
]
