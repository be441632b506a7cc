"""The live feature selector: landmarks -> normalised per-face ring buffers -> model inputs.

Per frame, :meth:`FeatureSelector.push` takes the (478, 3) pixel landmarks of every tracked face
and, in one Numba-compiled call, normalises each face to the reference face (the same similarity
fit on :data:`~realtime_fer.landmarks.normalize.ANCHORS` as
:func:`~realtime_fer.landmarks.normalize.normalize_landmarks`) and writes only the bundle's
*landmark union* into that face's slot of a preallocated ring buffer of ``window_length`` frames.

Every scoring step, :meth:`FeatureSelector.gather` copies, again in one compiled call, each
emotion's pruned landmark subset of every ready face into that emotion's preallocated batch
array (N, T, L_e, 3), oldest frame first: exactly the input its ONNX model takes. Nothing
allocates per frame and no Python loop runs over landmarks.

The rigid fit needs the rotation maximising ``trace(R^T H)`` for a 3x3 cross-covariance ``H``.
Numba's ``np.linalg.svd`` needs SciPy's LAPACK, which this package does not depend on, so the
kernel uses Horn's closed form instead: the rotation is the unit quaternion that is the leading
eigenvector of a symmetric 4x4 matrix built from ``H`` (found by cyclic Jacobi rotations), and
its eigenvalue equals ``sigma1 + sigma2 + sign(det) * sigma3``, the numerator of the optimal
scale. This is the same optimum as the SVD solution, proper rotations only.

The kernels are compiled with ``cache=True``: the first start on a machine compiles them (about
2 s here, see docs/benchmarks.md, *Cold start*); later starts load the machine code from Numba's
cache (Numba writes it beside this module, or in a per-user folder when that is read-only;
``NUMBA_CACHE_DIR`` chooses another). So that even the first start need not wait for the
compiler, :func:`compile_kernels` can compile in a background thread: until it is done, a
selector runs the same computation in numpy (:func:`_push_faces_numpy`,
:func:`_gather_windows_numpy`; the fit by :func:`~realtime_fer.landmarks.normalize.similarity_fit`'s
SVD, the same optimum as Horn's, equal to float32 precision), then switches to the kernels.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal, Mapping, Sequence

import numpy as np
from numba import njit

from realtime_fer.landmarks.detector import NUM_LANDMARKS, NUM_MESH_LANDMARKS
from realtime_fer.landmarks.normalize import ANCHOR_INDEX, reference_face, similarity_fit

log = logging.getLogger(__name__)

_JACOBI_SWEEPS = 30


# --------------------------------------------------------------------------------------------
# compiled kernels
# --------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _leading_eigenpair_4x4(a: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover - compiled
    """Largest eigenvalue and its unit eigenvector of a symmetric 4x4 matrix (cyclic Jacobi)."""
    m = a.copy()
    v = np.eye(4)
    for _ in range(_JACOBI_SWEEPS):
        off = 0.0
        scale = 0.0
        for i in range(4):
            scale += m[i, i] * m[i, i]
            for j in range(i + 1, 4):
                off += m[i, j] * m[i, j]
        if off <= 1e-30 * (scale + 1e-300):
            break
        for p in range(3):
            for q in range(p + 1, 4):
                apq = m[p, q]
                if apq == 0.0:
                    continue
                theta = (m[q, q] - m[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + np.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(4):  # columns p, q
                    akp = m[k, p]
                    akq = m[k, q]
                    m[k, p] = c * akp - s * akq
                    m[k, q] = s * akp + c * akq
                for k in range(4):  # rows p, q
                    apk = m[p, k]
                    aqk = m[q, k]
                    m[p, k] = c * apk - s * aqk
                    m[q, k] = s * apk + c * aqk
                for k in range(4):
                    vkp = v[k, p]
                    vkq = v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    best = 0
    for i in range(1, 4):
        if m[i, i] > m[best, best]:
            best = i
    return m[best, best], v[:, best].copy()


@njit(cache=True, nogil=True)
def _similarity_fit(points: np.ndarray, anchors: np.ndarray, ref_centered: np.ndarray, ref_mean: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:  # pragma: no cover - compiled
    """``(R, s, t)`` with ``s * p @ R + t`` mapping the anchors of ``points`` onto the reference.

    Args:
        points: (>=468, 3) landmarks of one face (any float dtype).
        anchors: (K,) anchor indices.
        ref_centered: (K, 3) reference anchors minus their mean.
        ref_mean: (3,) mean of the reference anchors.
    """
    k = anchors.shape[0]
    mu = np.zeros(3)
    for i in range(k):
        for c in range(3):
            mu[c] += points[anchors[i], c]
    for c in range(3):
        mu[c] /= k
    h = np.zeros((3, 3))  # H = xs^T xt
    var = 0.0
    for i in range(k):
        x0 = points[anchors[i], 0] - mu[0]
        x1 = points[anchors[i], 1] - mu[1]
        x2 = points[anchors[i], 2] - mu[2]
        var += x0 * x0 + x1 * x1 + x2 * x2
        for c in range(3):
            y = ref_centered[i, c]
            h[0, c] += x0 * y
            h[1, c] += x1 * y
            h[2, c] += x2 * y
    # Horn's symmetric matrix for the column-vector rotation Q = R^T, with S = H.
    sxx, sxy, sxz = h[0, 0], h[0, 1], h[0, 2]
    syx, syy, syz = h[1, 0], h[1, 1], h[1, 2]
    szx, szy, szz = h[2, 0], h[2, 1], h[2, 2]
    n = np.empty((4, 4))
    n[0, 0] = sxx + syy + szz
    n[0, 1] = syz - szy
    n[0, 2] = szx - sxz
    n[0, 3] = sxy - syx
    n[1, 1] = sxx - syy - szz
    n[1, 2] = sxy + syx
    n[1, 3] = szx + sxz
    n[2, 2] = -sxx + syy - szz
    n[2, 3] = syz + szy
    n[3, 3] = -sxx - syy + szz
    for i in range(4):
        for j in range(i + 1, 4):
            n[j, i] = n[i, j]
    lam, q = _leading_eigenpair_4x4(n)
    w, x, y, z = q[0], q[1], q[2], q[3]
    r = np.empty((3, 3))  # R = Q^T
    r[0, 0] = w * w + x * x - y * y - z * z
    r[1, 0] = 2.0 * (x * y - w * z)
    r[2, 0] = 2.0 * (x * z + w * y)
    r[0, 1] = 2.0 * (y * x + w * z)
    r[1, 1] = w * w - x * x + y * y - z * z
    r[2, 1] = 2.0 * (y * z - w * x)
    r[0, 2] = 2.0 * (z * x - w * y)
    r[1, 2] = 2.0 * (z * y + w * x)
    r[2, 2] = w * w - x * x - y * y + z * z
    s = lam / max(var, 1e-12)
    t = np.empty(3)
    for c in range(3):
        t[c] = ref_mean[c] - s * (mu[0] * r[0, c] + mu[1] * r[1, c] + mu[2] * r[2, c])
    return r, s, t


@njit(cache=True, nogil=True)
def _push_faces(
    points: np.ndarray,
    slots: np.ndarray,
    anchors: np.ndarray,
    ref_centered: np.ndarray,
    ref_mean: np.ndarray,
    union: np.ndarray,
    ring: np.ndarray,
    head: np.ndarray,
    filled: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Normalise faces ``points[i]`` (F, 478, 3) into ``ring[slots[i], head[slot]]`` (union only)."""
    length = ring.shape[1]
    for i in range(points.shape[0]):
        slot = slots[i]
        r, s, t = _similarity_fit(points[i], anchors, ref_centered, ref_mean)
        pos = head[slot]
        for u in range(union.shape[0]):
            j = union[u]
            p0 = points[i, j, 0]
            p1 = points[i, j, 1]
            p2 = points[i, j, 2]
            for c in range(3):
                ring[slot, pos, u, c] = s * (p0 * r[0, c] + p1 * r[1, c] + p2 * r[2, c]) + t[c]
        head[slot] = (pos + 1) % length
        if filled[slot] < length:
            filled[slot] += 1


@njit(cache=True, nogil=True)
def _gather_windows(
    ring: np.ndarray,
    head: np.ndarray,
    slots: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    flat_out: np.ndarray,
    capacity: int,
) -> None:  # pragma: no cover - compiled
    """Copy each emotion's landmark subset of ``slots``' rings, oldest frame first, into its
    block of ``flat_out``: emotion ``e`` owns ``capacity * T * L_e * 3`` floats starting at
    ``capacity * T * 3 * offsets[e]``, laid out C-contiguously as (capacity, T, L_e, 3)."""
    length = ring.shape[1]
    n_emotions = offsets.shape[0] - 1
    for e in range(n_emotions):
        lo = offsets[e]
        n_lm = offsets[e + 1] - lo
        base = capacity * length * 3 * lo
        for b in range(slots.shape[0]):
            slot = slots[b]
            start = head[slot]  # the oldest frame once the ring is full
            for t in range(length):
                src = (start + t) % length
                row = base + (b * length + t) * n_lm * 3
                for l in range(n_lm):
                    u = positions[lo + l]
                    k = row + l * 3
                    flat_out[k] = ring[slot, src, u, 0]
                    flat_out[k + 1] = ring[slot, src, u, 1]
                    flat_out[k + 2] = ring[slot, src, u, 2]


@njit(cache=True, nogil=True)
def _normalize_one(points: np.ndarray, anchors: np.ndarray, ref_centered: np.ndarray, ref_mean: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[l] = normalised points[index[l]]`` for one face (used by tests and tools)."""
    r, s, t = _similarity_fit(points, anchors, ref_centered, ref_mean)
    for l in range(index.shape[0]):
        j = index[l]
        for c in range(3):
            out[l, c] = s * (points[j, 0] * r[0, c] + points[j, 1] * r[1, c] + points[j, 2] * r[2, c]) + t[c]


# --------------------------------------------------------------------------------------------
# numpy equivalents, used until the compiled kernels are ready
# --------------------------------------------------------------------------------------------
def _push_faces_numpy(points: np.ndarray, slots: np.ndarray, anchors: np.ndarray, ref_centered: np.ndarray, ref_mean: np.ndarray,
                      union: np.ndarray, ring: np.ndarray, head: np.ndarray, filled: np.ndarray) -> None:
    """:func:`_push_faces` in numpy: the same similarity fit by SVD
    (:func:`~realtime_fer.landmarks.normalize.similarity_fit`), all faces at once."""
    length = ring.shape[1]
    pts = points.astype(np.float64)
    r, s, t = similarity_fit(pts[:, anchors], ref_centered + ref_mean)
    normalised = s[:, None, None] * (pts[:, union] @ r) + t[:, None, :]
    for i in range(points.shape[0]):
        slot = int(slots[i])
        pos = int(head[slot])
        ring[slot, pos] = normalised[i]
        head[slot] = (pos + 1) % length
        if filled[slot] < length:
            filled[slot] += 1


def _gather_windows_numpy(ring: np.ndarray, head: np.ndarray, slots: np.ndarray, positions: np.ndarray, offsets: np.ndarray,
                          batches: Sequence[np.ndarray]) -> None:
    """:func:`_gather_windows` in numpy, writing into the per-emotion views of ``flat_out``."""
    length = ring.shape[1]
    steps = np.arange(length)
    for e, out in enumerate(batches):
        pos = positions[offsets[e] : offsets[e + 1]]
        for b, slot in enumerate(slots):
            order = (int(head[slot]) + steps) % length
            out[b] = ring[slot][order][:, pos]


_ready = threading.Event()
_compile_lock = threading.Lock()
_compile_thread: threading.Thread | None = None


def kernels_ready() -> bool:
    """True once the compiled kernels are loaded in this process (selectors then use them)."""
    return _ready.is_set()


def _compile_now() -> float:
    with _compile_lock:
        if _ready.is_set():
            return 0.0
        t0 = time.perf_counter()
        sel = FeatureSelector({"warm_up": [0, 1, 2]}, window_length=2, max_faces=1, n_blendshapes=1)
        sel.kernels = "compiled"
        fake = np.zeros((NUM_LANDMARKS, 3), np.float32)
        fake[:NUM_MESH_LANDMARKS] = reference_face() * 100.0 + 200.0
        for _ in range(2):
            sel.push([0], [fake])
        sel.gather([0])
        normalize_subset(fake, sel.union[:1])
        _ready.set()
        elapsed = time.perf_counter() - t0
        log.info("feature selector ready in %.2f s (Numba compile or cache load)", elapsed)
        return elapsed


def compile_kernels(block: bool = True) -> float:
    """Compile the kernels (or load them from Numba's cache) for every selector of the process.

    Args:
        block: wait for them (returns the seconds it took; 0 when already ready); ``False``
            compiles in a daemon thread and returns at once (selectors use numpy meanwhile).
    """
    global _compile_thread
    if _ready.is_set():
        return 0.0
    if block:
        return _compile_now()
    with _compile_lock:
        if _compile_thread is None or not _compile_thread.is_alive():
            _compile_thread = threading.Thread(target=_compile_now, name="fer-numba-compile", daemon=True)
            _compile_thread.start()
    return 0.0


# --------------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------------
def _reference_terms(reference: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    ref = reference_face() if reference is None else np.asarray(reference, dtype=np.float64)
    anchors = np.ascontiguousarray(ref[ANCHOR_INDEX], dtype=np.float64)
    mean = anchors.mean(axis=0)
    return np.ascontiguousarray(anchors - mean), np.ascontiguousarray(mean)


def normalize_subset(points: np.ndarray, index: Sequence[int] | np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Compiled equivalent of ``normalize_landmarks(points)[index]`` for one (478|468, 3) face.

    Returns:
        (len(index), 3) float32.
    """
    pts = np.ascontiguousarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < NUM_MESH_LANDMARKS:
        raise ValueError(f"expected (478 or 468, 3) landmarks, got shape {pts.shape}")
    idx = np.ascontiguousarray(index, dtype=np.int64)
    ref_c, ref_m = _reference_terms(reference)
    out = np.empty((idx.shape[0], 3), np.float32)
    _normalize_one(pts, ANCHOR_INDEX, ref_c, ref_m, idx, out)
    return out


class FeatureSelector:
    """Preallocated per-face ring buffers and per-emotion batch arrays for live scoring.

    Args:
        emotions: emotion -> landmark indices (into the 468-point mesh) that its model reads, in
            the model's input order (``{name: entry.landmarks for name, entry in
            bundle.emotions.items()}``).
        window_length: frames per window (T).
        max_faces: number of ring-buffer slots (faces tracked at once).
        reference: (468, 3) reference face; default: the shipped one.

    Slots are indices ``0 .. max_faces - 1`` that the caller (the face tracker) assigns to
    faces; :meth:`reset` empties one when a new face takes it.
    """

    def __init__(
        self,
        emotions: Mapping[str, Sequence[int]],
        window_length: int,
        max_faces: int,
        reference: np.ndarray | None = None,
        n_blendshapes: int = 0,
    ) -> None:
        if not emotions:
            raise ValueError("no emotions to select features for")
        if window_length < 1 or max_faces < 1:
            raise ValueError("window_length and max_faces must be >= 1")
        self.emotions: tuple[str, ...] = tuple(emotions)
        self.window_length = int(window_length)
        self.max_faces = int(max_faces)
        per_emotion = [np.asarray(list(emotions[e]), dtype=np.int64) for e in self.emotions]
        for name, idx in zip(self.emotions, per_emotion):
            if idx.size == 0 or idx.min() < 0 or idx.max() >= NUM_MESH_LANDMARKS:
                raise ValueError(f"emotion {name!r}: landmark indices must be in [0, {NUM_MESH_LANDMARKS})")
        self.union: np.ndarray = np.unique(np.concatenate(per_emotion))
        """Sorted landmark indices kept in the ring buffers."""
        self._positions = np.ascontiguousarray(np.concatenate([np.searchsorted(self.union, idx) for idx in per_emotion]), dtype=np.int64)
        sizes = np.array([len(idx) for idx in per_emotion], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._ref_centered, self._ref_mean = _reference_terms(reference)
        t, cap = self.window_length, self.max_faces
        self._ring = np.zeros((cap, t, len(self.union), 3), dtype=np.float32)
        self._head = np.zeros(cap, dtype=np.int64)
        self._filled = np.zeros(cap, dtype=np.int64)
        self._flat = np.zeros(int(cap * t * 3 * self._offsets[-1]), dtype=np.float32)
        self._batches: dict[str, np.ndarray] = {}
        for e, name in enumerate(self.emotions):
            lo, hi = int(self._offsets[e]), int(self._offsets[e + 1])
            start = cap * t * 3 * lo
            self._batches[name] = self._flat[start : start + cap * t * 3 * (hi - lo)].reshape(cap, t, hi - lo, 3)
        self._points = np.zeros((cap, NUM_LANDMARKS, 3), dtype=np.float32)
        self._slots = np.zeros(cap, dtype=np.int64)
        self.n_blendshapes = int(n_blendshapes)
        self._blend_ring = np.zeros((cap, t, self.n_blendshapes), dtype=np.float32)
        """Per-face blendshape scores, written at the same ring position as the landmarks."""
        self.kernels: Literal["auto", "compiled", "numpy"] = "auto"
        """``auto``: the compiled kernels once :func:`kernels_ready`, numpy until then;
        ``compiled``: always the kernels (compiled on first use); ``numpy``: never them."""

    def _compiled(self) -> bool:
        return self.kernels == "compiled" or (self.kernels == "auto" and _ready.is_set())

    @classmethod
    def for_bundle(cls, bundle: object, max_faces: int) -> FeatureSelector:
        """A selector for a :class:`~realtime_fer.models.bundle.ModelBundle`."""
        emotions = {name: entry.landmarks for name, entry in bundle.emotions.items()}  # type: ignore[attr-defined]
        return cls(emotions, bundle.window_length, max_faces, n_blendshapes=len(bundle.blendshapes or ()))  # type: ignore[attr-defined]

    def landmarks_of(self, emotion: str) -> np.ndarray:
        """The mesh landmark indices gathered for ``emotion``, in its model's input order."""
        e = self.emotions.index(emotion)
        return self.union[self._positions[self._offsets[e] : self._offsets[e + 1]]]

    # -- state ------------------------------------------------------------------------------
    def reset(self, slot: int) -> None:
        """Empty one face's ring buffer (a new face took the slot, or the face was missed)."""
        self._filled[slot] = 0
        self._head[slot] = 0

    def reset_all(self) -> None:
        self._filled[:] = 0
        self._head[:] = 0

    def filled(self, slot: int) -> int:
        """Frames held for ``slot`` (at most ``window_length``)."""
        return int(self._filled[slot])

    def ready(self, slot: int) -> bool:
        """True when ``slot`` holds a full window."""
        return bool(self._filled[slot] >= self.window_length)

    def gather_blendshapes(self, slots: Sequence[int]) -> np.ndarray | None:
        """The blendshape windows (len(slots), T, B) of ready faces, oldest frame first (a new
        array), or ``None`` when the selector keeps no blendshapes."""
        if not self.n_blendshapes:
            return None
        return np.stack([np.roll(self._blend_ring[s], -int(self._head[s]), axis=0) for s in slots]) if len(slots) else np.zeros((0, self.window_length, self.n_blendshapes), np.float32)

    def gather_union(self, slots: Sequence[int]) -> np.ndarray:
        """The union windows (len(slots), T, L_union, 3) of ready faces, oldest frame first (a
        new array): the input of the union graph (:meth:`BundleScorer.predict_union
        <realtime_fer.models.scorer.BundleScorer.predict_union>`)."""
        if not len(slots):
            return np.zeros((0, self.window_length, len(self.union), 3), np.float32)
        return np.stack([self.window(s) for s in slots])

    def window(self, slot: int) -> np.ndarray:
        """A copy of ``slot``'s window over the landmark union (T, L_union, 3), oldest frame
        first (valid once :meth:`ready`)."""
        return np.roll(self._ring[slot], -int(self._head[slot]), axis=0)

    # -- per frame ----------------------------------------------------------------------------
    def push(self, slots: Sequence[int], points: Sequence[np.ndarray], blendshapes: Sequence[np.ndarray | None] | None = None) -> None:
        """Normalise and append one frame for each face: ``points[i]`` (478|468, 3) pixel
        landmarks go to ring ``slots[i]``, with ``blendshapes[i]`` (B,) when the selector keeps
        blendshapes (a face without them gets zeros)."""
        n = len(slots)
        if n == 0:
            return
        if n != len(points) or n > self.max_faces:
            raise ValueError(f"need as many point sets as slots (at most {self.max_faces}); got {n} slots, {len(points)} faces")
        buf = self._points[:n]
        for i, p in enumerate(points):  # one small copy per face, not per landmark
            buf[i, : p.shape[0]] = p
        self._slots[:n] = slots
        if int(self._slots[:n].min()) < 0 or int(self._slots[:n].max()) >= self.max_faces:
            raise ValueError(f"slots must be in [0, {self.max_faces})")
        if self.n_blendshapes:
            for i, slot in enumerate(slots):
                b = blendshapes[i] if blendshapes is not None else None
                self._blend_ring[slot, self._head[slot]] = b if b is not None and len(b) == self.n_blendshapes else 0.0
        push = _push_faces if self._compiled() else _push_faces_numpy
        push(buf, self._slots[:n], ANCHOR_INDEX, self._ref_centered, self._ref_mean, self.union, self._ring, self._head, self._filled)

    def gather(self, slots: Sequence[int]) -> dict[str, np.ndarray]:
        """Model inputs for the faces in ``slots`` (which must be :meth:`ready`).

        Returns:
            emotion -> (len(slots), T, L_e, 3) float32, C-contiguous **views of preallocated
            buffers**, valid until the next :meth:`gather`.
        """
        n = len(slots)
        if n == 0:
            return {name: arr[:0] for name, arr in self._batches.items()}
        if n > self.max_faces:
            raise ValueError(f"at most {self.max_faces} slots")
        self._slots[:n] = slots
        if self._compiled():
            _gather_windows(self._ring, self._head, self._slots[:n], self._positions, self._offsets, self._flat, self.max_faces)
        else:
            _gather_windows_numpy(self._ring, self._head, self._slots[:n], self._positions, self._offsets, list(self._batches.values()))
        return {name: arr[:n] for name, arr in self._batches.items()}

    # -- compilation --------------------------------------------------------------------------
    def warm_up(self, block: bool = True) -> float:
        """Make the compiled kernels ready (:func:`compile_kernels`): compile them, or load them
        from Numba's cache, and run each once. ``block=False`` does it in a background thread
        and returns at once; this selector computes in numpy until they are ready. Returns the
        seconds spent waiting."""
        return compile_kernels(block=block)
