"""One frame through the pipeline: landmarks -> tracking -> feature selector -> emotion models.

:class:`FrameProcessor` owns the per-source state (the VIDEO-mode landmarker, the face tracker,
the ring buffers) and turns each :class:`~realtime_fer.capture.Frame` into a
:class:`FrameResult`: the tracked faces, the track changes, and a :class:`~realtime_fer.publish.Prediction` for each
face that is due a decision. Windows are in source time (see
:mod:`realtime_fer.features.windows`, *Windows in seconds*): each frame goes into its face's
ring buffer with its source time (the VIDEO-mode timestamp), a face is first decided once it
has been seen for ``window.min_seconds`` (a *partial* window, flagged) or has a full window, and
then every ``hop_seconds`` of source time (one :class:`~realtime_fer.features.windows.DecisionClock`
per face). The faces due in a frame are scored together: one ``session.run`` per step.

:meth:`FrameProcessor.process` is :meth:`~FrameProcessor.detect` (the landmarker) followed by
:meth:`~FrameProcessor.finish` (tracking, ring buffers, emotion models, attributions,
predictions). The two halves share no mutable state: ``detect`` owns the landmarker and its
timestamps, ``finish`` the tracker, the selector and the explainer. So the recognizer runs
``finish`` of frame k in a worker thread while the landmarker works on frame k+1, and the
thread that runs the landmarker does nothing else.

It does no I/O: the :class:`~realtime_fer.pipeline.recognizer.Recognizer` publishes what it
returns, and ``bench`` times it stage by stage.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from realtime_fer.affinity import CpuPlan, pinned, release_plan, reserve_plan
from realtime_fer.capture.frame import Frame
from realtime_fer.describe import action_units, valence_arousal
from realtime_fer.explain.baselines import bundle_neutral_face
from realtime_fer.explain.stream import StreamExplainer
from realtime_fer.features.adaptation import PersonAdaptation
from realtime_fer.features.selector import FeatureSelector
from realtime_fer.features.windows import DecisionClock
from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES, FaceLandmarkDetector, FaceLandmarks
from realtime_fer.landmarks.finder import MultiFaceLandmarker
from realtime_fer.landmarks.tracking import FaceTracker, Track
from realtime_fer.models.bundle import FALLBACK, ModelBundle
from realtime_fer.models.scorer import BundleScorer
from realtime_fer.models.smoothing import TrackSmoother
from realtime_fer.pipeline.config import RuntimeConfig, config_for_bundle
from realtime_fer.pipeline.inference import WindowScorer
from realtime_fer.publish.schema import Prediction

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    """Seconds spent in each stage on one frame (``inference`` is 0 when nothing was scored)."""

    landmarks: float = 0.0
    features: float = 0.0
    """Tracking, normalisation into the ring buffers and, on scoring frames, the gather."""
    inference: float = 0.0
    explain: float = 0.0
    """Integrated Gradients attributions of the scored faces (0 when nothing was scored)."""
    scored: int = 0
    """Faces scored in this frame."""


@dataclass
class FaceResult:
    """One tracked face in one frame."""

    track_id: int
    bbox: tuple[float, float, float, float]
    points: np.ndarray
    """(478, 3) pixel landmarks."""
    new: bool
    """The track started in this frame."""
    blendshapes: np.ndarray | None = None
    """(52,) MediaPipe blendshape scores, when the landmarker computes them."""
    prediction: Prediction | None = None
    """Set when the face was decided in this frame (its ``partial`` says whether its window
    was full)."""


@dataclass
class FrameResult:
    """What one frame produced."""

    frame: Frame
    faces: list[FaceResult] = field(default_factory=list)
    found: list[int] = field(default_factory=list)
    """Track ids that started in this frame."""
    lost: list[int] = field(default_factory=list)
    """Track ids that ended in this frame."""
    times: StageTimes = field(default_factory=StageTimes)
    timestamp_ms: int = -1
    """The VIDEO-mode timestamp the landmarker was given for this frame."""

    @property
    def predictions(self) -> list[Prediction]:
        return [f.prediction for f in self.faces if f.prediction is not None]


@dataclass
class PendingFrame:
    """A frame between :meth:`FrameProcessor.detect` and :meth:`FrameProcessor.finish`."""

    frame: Frame
    detections: list[FaceLandmarks]
    timestamp_ms: int
    landmarks_s: float
    """Seconds the landmarker took."""
    still: bool = False


class FrameProcessor:
    """Landmarks, tracking, features and scoring for the frames of one source.

    Args:
        bundle: the model bundle (window samples, span and hop in seconds, landmark subsets,
            thresholds).
        scorer: onnxruntime sessions of that bundle.
        detector: a Face Landmarker in VIDEO mode, or a
            :class:`~realtime_fer.landmarks.finder.MultiFaceLandmarker` around one (the finder:
            small and many faces); this object closes it in :meth:`close`.
        config: tracking options, number of faces, stream id, ``include_landmarks``.
        cpus: the CPU plan the detector was created under (see :mod:`realtime_fer.affinity`);
            the recognizer pins its threads by it.
    """

    def __init__(self, bundle: ModelBundle, scorer: BundleScorer, detector: FaceLandmarkDetector | MultiFaceLandmarker, config: RuntimeConfig, cpus: CpuPlan | None = None) -> None:
        if detector.running_mode != "video":
            raise ValueError("FrameProcessor needs a FaceLandmarkDetector in VIDEO mode")
        self.bundle = bundle
        self.config = config
        self.detector = detector
        self.cpus = cpus
        self.stream_id = config.publish.stream_id
        self.max_faces = config.max_faces
        self.tracker = FaceTracker(self.max_faces, config.tracking)
        self.selector = FeatureSelector.for_bundle(bundle, self.max_faces, max_fps=config.window.max_fps)
        self.models = WindowScorer(scorer, self.selector)
        self.emotions = self.models.emotions
        self.explainer = StreamExplainer(bundle, config.explain) if config.explain.enabled else None
        self._union_to_explainer = self.explainer is not None and np.array_equal(self.explainer.union, self.selector.union)
        self.smoother = TrackSmoother(config.smoothing)
        self.adaptation = (
            PersonAdaptation(self.selector.union, {e: self.selector.landmarks_of(e) for e in self.emotions}, bundle_neutral_face(bundle), config.adaptation)
            if config.adaptation.enabled
            else None
        )
        min_seconds = config.window.min_seconds
        self.window = dataclasses.replace(bundle.window, min_seconds=min_seconds if min_seconds is not None else bundle.window.span_s)
        """The bundle's window in seconds, with the run's ``min_seconds``."""
        self.window_length = bundle.window_length
        self.min_samples = self.window.min_samples if min_seconds is not None else self.window_length
        """Real samples a face's window needs before its first (partial) decision."""
        self._clocks = [DecisionClock(self.window.hop_s) for _ in range(self.max_faces)]
        self.frames = 0
        """Frames processed."""
        self._last_ts = -1
        self._t0: float | None = None

    @classmethod
    def create(cls, config: RuntimeConfig, bundle: ModelBundle | None = None) -> FrameProcessor:
        """Load the bundle (``config.model``), its onnxruntime sessions and a VIDEO-mode landmarker.

        With ``config.pin_threads`` (and two or more usable CPUs) the landmarker is created on
        the landmarker CPU, so that the threads MediaPipe starts stay there.
        """
        from realtime_fer.models.bundle import load_bundle

        bundle = bundle if bundle is not None else load_bundle(config.model)
        config = config_for_bundle(config, bundle)
        scorer = BundleScorer(bundle, config.device)
        plan = reserve_plan(config.pin_threads)
        if plan is not None:
            log.info("CPU plan: %s", plan.describe())
        try:
            with pinned(plan.landmarker if plan else None):
                detector = FaceLandmarkDetector(config.landmarker, running_mode="video")
                if config.finder.enabled:
                    try:
                        detector = MultiFaceLandmarker(detector, config.finder)
                    except BaseException:
                        detector.close()
                        raise
        except BaseException:
            release_plan(plan)
            raise
        try:
            return cls(bundle, scorer, detector, config, plan)
        except Exception:
            detector.close()
            release_plan(plan)
            raise

    def warm_up(self, block: bool = True) -> float:
        """Make the Numba kernels ready and run every emotion model once; returns seconds.

        ``block=False`` (the live recognizer) compiles the kernels in the background: frames are
        processed at once, by the selector's numpy path until the kernels are ready."""
        t0 = time.perf_counter()
        self.selector.warm_up(block=block)
        windows = np.zeros((1, self.window_length, len(self.selector.union), 3), np.float32)
        blend = np.zeros((1, self.window_length, self.selector.n_blendshapes), np.float32) if self.selector.n_blendshapes else None
        self.models.predict_union(windows, blend)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.detector.close()
        release_plan(self.cpus)

    # -- per frame ----------------------------------------------------------------------------
    def timestamp_ms(self, frame: Frame) -> int:
        """Strictly increasing VIDEO-mode timestamp: the file position, else capture time."""
        if frame.source_pos_ms is not None:
            ts = int(round(frame.source_pos_ms))
        else:
            if self._t0 is None:
                self._t0 = frame.t_capture
            ts = int(round((frame.t_capture - self._t0) * 1000.0))
        ts = max(ts, self._last_ts + 1)
        self._last_ts = ts
        return ts

    def process(self, frame: Frame, *, still: bool = False) -> FrameResult:
        """Run one frame through every stage: :meth:`finish` of :meth:`detect`.

        Args:
            frame: the captured frame.
            still: the frame is a still image: a new face's window is filled with copies of it
                and scored at once (a video face needs ``window.min_seconds`` of frames first).
        """
        return self.finish(self.detect(frame, still=still))

    def detect(self, frame: Frame, *, still: bool = False) -> PendingFrame:
        """The first half of :meth:`process`: the Face Landmarker on ``frame`` (VIDEO mode).

        Call it from one thread, in frame order. The result is finished by :meth:`finish`,
        possibly in another thread while the next frame is detected; that thread must finish
        the frames in the order they were detected.
        """
        t0 = time.perf_counter()
        ts = self.timestamp_ms(frame)
        detections: list[FaceLandmarks] = self.detector.detect_for_video(frame.image, ts)
        return PendingFrame(frame, detections, ts, time.perf_counter() - t0, still)

    def finish(self, pending: PendingFrame) -> FrameResult:
        """The second half of :meth:`process`: tracking, the ring buffers and, for each face
        due a decision (:class:`~realtime_fer.features.windows.DecisionClock`), every emotion
        model and the attributions.

        Finish frames from one thread, in the order :meth:`detect` returned them; the tracker,
        the selector and the explainer belong to that thread (:meth:`end_tracks` too).
        """
        frame = pending.frame
        detections = pending.detections
        result = FrameResult(frame=frame, timestamp_ms=pending.timestamp_ms)
        times = result.times
        times.landmarks = pending.landmarks_s
        t1 = time.perf_counter()
        update = self.tracker.update([d.bbox for d in detections], frame.index)
        for track in update.lost:
            result.lost.append(track.track_id)
            self.smoother.forget(track.track_id)
            if self.adaptation is not None:
                self.adaptation.forget(track.track_id)
            if self.explainer is not None:
                self.explainer.forget(track.track_id)
        for track in update.missed:  # a window must hold consecutive sightings of the face
            self._reset_slot(track.slot)
            self.smoother.forget(track.track_id)
        for track in update.new:
            self._reset_slot(track.slot)
            result.found.append(track.track_id)
        tracks: list[Track] = []
        for det_index, track in update.assignments:
            det = detections[det_index]
            tracks.append(track)
            result.faces.append(FaceResult(track.track_id, det.bbox, det.points, new=update.is_new(track), blendshapes=det.blendshapes))
        slots = [t.slot for t in tracks]
        points = [f.points for f in result.faces]
        blends = [f.blendshapes for f in result.faces]
        t_s = pending.timestamp_ms / 1000.0  # source time of the frame
        if pending.still:  # a still image: each face's window is its frame repeated
            for slot in slots:
                self._reset_slot(slot)
        self.selector.push(slots, points, blends, t=t_s)
        if pending.still:
            for slot in slots:
                self.selector.fill(slot)
        self.frames += 1
        ready: list[int] = []
        partial: list[bool] = []
        for i, track in enumerate(tracks):
            real = self.selector.real_samples(track.slot)
            if self._clocks[track.slot].tick(t_s, pending.still or real >= self.min_samples):
                ready.append(i)
                partial.append(real < self.window_length)
        ready_slots = [tracks[i].slot for i in ready]
        windows = self.selector.gather_union(ready_slots) if ready else None  # what the models read
        blend_windows = self.selector.gather_blendshapes(ready_slots) if ready else None
        t2 = time.perf_counter()
        times.features = t2 - t1

        adapted: list[bool] = []
        if windows is not None and self.adaptation is not None:
            ids = [result.faces[i].track_id for i in ready]
            unadapted = [w.copy() for w in windows]
            adapted = [self.adaptation.track(t).ready for t in ids]
            self.adaptation.correct_union(windows, ids)
        if windows is not None:
            probs = self.models.predict_union(windows, blend_windows)
            smoothed = [self.smoother.update(result.faces[i].track_id, {name: float(probs[name][row]) for name in self.emotions}, t_s, partial[row])
                        for row, i in enumerate(ready)]
            tops = self.bundle.decide({name: np.array([s[name] for s in smoothed]) for name in self.emotions})
            t3 = time.perf_counter()
            times.inference = t3 - t2
            # the per-emotion windows Integrated Gradients reads (explanation work, timed with it),
            # corrected by the same resting faces as the scored windows
            inputs = self.selector.gather(ready_slots) if self.explainer is not None else None
            if inputs is not None and self.adaptation is not None:
                self.adaptation.correct(inputs, [result.faces[i].track_id for i in ready])
            attributions = self._explain(inputs, probs, tops, [result.faces[i].track_id for i in ready], blend_windows, windows)
            times.explain = time.perf_counter() - t3
            if self.adaptation is not None:
                for row, i in enumerate(ready):
                    if not partial[row]:  # the resting face is learnt from full windows only
                        self.adaptation.observe(result.faces[i].track_id, unadapted[row], t_s, str(tops[row]) == FALLBACK)
            h, w = frame.image.shape[:2]
            for row, i in enumerate(ready):
                face = result.faces[i]
                valence, arousal = valence_arousal(smoothed[row])  # derived, docs/describe.md
                face.prediction = Prediction(
                    stream=self.stream_id,
                    frame=frame.index,
                    face=face.track_id,
                    bbox=[float(v) for v in face.bbox],
                    probabilities={name: float(probs[name][row]) for name in self.emotions},
                    top=str(tops[row]),
                    t_capture=frame.timestamp,
                    attributions=attributions[row],
                    landmarks=face.points.tolist() if self.config.include_landmarks else None,
                    image_size=[int(w), int(h)],
                    smoothed=smoothed[row],
                    adapted=adapted[row] if adapted else None,
                    blendshapes=None if face.blendshapes is None else dict(zip(BLENDSHAPE_NAMES, (float(v) for v in face.blendshapes))),
                    partial=partial[row],
                    action_units=None if face.blendshapes is None else action_units(face.blendshapes),
                    valence=valence,
                    arousal=arousal,
                )
            times.scored = len(ready)
        return result

    def _explain(
        self,
        inputs: dict[str, np.ndarray],
        probs: dict[str, np.ndarray],
        tops: np.ndarray,
        track_ids: list[int],
        blendshapes: np.ndarray | None = None,
        union: np.ndarray | None = None,
    ) -> list[dict]:
        """Attributions of each scored face (empty dicts when explanations are off); ``union``:
        the scored union windows (the explainer reads the person baseline's landmarks there)."""
        if self.explainer is None:
            return [{} for _ in track_ids]
        requests = []
        for row, track_id in enumerate(track_ids):
            top = str(tops[row])
            requests.append(self.explainer.to_explain({name: float(probs[name][row]) for name in self.emotions}, top))
            self.explainer.observe(track_id, top, inputs, row, blendshapes, union if self._union_to_explainer else None)
        return self.explainer.explain(inputs, track_ids, requests, blendshapes)

    def _reset_slot(self, slot: int) -> None:
        """Empty a face slot: its ring buffer and its decision clock."""
        self.selector.reset(slot)
        self._clocks[slot].reset()

    def end_tracks(self) -> list[int]:
        """End every live track (source lost, end of run); returns their ids."""
        ended = [t.track_id for t in self.tracker.end_all()]
        self.selector.reset_all()
        for clock in self._clocks:
            clock.reset()
        self.smoother.clear()
        if self.adaptation is not None:
            self.adaptation.clear()
        if self.explainer is not None:
            for track_id in ended:
                self.explainer.forget(track_id)
        return ended

    @property
    def live_tracks(self) -> int:
        return len(self.tracker.tracks)
