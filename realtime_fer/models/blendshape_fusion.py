"""A blendshape-centred model beside each landmark model, fused into one network.

MediaPipe's 52 blendshape scores come from a network its makers trained on far more faces than
our datasets hold; on people our models never saw, a plain classifier of the pooled blendshapes
often does better than landmark models tuned on few faces. So each emotion gets two binary
randomized networks fitted on the same training windows:

* the **landmark model** (its landmark subset, with the blendshapes beside them, as before);
* the **blendshape model**: the pooled blendshape scores alone (``n_landmarks = 0``).

Their scores are fused in log-odds space, ``s = w_lm * s_lm + w_bs * s_bs + c``, with weights
fitted per emotion by logistic regression on the calibration windows (``fusion: fitted``), or a
fixed share of the blendshape model's calibrated log-odds (``fusion: fixed``, ``weight``).

Both networks read the same pooled input (the blendshape columns follow the landmarks' in
:func:`~realtime_fer.models.network.pool`), so the fusion is itself one :class:`Network`: the
hidden layers side by side (the blendshape model's first-layer weights on the blendshape rows,
zeros on the landmark rows), one linear head over both. Everything downstream (ONNX export,
the union graph, Integrated Gradients, pruning) sees an ordinary network; attributions stay
complete and name blendshapes and landmarks in one sum.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from realtime_fer.models.calibration import fit_platt
from realtime_fer.models.half import round_to_half
from realtime_fer.models.network import Network

log = logging.getLogger(__name__)


@dataclass
class BlendshapeModelOptions:
    """YAML ``model.blendshape_model`` of the training config."""

    enabled: bool = False
    """Fit a blendshape-only network per emotion and fuse it with the landmark model."""
    hidden: list[int] = field(default_factory=lambda: [128])
    """Random hidden layers of the blendshape model (the other hyperparameters are
    ``model.randomized``'s)."""
    fusion: Literal["fitted", "fixed"] = "fitted"
    """``fitted``: log-odds weights per emotion by logistic regression on the calibration
    windows; ``fixed``: ``(1 - weight)`` of the landmark model's calibrated log-odds plus
    ``weight`` of the blendshape model's."""
    weight: float = 0.5
    """Share of the blendshape model with ``fusion: fixed``."""
    l2: float = 1e-3
    """Ridge penalty of the fitted fusion weights (per calibration window)."""
    attribution_penalty: float | None = None
    """The blendshape model's ``model.randomized.attribution_penalty``; None: the same as the
    landmark models'."""
    input_scale: float | None = None
    """The blendshape model's ``model.randomized.input_scale`` (its random layer reads fewer
    inputs than a landmark model's); None: the same as the landmark models'."""
    ridge: float | None = None
    """The blendshape model's ``model.randomized.ridge``; None: the same as the landmark
    models'."""

    def __post_init__(self) -> None:
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError("blendshape_model.hidden must list at least one positive layer width")
        if self.fusion not in ("fitted", "fixed"):
            raise ValueError("blendshape_model.fusion must be 'fitted' or 'fixed'")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError("blendshape_model.weight must be in [0, 1]")
        if self.l2 < 0:
            raise ValueError("blendshape_model.l2 must be >= 0")
        if self.attribution_penalty is not None and self.attribution_penalty < 0:
            raise ValueError("blendshape_model.attribution_penalty must be >= 0")
        if self.input_scale is not None and not self.input_scale > 0:
            raise ValueError("blendshape_model.input_scale must be > 0")
        if self.ridge is not None and not self.ridge > 0:
            raise ValueError("blendshape_model.ridge must be > 0")


def fit_fusion_weights(s_lm: np.ndarray, s_bs: np.ndarray, truth: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> tuple[float, float, float]:
    """``(w_lm, w_bs, c)`` of the class-balanced logistic regression of ``truth`` on the two
    scores (standardised inside; returned for raw scores), by Newton's method.

    Raises:
        ValueError: ``truth`` lacks positives or negatives.
    """
    y = np.asarray(truth).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("fusion weights need positive and negative calibration windows")
    raw = np.stack([np.asarray(s_lm, np.float64), np.asarray(s_bs, np.float64)], axis=1)
    mu, sd = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-9)
    x = np.concatenate([(raw - mu) / sd, np.ones((len(raw), 1))], axis=1)
    sw = np.where(y, 0.5 / n_pos, 0.5 / n_neg)
    pen = np.array([l2, l2, 0.0])
    beta = np.zeros(3)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        g = x.T @ (sw * (p - y)) + pen * beta
        h = (x * (sw * p * (1 - p))[:, None]).T @ x + np.diag(pen) + 1e-12 * np.eye(3)
        step = np.linalg.solve(h, g)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    w = beta[:2] / sd
    return float(w[0]), float(w[1]), float(beta[2] - np.sum(beta[:2] * mu / sd))


def fixed_fusion_weights(s_lm: np.ndarray, s_bs: np.ndarray, truth: np.ndarray, weight: float) -> tuple[float, float, float]:
    """``(w_lm, w_bs, c)``: ``(1 - weight)`` of the landmark model's Platt log-odds plus
    ``weight`` of the blendshape model's, each Platt-scaled on the calibration windows."""
    a1, b1 = fit_platt(s_lm, truth)
    a2, b2 = fit_platt(s_bs, truth)
    return (1.0 - weight) * a1, weight * a2, (1.0 - weight) * b1 + weight * b2


def fuse(landmark: Network, blendshape: Network, w_lm: float, w_bs: float, bias: float, half: bool = False) -> Network:
    """One :class:`Network` whose score is ``w_lm * landmark.score + w_bs * blendshape.score +
    bias`` on the landmark network's pooled input (its Platt parameters are reset: calibrate the
    fused network afterwards).

    ``half``: round the fused first layer's weights and biases to float16-representable values,
    as :func:`realtime_fer.models.speech_subspace.fold_projection` does for the landmark part,
    so that the exported model stores them in half precision. Without it, a blendshape column
    whose two standardisations differ in the last bit (the same statistic summed in another
    order: ``sigma / s`` one ulp from 1) leaves the whole layer in float32, twice the size.

    Raises:
        ValueError: the two networks cannot share an input (pooling, blendshapes, activation,
            head structure) or the blendshape network reads landmarks.
    """
    if blendshape.n_landmarks != 0 or blendshape.n_blendshapes != landmark.n_blendshapes or not landmark.n_blendshapes:
        raise ValueError("the blendshape network must read the landmark network's blendshapes and no landmark")
    if blendshape.pooling != landmark.pooling or blendshape.activation != landmark.activation:
        raise ValueError("the two networks must pool and activate alike")
    if len(blendshape.layers) != len(landmark.layers) or set(blendshape.head_inputs) - set(landmark.head_inputs) or set(landmark.head_inputs) - set(blendshape.head_inputs):
        raise ValueError("the two networks must have as many hidden layers and the same head inputs")
    d_lm, d_bs = len(landmark.mean), len(blendshape.mean)
    rows = np.arange(d_lm - d_bs, d_lm)  # the blendshape columns of the landmark network's input
    # the blendshape network standardises x_b by (m, s); the landmark network's z has (mu, sigma)
    mu, sigma = np.asarray(landmark.mean, np.float64)[rows], np.asarray(landmark.std, np.float64)[rows]
    m, s = np.asarray(blendshape.mean, np.float64), np.asarray(blendshape.std, np.float64)
    scale, shift = sigma / s, (mu - m) / s  # z_bs = z_lm[rows] * scale + shift
    layers = []
    for k, ((w1, b1), (w2, b2)) in enumerate(zip(landmark.layers, blendshape.layers)):
        w2 = np.asarray(w2, np.float64)
        b2 = np.asarray(b2, np.float64)
        if k == 0:
            block = np.zeros((d_lm, w2.shape[1]))
            block[rows] = scale[:, None] * w2
            b2 = b2 + shift @ w2
        else:
            block = np.zeros((w1.shape[0] + w2.shape[0], w2.shape[1]))
            block[w1.shape[0] :] = w2
            w1 = np.concatenate([np.asarray(w1, np.float64), np.zeros((w2.shape[0], w1.shape[1]))], axis=0)
        w, bias_k = np.concatenate([np.asarray(w1, np.float64), block], axis=1).astype(np.float32), np.concatenate([np.asarray(b1, np.float64), b2]).astype(np.float32)
        if half and k == 0:
            w, bias_k = round_to_half(w), round_to_half(bias_k)
        layers.append((w, bias_k))
    hl, hb = landmark.head_parts(), blendshape.head_parts()
    head, b = [], w_lm * landmark.head_b + w_bs * blendshape.head_b + bias
    for i in landmark.head_inputs:
        if i == 0:
            z = w_lm * hl[0]
            z[rows] += w_bs * scale * hb[0]
            b += w_bs * float(shift @ hb[0])
            head.append(z)
        else:
            head.append(np.concatenate([w_lm * hl[i], w_bs * hb[i]]))
    return replace(landmark, layers=layers, head_w=np.concatenate(head).astype(np.float32), head_b=float(b), platt_a=1.0, platt_b=0.0)
