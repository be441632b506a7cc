"""What each stream looks like now, built from its messages and packed for the page.

The recognizer publishes a frame's predictions and then, when frame images are on, that
frame's JPEG (:class:`~realtime_fer.publish.schema.FrameImage`). :class:`StreamView` keeps the
latest prediction of every face and the latest status; a frame image closes a *view*: the
JPEG, the frame's metadata and the faces as they stand after that frame's predictions (each
face says which frame its prediction was made on), packed as one binary WebSocket message so
that a frame and its predictions always travel together.

Wire format of a view (one binary WebSocket message)::

    [4 bytes: header length N, big-endian] [N bytes: header, UTF-8 JSON] [JPEG bytes, may be empty]

A view made by a status change while no frames come (a lost camera, the end of a file) shows
the stream's last frame again with ``"fresh": false`` (no JPEG before the first frame). Viewers
never queue views: each one is sent the newest view when it is ready for the next
(:class:`ViewBoard`).
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime_fer.explain.regions import face_regions
from realtime_fer.publish.schema import FrameImage, Message, Prediction, Status

#: Faces not updated for this long (seconds of capture time) are left out of views.
STALE_FACE_S = 1.5
#: Views a second made from predictions alone when the recognizer publishes no frame images.
BARE_VIEW_RATE = 10.0
#: A stream whose last frame image is older than this (seconds) counts as publishing none.
NO_FRAMES_S = 1.0


@dataclass
class View:
    """One packed view of a stream and its sequence number (increases with every view)."""

    seq: int
    packet: bytes


@dataclass
class _Face:
    data: dict[str, Any]
    t_capture: float


@dataclass
class StreamView:
    """The live state of one stream: faces, status and its latest packed view."""

    stream: str
    faces: dict[int, _Face] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    latest: View | None = None
    last_image: FrameImage | None = None
    """The newest frame image: views made without a new frame (a status change) show it again."""
    last_frame_t: float = 0.0
    last_bare_t: float = 0.0
    """When the last view without an image was made (predictions of a recognizer that publishes
    no frames still reach the page, at most :data:`BARE_VIEW_RATE` views a second)."""


def _region_centroids_index() -> dict[str, np.ndarray]:
    regions = face_regions()
    return {name: regions.indices(name) for name in regions.region_names}


class ViewBoard:
    """The latest view of every stream, written by the feed thread and read by the viewers.

    Thread-safe: :meth:`ingest` runs in the feed thread; viewers await :meth:`next_view` in the
    event loop. Only the newest view of a stream is kept, so a slow viewer skips views instead
    of queueing them, and no viewer can slow the feed or another viewer.

    Args:
        loop: the event loop the viewers run in (wake-ups are posted to it).
        top_k: drivers (regions, blendshapes or landmarks) drawn per face.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, top_k: int = 5) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._streams: dict[str, StreamView] = {}
        self._seq = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self.top_k = top_k
        self._regions = _region_centroids_index()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the viewers await in (set once the server runs)."""
        self._loop = loop

    # -- feed side (any thread) -----------------------------------------------------------------
    def ingest(self, message: Message) -> None:
        """Take one message of the recognizer's stream."""
        with self._lock:
            view = self._streams.get(message.stream)
            if view is None:
                view = self._streams[message.stream] = StreamView(message.stream)
            if isinstance(message, Prediction):
                view.faces[message.face] = _Face(self._face(message), message.t_capture)
                now = time.time()
                if now - view.last_frame_t > NO_FRAMES_S and now - view.last_bare_t >= 1.0 / BARE_VIEW_RATE:
                    view.last_bare_t = now
                    self._publish(view, self._pack(view, None, message.image_size))
                return
            if isinstance(message, Status):
                changed = self._status(view, message)
                # while frames flow, a status rides on the next frame's view; otherwise (camera
                # lost, ended, no frames published) it makes a view of its own
                if changed and time.time() - view.last_frame_t > 0.5:
                    self._publish(view, self._pack(view, None, None))
                return
            if isinstance(message, FrameImage):
                view.last_image = message
                view.last_frame_t = time.time()
                self._publish(view, self._pack(view, message, None))

    def _status(self, view: StreamView, message: Status) -> bool:
        before = dict(view.status)
        s = view.status
        s.update(event=message.event, fps=round(message.fps, 2), frames=message.frames, dropped=message.dropped, timestamp=message.timestamp)
        if message.faces is not None:
            s["faces"] = message.faces
        if message.event in ("source_lost", "reconnecting", "ended", "no_face", "started", "recovered"):
            s["state"] = message.event
            s["detail"] = message.detail
        elif message.event == "face_found":
            s["state"] = "running"
            s["detail"] = ""
        if message.event == "face_lost" and message.face is not None:
            view.faces.pop(message.face, None)
        if message.event in ("no_face", "ended", "source_lost"):
            view.faces.clear()
        return s.get("state") != before.get("state") or s.get("detail") != before.get("detail") or message.event == "face_lost"

    def _face(self, p: Prediction) -> dict[str, Any]:
        """The page's form of one prediction: box, top, bars, drivers with positions."""
        points = np.asarray(p.landmarks, np.float64)[:, :2] if p.landmarks else None
        drivers: list[dict[str, Any]] = []
        explained = p.attributions.get(p.top) if isinstance(p.attributions, dict) else None
        if isinstance(explained, dict):
            for entry in list(explained.get("top") or [])[: self.top_k]:
                if not isinstance(entry, dict):
                    continue
                d = self._driver(entry, points)
                if d is not None:
                    drivers.append(d)
        face: dict[str, Any] = {
            "face": p.face,
            "frame": p.frame,
            "bbox": [round(v, 1) for v in p.bbox],
            "top": p.top,
            "probabilities": {k: round(v, 4) for k, v in p.probabilities.items()},
            "smoothed": {k: round(v, 4) for k, v in (p.smoothed or p.probabilities).items()},
            "drivers": drivers,
            "partial": bool(p.partial),
            "t_capture": p.t_capture,
        }
        if p.t_publish is not None:
            face["t_publish"] = p.t_publish
        if p.valence is not None and p.arousal is not None:
            face["valence"], face["arousal"] = round(p.valence, 3), round(p.arousal, 3)
        if points is not None:
            face["points"] = np.round(points[:468]).astype(int).ravel().tolist()
        return face

    def _driver(self, entry: dict[str, Any], points: np.ndarray | None) -> dict[str, Any] | None:
        """One explanation entry as ``{kind, name, weight[, x, y]}``: a region is drawn at its
        landmarks' centroid, a landmark at its position, a blendshape is listed only."""
        weight = entry.get("weight")
        if not isinstance(weight, (int, float)):
            return None
        out: dict[str, Any] = {"weight": round(float(weight), 4)}
        where: np.ndarray | None = None
        if "blendshape" in entry:
            out.update(kind="blendshape", name=str(entry["blendshape"]))
        elif "landmark" in entry:
            idx = int(entry["landmark"])
            out.update(kind="landmark", name=str(entry.get("region", f"landmark {idx}")), landmark=idx)
            if points is not None and 0 <= idx < len(points):
                where = points[idx]
        elif "region" in entry:
            name = str(entry["region"])
            out.update(kind="region", name=name)
            idx_r = self._regions.get(name)
            if points is not None and idx_r is not None and len(points) >= 468:
                where = points[idx_r].mean(axis=0)
        else:
            return None
        if where is not None:
            out["x"], out["y"] = round(float(where[0]), 1), round(float(where[1]), 1)
        return out

    def _pack(self, view: StreamView, image: FrameImage | None, size: list[int] | None) -> View:
        now = time.time()
        newest = image.t_capture if image is not None else now
        faces = [face.data for _, face in sorted(view.faces.items()) if newest - face.t_capture <= STALE_FACE_S]
        header: dict[str, Any] = {
            "stream": view.stream,
            "streams": sorted(self._streams),
            "status": view.status,
            "faces": faces,
            "t_sent": now,
        }
        jpeg = b""
        shown = image if image is not None else view.last_image
        if shown is not None:  # a status-only view shows the last frame again, marked not fresh
            header.update(frame=shown.frame, t_capture=shown.t_capture, image_size=shown.image_size, fresh=image is not None)
            jpeg = shown.jpeg
        elif size is not None:
            header["image_size"] = list(size)
        head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
        self._seq += 1
        return View(self._seq, struct.pack(">I", len(head)) + head + jpeg)

    def _publish(self, view: StreamView, packed: View) -> None:
        view.latest = packed
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed meanwhile
                pass

    # -- viewer side (event loop) ---------------------------------------------------------------
    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def streams(self) -> list[str]:
        """Ids of the streams seen so far, sorted."""
        with self._lock:
            return sorted(self._streams)

    def latest(self, stream: str | None) -> View | None:
        """The newest view of ``stream`` (``None``: of the first stream seen), if any."""
        with self._lock:
            if stream is None:
                stream = next(iter(sorted(self._streams)), None)
            view = self._streams.get(stream) if stream is not None else None
            return view.latest if view is not None else None

    async def next_view(self, stream: str | None, after: int, timeout: float) -> View | None:
        """The newest view of ``stream`` newer than sequence number ``after``; waits up to
        ``timeout`` seconds for one (``None`` when none came)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.latest(stream)
            if view is not None and view.seq > after:
                return view
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                self._waiters.discard(fut)
