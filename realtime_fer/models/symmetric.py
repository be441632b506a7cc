"""Left/right symmetric networks: a model that gives a face and its mirror image one score.

An expression and its mirror image are the same expression, but a network fitted on a few
thousand faces weighs the two sides of the face differently: in one sad window of MEAD its
attributions put ``mouthFrownRight`` at +7.6 and ``mouthFrownLeft`` at -5.1, an asymmetry the
data cannot support and the explanation then shows as two large weights that cancel. The
**symmetric network** of a fitted network ``f`` is

    f_s(x) = (f(x) + f(Q x)) / 2

where ``Q`` is the mirror map of the pooled input (:func:`pooled_mirror`): left and right
landmarks (and blendshape categories) swapped, each landmark reflected in the face's plane of
symmetry. ``Q`` is an involution, so ``f_s(Q x) = f_s(x)`` exactly: the network cannot read
which side an expression is on, and on a face's two mirror-image landmarks the attributions
of any odd (left-minus-right) reading cancel inside the model instead of in the explanation.

``Q`` is affine in the pooled input, so ``f_s`` is an ordinary :class:`Network` whose first
layer holds ``f``'s units twice (once reading ``x``, once ``Q x``) and whose head averages the
two (:func:`symmetrise`): the ONNX export, the runtime and Integrated Gradients see nothing new.
The price is a first layer twice as wide. A model's landmark subset must be closed under the
mirror (:func:`mirror_closed`).

The plane of symmetry is the one of the reference face that every face is normalised to
(:func:`mirror_plane`); the reference is not symmetric about ``x = 0`` (it is rolled by about
4 degrees against its own mirror image), so a plain ``x -> -x`` would hand ``f`` tilted faces.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Sequence

import numpy as np

from realtime_fer.models.half import round_to_half
from realtime_fer.models.network import Network, block_diagonal, blendshape_part

#: Poolings whose mirror image is an affine map of the pooled part (min/max would swap under
#: the reflection's sign and are not supported).
MIRRORABLE_POOLINGS = ("mean", "delta", "std")


@functools.lru_cache(maxsize=1)
def mirror_plane() -> tuple[np.ndarray, np.ndarray]:
    """``(H, p)``: the reflection ``v -> (v - p) H + p`` (``H = I - 2 n n^T``, a Householder
    matrix) in the reference face's plane of symmetry, fitted so that it maps each reference
    landmark onto its mirror partner (least squares over the 468 mesh landmarks)."""
    from realtime_fer.landmarks.normalize import mirror_index, reference_face

    ref = np.asarray(reference_face(), np.float64)[: len(mirror_index())]
    partner = ref[mirror_index()]
    d = ref - partner  # across the plane: parallel to its normal
    _, _, vt = np.linalg.svd(d, full_matrices=False)
    n = vt[0] / np.linalg.norm(vt[0])
    if n[0] < 0:
        n = -n
    p = 0.5 * (ref + partner).mean(axis=0)  # the midpoints lie on the plane
    h = np.eye(3) - 2.0 * np.outer(n, n)
    return h, p


def mirror_closed(subset: Sequence[int]) -> list[int]:
    """``subset`` with every landmark's mirror partner added, sorted."""
    from realtime_fer.landmarks.normalize import mirror_index

    m = mirror_index()
    s = {int(i) for i in subset}
    return sorted(s | {int(m[i]) for i in s})


def mirror_paired(subset: Sequence[int]) -> list[int]:
    """The landmarks of ``subset`` whose mirror partner is in it too (midline landmarks are
    their own partners), sorted: a mirror-closed subset no larger than ``subset``."""
    from realtime_fer.landmarks.normalize import mirror_index

    m = mirror_index()
    s = {int(i) for i in subset}
    return sorted(i for i in s if int(m[i]) in s)


def pooled_mirror(subset: Sequence[int], pooling: Sequence[str], n_blendshapes: int, landmarks: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(A, c)``: the mirror map ``x -> x A + c`` of a network's pooled input (row vectors;
    :func:`realtime_fer.models.network.pool`'s layout) for a mirror-closed ``subset``.
    ``landmarks=False``: the blendshapes' Left/Right swap alone, the landmark columns left as
    they are (any subset, any pooling).

    ``mean`` parts: each landmark takes its partner's point reflected in :func:`mirror_plane`;
    ``delta`` parts: its partner's displacement reflected; ``std`` parts: its partner's spread
    (per coordinate: the reflection's tilt, about 2 degrees, is not carried into spreads);
    blendshapes: the Left/Right categories swapped. ``A`` is an involution (``A A = I``,
    ``c A + c = 0``).

    Raises:
        ValueError: ``subset`` is not mirror-closed, or a pooling is not mirrorable.
    """
    from realtime_fer.data.motion import blendshape_mirror
    from realtime_fer.landmarks.normalize import mirror_index

    sub = [int(i) for i in subset]
    width, nb = 3 * len(sub), int(n_blendshapes)
    d = len(pooling) * (width + nb)
    a = np.zeros((d, d), np.float64)
    c = np.zeros(d, np.float64)
    if landmarks:
        bad = [p for p in pooling if p not in MIRRORABLE_POOLINGS]
        if bad:
            raise ValueError(f"a symmetric network needs poolings among {MIRRORABLE_POOLINGS}, not {bad}")
        pos = {lm: j for j, lm in enumerate(sub)}
        m = mirror_index()
        try:
            partner = np.array([pos[int(m[lm])] for lm in sub], np.int64)
        except KeyError as err:
            raise ValueError(f"landmark subset is not closed under the mirror (missing partner {err.args[0]}); use mirror_closed()") from None
        h, p = mirror_plane()
        shift = p - p @ h  # v H + (p - p H) = (v - p) H + p
        for k, part in enumerate(pooling):
            off = k * width
            for j, q in enumerate(partner):
                rows = off + 3 * q + np.arange(3)
                cols = off + 3 * j + np.arange(3)
                if part == "std":
                    a[rows, cols] = 1.0
                else:
                    a[np.ix_(rows, cols)] = h
                    if part == "mean":
                        c[cols] = shift
    else:  # the landmark columns stay as they are
        lm_cols = np.arange(len(pooling) * width)
        a[lm_cols, lm_cols] = 1.0
    if nb:
        bm = blendshape_mirror()
        for k in range(len(pooling)):
            off = blendshape_part(len(sub), len(pooling), nb, k).start
            a[off + bm, off + np.arange(nb)] = 1.0
    return a, c


def symmetrise(net: Network, subset: Sequence[int], half: bool = False, landmarks: bool = True) -> Network:
    """The network computing ``(net(x) + net(Q x)) / 2`` (``Q``: :func:`pooled_mirror` of
    ``subset``, ``net``'s landmarks), with ``net``'s Platt parameters (calibrate it afterwards).
    ``landmarks=False``: ``Q`` swaps the Left/Right blendshapes only (the network is then
    symmetric in its blendshapes, not in its landmarks).

    The first layer holds ``net``'s units and their mirror twins (the twins read
    ``z A_z + c_z``, the standardised mirror image); later layers are block-diagonal; the head
    halves every hidden weight and averages the direct link. Units that read only the
    blendshape columns stay last (the union graph multiplies those columns alone).
    ``half``: round the twins' first-layer weights to float16-representable values, as the
    folded first layers are.

    Raises:
        ValueError: the subset is not mirror-closed or the network pools min/max.
    """
    if len(subset) != net.n_landmarks:
        raise ValueError(f"subset has {len(subset)} landmarks, the network reads {net.n_landmarks}")
    a, c = pooled_mirror(subset, net.pooling, net.n_blendshapes, landmarks=landmarks)
    mu, sigma = np.asarray(net.mean, np.float64), np.asarray(net.std, np.float64)
    # z' = (x A + c - mu) / sigma with x = z sigma + mu:  z' = z A_z + c_z
    a_z = sigma[:, None] * a / sigma[None, :]
    c_z = (mu @ a + c - mu) / sigma
    if not net.layers:
        raise ValueError("a symmetric network needs at least one hidden layer")
    w1, b1 = (np.asarray(v, np.float64) for v in net.layers[0])
    twin = a_z @ w1
    if half:
        twin = round_to_half(twin, np.float64)
    w1s = np.concatenate([w1, twin], axis=1)
    b1s = np.concatenate([b1, b1 + c_z @ w1])
    # keep the units that read only blendshapes last (see onnx_export.tail_only_units)
    lm_rows = len(net.pooling) * 3 * net.n_landmarks
    tail = ~w1s[:lm_rows].any(axis=0) if net.n_blendshapes else np.zeros(w1s.shape[1], bool)
    order = np.concatenate([np.flatnonzero(~tail), np.flatnonzero(tail)])
    layers = [(w1s[:, order].astype(np.float32), b1s[order].astype(np.float32))]
    for w, b in net.layers[1:]:
        w = np.asarray(w, np.float64)
        block = block_diagonal([w, w])
        if len(layers) == 1:
            block = block[order]
        layers.append((block.astype(np.float32), np.concatenate([b, b]).astype(np.float32)))
    head, bias = [], float(net.head_b)
    for i, part in net.head_parts().items():
        if i == 0:
            head.append(0.5 * (part + a_z @ part))
            bias += 0.5 * float(c_z @ part)
        else:
            both = 0.5 * np.concatenate([part, part])
            head.append(both[order] if i == 1 else both)
    return replace(net, layers=layers, head_w=np.concatenate(head).astype(np.float32), head_b=bias,
                   extras={**net.extras, "symmetric": "all" if landmarks else "blendshapes"})


#: Raw spread (blendshape score units) under which a pooled blendshape column counts as constant.
CONSTANT_BLENDSHAPE_STD = 1e-3


def odd_blendshape_basis(n_landmarks: int, pooling: Sequence[str], n_blendshapes: int, spread: np.ndarray | None = None) -> np.ndarray | None:
    """Orthonormal basis (D, k) of the pooled input's **odd blendshape directions**: for every
    pooling part and every Left/Right pair of categories, ``(left - right) / sqrt(2)``. A network
    fitted on features projected off it (the projection folded into its first layer, as the
    speech subspace's) reads each pair only through its sum: it is invariant to the
    blendshapes' mirror swap, at no cost, and the two sides of one frown get one gradient.

    ``spread``: the training features' standard deviation per column (D,). A pair of which a
    side is (nearly) constant, spread under :data:`CONSTANT_BLENDSHAPE_STD` (e.g. MediaPipe's
    ``cheekSquint*``, about 2e-6), is left out: standardised by so small a spread, its folded
    weights are huge, float16 rounding leaves the network reading the pair's difference after
    all, and explanations moved along that direction would move the output. None without
    blendshapes (or pairs)."""
    from realtime_fer.data.motion import blendshape_mirror

    nb = int(n_blendshapes)
    if not nb:
        return None
    bm = blendshape_mirror()[:nb]
    pairs = [(i, int(bm[i])) for i in range(nb) if int(bm[i]) > i]
    width = 3 * int(n_landmarks) * len(pooling)
    d = width + len(pooling) * nb
    cols = []
    for k in range(len(pooling)):
        off = blendshape_part(n_landmarks, len(pooling), nb, k).start
        for i, j in pairs:
            if spread is not None and min(float(spread[off + i]), float(spread[off + j])) < CONSTANT_BLENDSHAPE_STD:
                continue
            v = np.zeros(d)
            v[off + i], v[off + j] = 1.0 / np.sqrt(2.0), -1.0 / np.sqrt(2.0)
            cols.append(v)
    return np.stack(cols, axis=1) if cols else None


def symmetric_basis(basis: np.ndarray | None, subset: Sequence[int], pooling: Sequence[str], n_blendshapes: int) -> np.ndarray | None:
    """An orthonormal basis of as many directions as ``basis`` (D, k), closest to it among the
    subspaces the mirror map leaves in place: the leading eigenvectors of the average of the
    projector on ``basis`` and its mirror image. A symmetric network projects these off, so
    that its mirror twins cannot read a direction (the speech subspace's) the originals do not;
    the talking directions were mirrored about ``x = 0``, not the face's plane, so they are
    only nearly symmetric."""
    if basis is None:
        return None
    a, _ = pooled_mirror(subset, pooling, n_blendshapes)
    b = np.asarray(basis, np.float64)
    proj = b @ b.T
    avg = 0.5 * (proj + a.T @ proj @ a)
    vals, vecs = np.linalg.eigh(avg)
    return vecs[:, np.argsort(vals)[::-1][: b.shape[1]]]
