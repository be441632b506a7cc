"""Rendering a still face photo into a short talking video, by warping its pixels along real
talking motion.

Motion augmentation (:mod:`realtime_fer.data.motion`) adds real talking motion to a still's
*normalised landmarks* and the talking clips' blendshape deltas to its blendshapes: the
landmarker never sees a moving version of the photo, so landmarks and blendshapes do not move
together as they do in real video. This module moves the photo itself: :class:`TalkingWarp`
deforms the image so that its face follows a :class:`~realtime_fer.data.motion.MotionBank`
segment, and the rendered frames go through the real MediaPipe landmarker like any video
(``tools/render_talking.py`` writes them as a labelled video dataset).

Coordinate frames
    * The photo's landmarks are the landmark cache's: pixels of the **original, unpadded**
      image (:meth:`~realtime_fer.landmarks.detector.FaceLandmarkDetector.detect` removes the
      black ``pad_fraction`` border it adds for tight crops), MediaPipe's convention (x in
      [0, width] across the image, so a pixel's centre is at ``i + 0.5``); z in x's scale.
      The warp works in OpenCV's convention (pixel centre at ``i``): landmarks minus 0.5.
    * A motion segment is in the *normalised* face frame (:mod:`realtime_fer.landmarks.normalize`):
      ``normalised = s * pixels @ R + t``, fitted on the rigid anchors. A displacement ``d`` in
      that frame is ``d @ R.T / s`` in the photo's pixels (the inverse rotation and scale; the
      translation does not act on displacements). Its x and y move the landmarks in the image;
      z (depth) is dropped.

Warp
    Piecewise affine over a Delaunay triangulation (:func:`delaunay`, OpenCV's
    :class:`cv2.Subdiv2D`: the package does not depend on SciPy) of the 468 mesh points plus fixed points on a rectangle around the image and every landmark (so the
    triangulation covers every pixel, including landmarks that lie outside a tight crop; the
    frame border never moves). Once per photo the barycentric weights of every pixel in that
    triangulation are stored (three vertices and weights per pixel); a frame's dense
    displacement field is the weighted sum of its landmark displacements. Rendering is backward
    mapping: the output pixel ``q`` shows the photo at ``p`` with ``p + D(p) = q``, solved by
    three fixed-point steps ``p <- q - D(p)`` (``D`` read bilinearly off the dense field), then
    one :func:`cv2.remap` (bilinear, replicated border). A 100x100 RAF-DB frame costs about a
    millisecond (0.5-1 ms on an idle core, 1.9 ms on a busy shared one; the set-up ~10-17 ms
    per photo).

Frame rate
    The talking clips are 30 fps and our video is 25 fps: a segment of ``n`` frames at ``fps``
    is drawn as ``floor((n - 1) * motion_fps / fps) + 2`` consecutive bank frames and resampled
    linearly at ``k * motion_fps / fps`` (:func:`sample_motion`), so speech keeps its real speed.

Output size
    Frames have the photo's own (unpadded) size; a video under 200 px is padded by the
    extractor exactly as a still is (``LandmarkerOptions.pad_fraction``, ``SMALL_VIDEO_PX``),
    so rendered clips and their source stills are seen by MediaPipe the same way.

Everything is deterministic: the same photo, landmarks and motion give byte-identical frames,
and :func:`clip_rng` derives a clip's random generator from a seed and the photo's id alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from realtime_fer.data.motion import MotionBank, resample_run
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.landmarks.normalize import ANCHOR_INDEX, reference_face, similarity_fit

#: Frame rate of the talking clips of ``../shared/data/video/talking``.
MOTION_FPS = 30.0
#: Frame rate of the rendered clips (that of the MEAD clips and of ``window.length``).
RENDER_FPS = 25.0
#: Fixed points per side of the border rectangle of the triangulation.
BORDER_POINTS_PER_SIDE = 5
#: Fixed-point steps of the backward mapping.
INVERSE_STEPS = 3
#: Inner lip contour of the MediaPipe mesh (upper lip left to right, then lower lip back).
INNER_LIP: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
#: Outer lip contour of the MediaPipe mesh.
OUTER_LIP: tuple[int, ...] = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
#: The mouth cavity's colour: this share of the darkest pixels of the still's lips ...
CAVITY_PERCENTILE = 5.0
#: ... times this factor.
CAVITY_DARKEN = 0.6


def clip_rng(seed: int, key: str, copy: int = 0) -> np.random.Generator:
    """The random generator of one rendered clip: a function of ``seed``, the photo's id
    ``key`` (e.g. its group) and the copy number only, so a photo renders the same whatever
    other photos are rendered with it."""
    digest = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, digest >> 32, digest & 0xFFFFFFFF, int(copy)])


def motion_length(n_frames: int, fps: float = RENDER_FPS, motion_fps: float = MOTION_FPS) -> int:
    """Bank frames needed for ``n_frames`` frames at ``fps`` (see :func:`resample`)."""
    return int(np.floor((n_frames - 1) * motion_fps / fps + 1e-9)) + 2


def resample(segment: np.ndarray, n_frames: int, fps: float = RENDER_FPS, motion_fps: float = MOTION_FPS) -> np.ndarray:
    """``segment`` (L, ...) at ``motion_fps`` linearly resampled to ``n_frames`` frames at
    ``fps`` (frame ``k`` at bank time ``k * motion_fps / fps``; the bank's own rule,
    :func:`~realtime_fer.data.motion.resample_run`), holding the last frame when the segment
    is too short."""
    out = resample_run(np.asarray(segment, np.float32), motion_fps, fps)[:n_frames]
    if len(out) < n_frames:
        out = np.concatenate([out, np.repeat(out[-1:], n_frames - len(out), axis=0)])
    return out


def sample_motion(
    bank: MotionBank,
    n_frames: int,
    rng: np.random.Generator,
    *,
    scale: tuple[float, float] = (1.0, 1.0),
    mirror: bool = False,
    fps: float = RENDER_FPS,
    motion_fps: float = MOTION_FPS,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One motion segment for a clip of ``n_frames`` frames at ``fps``: (n_frames, 468, 3)
    landmark motion in the normalised frame and, when the bank has them, (n_frames, 52)
    blendshape motion (what additive augmentation would add), drawn with
    :meth:`MotionBank.sample_with_blendshapes` (``scale`` and ``mirror`` as ``data.motion``)
    and resampled from ``motion_fps`` to ``fps``."""
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    length = motion_length(n_frames, fps, motion_fps)
    seg, blend = bank.sample_with_blendshapes(1, length, rng, scale=scale, mirror=mirror)
    return resample(seg[0], n_frames, fps, motion_fps), (None if blend is None else resample(blend[0], n_frames, fps, motion_fps))


@dataclass(frozen=True)
class _Fit:
    rotation: np.ndarray
    scale: float


class TalkingWarp:
    """The warp of one photo, precomputed once; :meth:`render` makes frames from motion.

    Args:
        image: (H, W, 3) or (H, W) uint8, the original (unpadded) image.
        landmarks: (478, 3) or (468, 3) landmarks of its face in that image's pixels, as the
            landmark cache holds them (MediaPipe's convention, see the module docstring).
        mouth_cavity: where the mouth opens wider than in the photo, paint the new opening
            (inside the moved inner-lip contour, from pixels outside the photo's own opening)
            the dark colour of a mouth's inside (the 5th percentile of the photo's lip pixels,
            darkened), fading in over the first pixel of widening; without it, an opening
            mouth shows stretched lip pixels, which the landmarker reads as a closed mouth.
            No motion, or a closing mouth, leaves the photo's pixels as they are.

    Raises:
        ValueError: bad shapes, or landmarks that are not finite.
    """

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, *, mouth_cavity: bool = True) -> None:
        import cv2

        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)) or min(img.shape[:2]) < 2:
            raise ValueError(f"expected an (H, W[, 3]) uint8 image, got {img.dtype} {img.shape}")
        pts = np.asarray(landmarks, np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < NUM_MESH_LANDMARKS:
            raise ValueError(f"expected (478 or 468, 3) landmarks, got shape {pts.shape}")
        mesh = pts[:NUM_MESH_LANDMARKS]
        if not np.isfinite(mesh).all():
            raise ValueError("the landmarks are not finite (no face detected in the photo?)")
        self.image = np.ascontiguousarray(img)
        self.height, self.width = img.shape[:2]
        self.landmarks = mesh.astype(np.float32)
        """(468, 3) the photo's mesh landmarks (landmarker pixels)."""
        r, s, _t = similarity_fit(mesh[ANCHOR_INDEX], reference_face()[ANCHOR_INDEX])
        self._fit = _Fit(np.asarray(r, np.float64), float(s))

        # triangulation: mesh points (OpenCV pixel centres) + a fixed rectangle around the
        # image and every landmark
        xy = mesh[:, :2] - 0.5
        h, w = self.height, self.width
        margin = 0.1 * max(h, w) + 2.0
        x0, y0 = min(0.0, xy[:, 0].min()) - margin, min(0.0, xy[:, 1].min()) - margin
        x1, y1 = max(w - 1.0, xy[:, 0].max()) + margin, max(h - 1.0, xy[:, 1].max()) + margin
        u = np.linspace(0.0, 1.0, BORDER_POINTS_PER_SIDE + 1)[:-1]
        border = np.concatenate(
            [
                np.stack([x0 + u * (x1 - x0), np.full_like(u, y0)], 1),
                np.stack([np.full_like(u, x1), y0 + u * (y1 - y0)], 1),
                np.stack([x1 - u * (x1 - x0), np.full_like(u, y1)], 1),
                np.stack([np.full_like(u, x0), y1 - u * (y1 - y0)], 1),
            ]
        )
        nodes = np.concatenate([xy, border])
        triangles = delaunay(nodes)
        gy, gx = np.mgrid[0:h, 0:w]
        verts, bary = _barycentric(nodes, triangles, w, h)
        self._verts = verts
        """(H*W, 3) triangle vertices of every pixel (indices >= 468: fixed border nodes)."""
        self._bary = bary
        """(H*W, 3) float32 barycentric weights of every pixel in its triangle."""
        self._grid = np.stack([gx, gy], axis=-1).astype(np.float32)
        self.n_triangles = int(len(triangles))
        self.mouth_cavity = bool(mouth_cavity)
        opening = (_polygon_mask(xy[list(INNER_LIP)], h, w) > 0.5).astype(np.uint8)
        self._opening = cv2.erode(opening, np.ones((3, 3), np.uint8)).astype(np.float32)
        """(H, W) float32: the photo's own mouth opening (eroded by a pixel: the sliver between
        closed lips counts as closed)."""
        lips = _polygon_mask(xy[list(OUTER_LIP)], h, w) > 0.5
        pixels = self.image.reshape(h, w, -1)[lips] if lips.any() else self.image.reshape(h * w, -1)
        self._cavity = (np.percentile(pixels.astype(np.float32), CAVITY_PERCENTILE, axis=0) * CAVITY_DARKEN).astype(np.float32)
        """(C,) colour of the inside of the mouth."""
        self._gap = _mouth_gap(xy[list(INNER_LIP)])
        """Mean gap between the photo's lips (pixels)."""

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) rotation of the photo's similarity transform (``normalised = s * p @ R + t``)."""
        return self._fit.rotation

    @property
    def scale(self) -> float:
        """Scale ``s`` of the photo's similarity transform (normalised units per pixel)."""
        return self._fit.scale

    def pixel_displacements(self, motion: np.ndarray) -> np.ndarray:
        """(n, 468, 2) image-plane displacements in the photo's pixels of ``motion`` (n, 468, 3)
        given in the normalised frame: ``motion @ R.T / s``, x and y."""
        m = np.asarray(motion, np.float64)
        if m.ndim == 2:
            m = m[None]
        if m.ndim != 3 or m.shape[1:] != (NUM_MESH_LANDMARKS, 3):
            raise ValueError(f"expected (n, 468, 3) motion, got shape {np.shape(motion)}")
        return ((m @ self.rotation.T) / self.scale)[..., :2].astype(np.float32)

    def moved_landmarks(self, motion: np.ndarray) -> np.ndarray:
        """(n, 468, 2) where the photo's mesh landmarks go in each frame (landmarker pixels)."""
        return self.landmarks[None, :, :2] + self.pixel_displacements(motion)

    def displacement_fields(self, motion: np.ndarray) -> np.ndarray:
        """(n, H, W, 2) float32 forward displacement of every pixel of the photo."""
        d = self.pixel_displacements(motion)
        n = len(d)
        nodes = np.zeros((n, int(self._verts.max()) + 1, 2), np.float32)  # border nodes stay put
        nodes[:, :NUM_MESH_LANDMARKS] = d
        dense = np.einsum("npkc,pk->npc", nodes[:, self._verts], self._bary)
        return np.ascontiguousarray(dense.reshape(n, self.height, self.width, 2), dtype=np.float32)

    def render(self, motion: np.ndarray) -> np.ndarray:
        """Frames (n, H, W[, C]) uint8 of the photo moved by ``motion`` (n, 468, 3), normalised
        frame (a :func:`sample_motion` segment). A zero motion returns the photo unchanged."""
        import cv2

        fields = self.displacement_fields(motion)
        lips = self.moved_landmarks(motion)[:, list(INNER_LIP)] - 0.5
        out = np.empty((len(fields),) + self.image.shape, np.uint8)
        for k, field_k in enumerate(fields):
            grid = self._grid
            p = grid - field_k
            for _ in range(INVERSE_STEPS - 1):
                p = grid - cv2.remap(field_k, p[..., 0], p[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            frame = cv2.remap(self.image, p[..., 0], p[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if self.mouth_cavity:
                # the opening in this frame, less what comes from the photo's own opening
                # (fading in over the first pixel by which the gap between the lips widens)
                gain = float(np.clip(_mouth_gap(lips[k]) - self._gap, 0.0, 1.0))
                if gain > 0:
                    was_open = cv2.remap(self._opening, p[..., 0], p[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    alpha = gain * _polygon_mask(lips[k], self.height, self.width) * (1.0 - was_open)
                    f = frame.reshape(self.height, self.width, -1).astype(np.float32)
                    a = alpha[..., None]
                    f = f * (1.0 - a) + self._cavity * a
                    frame = np.clip(np.rint(f), 0, 255).astype(np.uint8)
            out[k] = frame.reshape(self.image.shape)
        return out


def _mouth_gap(inner_lip: np.ndarray) -> float:
    """Mean gap (pixels) between the lips of an :data:`INNER_LIP` contour: its area over the
    distance between the mouth corners."""
    pts = np.asarray(inner_lip, np.float64)
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return area / max(float(np.linalg.norm(pts[0] - pts[10])), 1.0)


def _polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) float32 anti-aliased coverage in [0, 1] of a polygon in OpenCV pixel coordinates."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    shift = 4
    cv2.fillPoly(mask, [np.round(np.asarray(polygon, np.float64) * (1 << shift)).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=shift)
    return mask.astype(np.float32) / 255.0


def delaunay(points: np.ndarray) -> np.ndarray:
    """(T, 3) int64 vertex indices of the Delaunay triangles of 2-D ``points`` (N, 2)
    (:class:`cv2.Subdiv2D`; of points that coincide in float32, one is used)."""
    import cv2

    pts = np.asarray(points, np.float32)
    lo = np.floor(pts.min(axis=0)) - 2.0
    hi = np.ceil(pts.max(axis=0)) + 2.0
    subdiv = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1))
    index: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(pts):
        index.setdefault((float(x), float(y)), i)
        subdiv.insert((float(x), float(y)))
    tris = []
    for t in subdiv.getTriangleList().reshape(-1, 3, 2).astype(np.float32):
        key = [index.get((float(x), float(y))) for x, y in t]
        if None not in key:
            tris.append(key)
    return np.asarray(tris, np.int64).reshape(-1, 3)


def _barycentric(nodes: np.ndarray, triangles: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a ``width`` x ``height`` grid: the vertices (H*W, 3) of the triangle that
    holds it and its barycentric weights (H*W, 3) float32. Triangles are rasterised into an id
    map (:func:`cv2.fillConvexPoly`, 1/16 px vertices); a pixel that rounding left out takes the
    triangle in which its smallest weight is largest."""
    import cv2

    ids = np.full((height, width), -1, np.int32)
    shift = 4
    for t, tri in enumerate(triangles):
        cv2.fillConvexPoly(ids, np.round(nodes[tri] * (1 << shift)).astype(np.int32), int(t), lineType=cv2.LINE_8, shift=shift)
    ids = ids.ravel()
    gy, gx = np.mgrid[0:height, 0:width]
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float64)
    corners = nodes[triangles]  # (T, 3, 2)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)

    def weights(pix: np.ndarray, tri: np.ndarray) -> np.ndarray:
        x, y = pix[..., 0], pix[..., 1]
        l1 = ((b[tri, 1] - c[tri, 1]) * (x - c[tri, 0]) + (c[tri, 0] - b[tri, 0]) * (y - c[tri, 1])) / det[tri]
        l2 = ((c[tri, 1] - a[tri, 1]) * (x - c[tri, 0]) + (a[tri, 0] - c[tri, 0]) * (y - c[tri, 1])) / det[tri]
        return np.stack([l1, l2, 1.0 - l1 - l2], axis=-1)

    missing = np.flatnonzero(ids < 0)
    if len(missing):
        all_w = weights(grid[missing][:, None, :], np.arange(len(triangles))[None, :])  # (U, T, 3)
        ids[missing] = all_w.min(axis=2).argmax(axis=1)
    bary = weights(grid, ids)
    return triangles[ids], bary.astype(np.float32)


def with_border(image: np.ndarray, landmarks: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo framed by a replicated border of ``fraction`` of its longer side on every side,
    and its landmarks moved with it (x and y shifted by the border; z unchanged), so that a
    face cropped at the chin (RAF-DB's 100x100 crops) has room to open its jaw: the warp keeps
    the frame's edge still, so a chin at the edge cannot move.

    Raises:
        ValueError: ``fraction`` is negative or not finite.
    """
    import cv2

    if not np.isfinite(fraction) or fraction < 0:
        raise ValueError(f"border fraction must be >= 0, got {fraction!r}")
    img = np.asarray(image)
    pad = int(round(fraction * max(img.shape[:2])))
    if pad == 0:
        return img, np.asarray(landmarks)
    framed = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    moved = np.array(landmarks, np.float64, copy=True)
    moved[..., :2] += pad
    return framed, moved.astype(np.asarray(landmarks).dtype)


def render_talking(image: np.ndarray, landmarks: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Render ``image`` (H, W[, 3]) uint8 with its face's ``landmarks`` (478, 3; the landmark
    cache's pixels of the unpadded image) into ``len(motion)`` frames (n, H, W[, 3]) uint8
    following ``motion`` (n, 468, 3) in the normalised face frame. See :class:`TalkingWarp`
    (which precomputes the warp once, for several clips of one photo)."""
    return TalkingWarp(image, landmarks).render(motion)
