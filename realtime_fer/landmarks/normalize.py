"""Pose and scale normalisation of face landmarks.

Every face is mapped into the frame of a fixed *reference face* by a similarity transform
(3-D rotation, uniform scale, translation) fitted by least squares (orthogonal Procrustes /
Kabsch-Umeyama) on a set of **rigid anchor landmarks**: forehead, nose bridge, eye corners and
the temples. Expression-bearing points (mouth, brows, eyelids, jaw) are *not* used for the fit,
so a smile or an open mouth does not tilt the normalised face; they are then carried along by
the same transform. The result is invariant to head position, in-plane and out-of-plane
rotation and scale (to the extent the landmarker's 3-D estimate is), which is tested on real
landmarks in ``tests/test_normalize.py``.

The reference face (``assets/reference_face.npy``, 468x3) is the generalised-Procrustes mean
of real CK+ faces (``tools/build_reference_face.py``), centred on its anchors and scaled so the
RMS distance of the anchors from their centroid is 1. Normalised coordinates are therefore in
units of "face size" (about 0.3 units between the outer eye corners).
"""

from __future__ import annotations

import functools

import numpy as np

from realtime_fer.assets import load_array
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS

#: Rigid anchor landmarks of the MediaPipe face mesh used for the similarity fit.
ANCHORS: tuple[int, ...] = (
    10, 151, 9, 8, 109, 338, 67, 297, 103, 332,  # forehead
    168, 6, 197, 195, 5, 4, 1,  # nose bridge and tip
    33, 133, 362, 263,  # eye corners
    127, 356, 234, 454, 162, 389, 21, 251, 54, 284,  # temples and upper face outline
)
ANCHOR_INDEX = np.asarray(ANCHORS, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def reference_face() -> np.ndarray:
    """The (468, 3) float64 reference face shipped with the package."""
    return load_array("reference_face.npy", (NUM_MESH_LANDMARKS, 3), np.float64)


@functools.lru_cache(maxsize=1)
def mirror_index() -> np.ndarray:
    """(468,) left/right correspondence of the mesh (``tools/build_reference_face.py``): landmark
    ``i`` of a face is landmark ``mirror_index()[i]`` of its mirror image; an involution with
    28 midline points mapped to themselves."""
    return load_array("mirror_index.npy", (NUM_MESH_LANDMARKS,), np.int64)


def mirror_normalized(faces: np.ndarray) -> np.ndarray:
    """The horizontal mirror image of normalised faces (..., 468, 3), normalised again: x is
    negated, left and right landmarks swap, and the result is re-fitted to the reference face.
    Used to augment training data (an expression's mirror image shows the same expression)."""
    f = np.asarray(faces, dtype=np.float64).copy()
    f[..., 0] = -f[..., 0]
    return normalize_landmarks(f[..., mirror_index(), :])


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares similarity transform mapping ``source`` points onto ``target`` points.

    Both are (..., K, 3). Returns ``(R, s, t)`` with shapes (..., 3, 3), (...,) and (..., 3)
    such that ``s * source @ R + t`` approximates ``target`` (proper rotation, no reflection).
    """
    mu_s = source.mean(axis=-2, keepdims=True)
    mu_t = target.mean(axis=-2, keepdims=True)
    xs = source - mu_s
    xt = target - mu_t
    h = np.swapaxes(xs, -1, -2) @ xt
    u, sig, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    sig = sig.copy()
    sig[..., 2] *= d
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    r = u @ vt
    var = np.sum(xs * xs, axis=(-1, -2))
    s = np.sum(sig, axis=-1) / np.maximum(var, 1e-12)
    t = mu_t[..., 0, :] - s[..., None] * np.einsum("...i,...ij->...j", mu_s[..., 0, :], r)
    return r, s, t


def normalize_landmarks(points: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Normalise faces to the reference frame.

    Args:
        points: (478, 3) or (468, 3) landmarks of one face, or a batch (N, 478|468, 3), in any
            consistent units (pixels from :class:`FaceLandmarkDetector`); any leading batch axes.
        reference: (468, 3) reference face; default :func:`reference_face`.

    Returns:
        float32 array (..., 468, 3): the face mesh in reference coordinates.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim < 2 or pts.shape[-1] != 3 or pts.shape[-2] < NUM_MESH_LANDMARKS:
        raise ValueError(f"expected (..., 478 or 468, 3) landmarks, got shape {pts.shape}")
    mesh = pts[..., :NUM_MESH_LANDMARKS, :]
    ref = reference_face() if reference is None else np.asarray(reference, dtype=np.float64)
    r, s, t = similarity_fit(mesh[..., ANCHOR_INDEX, :], ref[ANCHOR_INDEX])
    out = s[..., None, None] * (mesh @ r) + t[..., None, :]
    return out.astype(np.float32)
