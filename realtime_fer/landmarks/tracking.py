"""Face tracking across frames: stable ids for faces that stay in view.

:class:`FaceTracker` matches each frame's face boxes to the tracks of the previous frames,
greedily by decreasing score: the intersection-over-union of the boxes, or, for boxes that moved
too far to overlap enough, a centroid-distance score (distance relative to the face size). A
detection that matches no track starts a new track with a new id (ids are never reused); a track
that is not matched for more than ``max_missed`` consecutive frames is lost.

Each track also owns a *slot* in ``0 .. max_faces - 1``: the index of its ring buffer in the
:class:`~realtime_fer.features.selector.FeatureSelector`. A slot is handed over only after its
previous track has ended, and :attr:`TrackUpdate.is_new` tells the caller to reset it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

BBox = tuple[float, float, float, float]


@dataclass
class TrackerOptions:
    """Face tracking (YAML section ``tracking``)."""

    iou_threshold: float = 0.3
    """Minimum IoU between a track's last box and a detection for a direct match."""
    max_center_distance: float = 0.5
    """Otherwise, match when the centroids are closer than this many face sizes (the mean
    of the two boxes' diagonals)."""
    max_missed: int = 5
    """A track is lost after this many consecutive frames without its face."""

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError("iou_threshold must be in (0, 1]")
        if self.max_center_distance < 0:
            raise ValueError("max_center_distance must be >= 0")
        if self.max_missed < 0:
            raise ValueError("max_missed must be >= 0")


@dataclass
class Track:
    """A face followed across frames."""

    track_id: int
    slot: int
    bbox: BBox
    first_frame: int
    last_frame: int
    hits: int = 1
    missed: int = 0


@dataclass
class TrackUpdate:
    """The outcome of :meth:`FaceTracker.update` for one frame."""

    assignments: list[tuple[int, Track]] = field(default_factory=list)
    """``(detection index, track)`` for every detection that got a track, in detection order."""
    new: list[Track] = field(default_factory=list)
    """Tracks started in this frame (their slots must be reset)."""
    missed: list[Track] = field(default_factory=list)
    """Tracks that continue but whose face was not seen in this frame."""
    lost: list[Track] = field(default_factory=list)
    """Tracks that ended in this frame (missed too long, or evicted for a new face)."""

    def is_new(self, track: Track) -> bool:
        return any(t is track for t in self.new)


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _center_distance(a: BBox, b: BBox) -> float:
    """Centroid distance in units of the mean box diagonal."""
    dx = (a[0] + a[2] - b[0] - b[2]) / 2.0
    dy = (a[1] + a[3] - b[1] - b[3]) / 2.0
    size = (math.hypot(a[2] - a[0], a[3] - a[1]) + math.hypot(b[2] - b[0], b[3] - b[1])) / 2.0
    return math.hypot(dx, dy) / max(size, 1e-6)


class FaceTracker:
    """Greedy IoU / centroid tracker with at most ``max_faces`` live tracks.

    Args:
        max_faces: slots available (normally the landmarker's ``num_faces``).
        options: thresholds; default :class:`TrackerOptions`.
    """

    def __init__(self, max_faces: int, options: TrackerOptions | None = None) -> None:
        if max_faces < 1:
            raise ValueError("max_faces must be >= 1")
        self.max_faces = max_faces
        self.options = options or TrackerOptions()
        self.tracks: list[Track] = []
        """Live tracks, oldest first."""
        self._next_id = 1
        self.total_tracks = 0
        """Tracks started since creation."""

    def update(self, boxes: Sequence[BBox], frame_index: int) -> TrackUpdate:
        """Match this frame's face boxes to tracks; returns what changed."""
        o = self.options
        out = TrackUpdate()
        candidates: list[tuple[float, int, int]] = []  # (score, track index, detection index)
        for ti, track in enumerate(self.tracks):
            for di, box in enumerate(boxes):
                overlap = iou(track.bbox, box)
                if overlap >= o.iou_threshold:
                    candidates.append((1.0 + overlap, ti, di))  # any IoU match beats a centroid match
                else:
                    dist = _center_distance(track.bbox, box)
                    if dist <= o.max_center_distance:
                        candidates.append((1.0 - dist / (o.max_center_distance + 1e-9), ti, di))
        candidates.sort(key=lambda c: -c[0])
        matched_tracks: set[int] = set()
        matched: dict[int, Track] = {}
        for _, ti, di in candidates:
            if ti in matched_tracks or di in matched:
                continue
            matched_tracks.add(ti)
            track = self.tracks[ti]
            track.bbox = tuple(float(v) for v in boxes[di])  # type: ignore[assignment]
            track.last_frame = frame_index
            track.hits += 1
            track.missed = 0
            matched[di] = track
        survivors: list[Track] = []
        for ti, track in enumerate(self.tracks):
            if ti in matched_tracks:
                survivors.append(track)
                continue
            track.missed += 1
            if track.missed > o.max_missed:
                out.lost.append(track)
            else:
                out.missed.append(track)
                survivors.append(track)
        self.tracks = survivors
        for di, box in enumerate(boxes):
            if di in matched:
                continue
            slot = self._free_slot(out)
            if slot is None:
                continue  # more faces than slots: ignore the extra one
            track = Track(self._next_id, slot, tuple(float(v) for v in box), frame_index, frame_index)  # type: ignore[arg-type]
            self._next_id += 1
            self.total_tracks += 1
            self.tracks.append(track)
            out.new.append(track)
            matched[di] = track
        out.assignments = sorted(matched.items())
        return out

    def end_all(self) -> list[Track]:
        """End every live track (end of the run, or the source was lost); returns them."""
        ended, self.tracks = self.tracks, []
        return ended

    def _free_slot(self, out: TrackUpdate) -> int | None:
        used = {t.slot for t in self.tracks}
        for slot in range(self.max_faces):
            if slot not in used:
                return slot
        # Every slot is held; evict the missing track that has been gone longest.
        waiting = [t for t in self.tracks if t.missed > 0]
        if not waiting:
            return None
        victim = max(waiting, key=lambda t: (t.missed, -t.track_id))
        self.tracks.remove(victim)
        out.missed = [t for t in out.missed if t is not victim]
        out.lost.append(victim)
        return victim.slot
