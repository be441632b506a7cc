"""Configuration of the live recognizer (``configs/runtime_default.yaml``), as dataclasses.

Every section reuses the options class of the stage it configures, so a key documented on that
class is a key of the YAML file:

========================  ====================================================================
section                   class
========================  ====================================================================
``capture``               :class:`~realtime_fer.capture.CaptureOptions`
``landmarker``            :class:`~realtime_fer.landmarks.LandmarkerOptions`
``finder``                :class:`~realtime_fer.landmarks.finder.FinderOptions`
``tracking``              :class:`~realtime_fer.landmarks.tracking.TrackerOptions`
``publish``               :class:`~realtime_fer.publish.PublisherOptions`
``explain``               :class:`~realtime_fer.explain.stream.StreamExplainOptions`
``smoothing``             :class:`~realtime_fer.models.smoothing.SmoothingOptions`
``adaptation``            :class:`~realtime_fer.features.adaptation.AdaptationOptions`
``window``                :class:`~realtime_fer.features.windows.LiveWindowOptions`
``pacing``                :class:`~realtime_fer.pipeline.pacing.PacingOptions`
========================  ====================================================================

plus the top-level keys of :class:`RuntimeConfig`. Unknown keys and wrong types are errors
(:func:`~realtime_fer.config_io.from_dict`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from realtime_fer.capture.options import CaptureOptions
from realtime_fer.config_io import from_dict, load_yaml
from realtime_fer.explain.stream import StreamExplainOptions
from realtime_fer.features.adaptation import AdaptationOptions
from realtime_fer.features.windows import LiveWindowOptions
from realtime_fer.landmarks.detector import LandmarkerOptions
from realtime_fer.landmarks.finder import FinderOptions
from realtime_fer.landmarks.tracking import TrackerOptions
from realtime_fer.models.smoothing import SmoothingOptions
from realtime_fer.pipeline.pacing import PacingOptions
from realtime_fer.publish.frames import FrameImageOptions
from realtime_fer.publish.publisher import PublisherOptions

if TYPE_CHECKING:
    from realtime_fer.models.bundle import ModelBundle

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]


def _default_landmarker() -> LandmarkerOptions:
    # One face: MediaPipe's VIDEO mode re-runs its face detector on every frame while fewer
    # faces than num_faces are in view, and the re-detected crops make the landmarks of the one
    # face jitter 2-3x more than tracked ones (median frame-to-frame change of the normalised
    # landmarks, MEAD neutral.mp4 0.00072 vs 0.00216; wild angry.mp4 0.0096 vs 0.0213). The
    # models read that jitter as motion: with num_faces 2 the shipped model gets 7 of the 15
    # labelled clips (live), with 1 it gets 9 (tools/generalisation_report.py --bundle default
    # --live [--num-faces 1]; docs/video.md).
    return LandmarkerOptions(num_faces=1)


def _default_capture() -> CaptureOptions:
    # One frame in the live queue: the pipeline always takes the newest frame, never one that
    # waited behind another (lower capture-to-publish latency; files are unaffected).
    return CaptureOptions(queue_size=1)


@dataclass
class StreamConfig:
    """One source of a multi-stream run (an entry of the YAML list ``streams``)."""

    id: str
    """Stream id: topics ``fer.<id>.``; letters, digits, ``_`` and ``-``, unique in the run."""
    source: str | int
    """Camera index, ``rtsp://`` / ``http(s)://`` URL, video file or image."""
    capture: dict[str, Any] | None = None
    """Keys of the ``capture`` section that differ for this stream (e.g. ``realtime: true``,
    ``camera_fps: 15``); the others come from the run's ``capture`` section."""

    def __post_init__(self) -> None:
        from realtime_fer.publish.schema import check_stream_id

        check_stream_id(self.id)
        if isinstance(self.source, bool) or (isinstance(self.source, str) and not self.source.strip()):
            raise ValueError(f"stream {self.id!r}: source must be a camera index, URL or file")
        if self.capture is not None:
            from_dict(CaptureOptions, self.capture, f"stream {self.id!r} capture")  # unknown keys and wrong types fail here

    def capture_options(self, base: CaptureOptions) -> CaptureOptions:
        """``base`` with this stream's overrides."""
        if not self.capture:
            return base
        return from_dict(CaptureOptions, {**_fields(base), **self.capture}, f"stream {self.id!r} capture")


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


@dataclass
class RuntimeConfig:
    """Everything ``realtime-fer run`` / ``analyze`` / ``bench`` need besides the source."""

    capture: CaptureOptions = field(default_factory=_default_capture)
    landmarker: LandmarkerOptions = field(default_factory=_default_landmarker)
    """Face Landmarker options: ``num_faces`` faces from the whole frame (with the finder off,
    also the number of faces tracked at once); ``delegate: gpu`` falls back to the CPU with one
    log line when the GPU is unusable."""
    finder: FinderOptions = field(default_factory=FinderOptions)
    """The face-finding pass (small and many faces, each landmarked on an upscaled crop of its
    own) and ``max_faces``, the faces tracked at once; see :mod:`realtime_fer.landmarks.finder`."""
    tracking: TrackerOptions = field(default_factory=TrackerOptions)
    publish: PublisherOptions = field(default_factory=PublisherOptions)
    explain: StreamExplainOptions = field(default_factory=StreamExplainOptions)
    """Integrated Gradients attributions in every prediction (``enabled: false`` to skip)."""
    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    """Each face's ``top`` is decided on its probabilities smoothed over time (published as
    ``smoothed``), so that a talking face does not flicker between emotions."""
    adaptation: AdaptationOptions = field(default_factory=AdaptationOptions)
    """Person-adaptive normalisation: each face's resting face, learnt from its own still,
    neutral windows, is removed from its features (``enabled: true``; off by default)."""
    window: LiveWindowOptions = field(default_factory=LiveWindowOptions)
    """Partial windows (``min_seconds``) and the ring buffers' ``max_fps``; a window's span and
    hop in seconds come from the model bundle."""
    pacing: PacingOptions = field(default_factory=PacingOptions)
    """Live sources on a host slower than the source: each stream takes its next frame no sooner
    than its recent busy time allows, so frames are dropped at the capture (evenly) instead of
    waiting behind other work; see :mod:`realtime_fer.pipeline.pacing`."""
    model: str | None = None
    """Model bundle folder; ``null``: the default model shipped in the package."""
    device: Device = "auto"
    """Where onnxruntime runs the emotion models: ``auto`` (CUDA when usable), ``cpu``, ``cuda``."""
    show: bool = False
    """Open an OpenCV window with boxes, landmarks and emotion bars (needs a display)."""
    include_landmarks: bool = False
    """Put each face's 478 pixel landmarks into its predictions (larger messages)."""
    frames: FrameImageOptions = field(default_factory=FrameImageOptions)
    """Small JPEGs of the processed frames on ``fer.<stream>.frame.`` (off by default; on for
    ``realtime-fer serve``, or ``run --publish-frames`` for a ``serve --connect`` elsewhere)."""
    blas_threads: int = 1
    """Threads of numpy's BLAS while a recognizer runs (restored after :meth:`Recognizer.run`). The per-frame matrix products
    (attributions) are small, and on a busy 2-core machine OpenBLAS's thread hand-offs made a
    (16 x 1404) @ (1404 x 512) product 50x slower (56 ms vs 1.1 ms with one thread)."""
    pin_threads: bool = True
    """Linux, 2+ CPUs: the landmarker on the first usable CPU, the capture and worker threads on
    the others (see :mod:`realtime_fer.affinity`); ``false`` leaves placement to the OS."""
    pipelined: bool = True
    """Score, explain and publish frame k in a worker thread while the landmarker runs on frame
    k+1 (messages keep their order). ``false``: one frame at a time on the main thread."""
    no_face_interval_s: float = 1.0
    """While no face is in view, repeat the ``no_face`` status this often (seconds)."""
    heartbeat_interval_s: float | None = None
    """Send a ``heartbeat`` status this often (seconds), whatever the source is doing, with the
    running counts (frames, dropped, fps): a subscriber that stops hearing it knows the
    recognizer is gone. ``null`` (default): no heartbeat."""
    streams: list[StreamConfig] = field(default_factory=list)
    """Several sources in one run (used by ``run`` when no ``--source`` is given), each with its own capture
    thread, landmarker, tracker and status on the one publisher, topics ``fer.<id>.``; empty:
    one source from the command line. See :mod:`realtime_fer.pipeline.multistream`."""

    def __post_init__(self) -> None:
        if self.no_face_interval_s <= 0:
            raise ValueError("no_face_interval_s must be > 0")
        if self.heartbeat_interval_s is not None and not self.heartbeat_interval_s > 0:
            raise ValueError("heartbeat_interval_s must be > 0 (or null for none)")
        seen: set[str] = set()
        for stream in self.streams:
            if stream.id in seen:
                raise ValueError(f"duplicate stream id {stream.id!r} in streams (every stream needs its own id)")
            seen.add(stream.id)
        if self.blas_threads < 1:
            raise ValueError("blas_threads must be >= 1")

    @property
    def max_faces(self) -> int:
        """Faces tracked (and scored) at once: ``finder.max_faces`` (at least ``landmarker.num_faces``)
        with the finder, ``landmarker.num_faces`` without it."""
        if self.finder.enabled:
            return max(self.finder.max_faces, self.landmarker.num_faces)
        return self.landmarker.num_faces


def config_for_bundle(config: RuntimeConfig, bundle: ModelBundle) -> RuntimeConfig:
    """``config``, with the landmarker computing blendshapes when ``bundle``'s models read them."""
    if bundle.blendshapes and not config.landmarker.blendshapes:
        log.info("the model reads blendshapes: the landmarker computes them")
        return dataclasses.replace(config, landmarker=dataclasses.replace(config.landmarker, blendshapes=True))
    return config


def load_runtime_config(path: str | Path | None = None) -> RuntimeConfig:
    """The runtime configuration from a YAML file; defaults when ``path`` is ``None``.

    Raises:
        ConfigError: the file is missing, not YAML, or has an unknown key or a wrong type.
    """
    if path is None:
        return RuntimeConfig()
    return from_dict(RuntimeConfig, load_yaml(path), "config")
