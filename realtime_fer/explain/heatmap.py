"""Draw an emotion's relevance as a heatmap on the face mesh (PNG, OpenCV only).

The reference face (``assets/reference_face.npy``) is drawn frontally as a camera sees it
(the person's left on the image's right), mesh edges faint; every landmark of the model is a
disc coloured and sized by its relevance (landmarks the model does not use are small grey dots),
and the most relevant regions are labelled in the margins with their share of the relevance.

:func:`draw_region_relevance` (what ``realtime-fer explain`` draws) colours every landmark by its
**region's** relevance (the size of the region's summed signed attribution, as the live messages
rank them), labels regions with their share and sign, and lists the most relevant blendshapes
under the face; :func:`draw_relevance` draws a per-landmark relevance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from realtime_fer.explain.regions import face_regions
from realtime_fer.landmarks.normalize import reference_face

FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)


def _colours(values: np.ndarray) -> np.ndarray:
    """BGR colours of values in [0, 1] (colormap TURBO: blue = low, red = high)."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0]
    return lut[np.clip((values * 255).round(), 0, 255).astype(int)]


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, colour: tuple[int, int, int] = INK, thick: int = 1) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def _spread(ys: list[float], low: float, high: float, gap: float) -> list[float]:
    """Move label positions apart so that neighbours are at least ``gap`` apart, within [low, high]."""
    order = np.argsort(ys)
    out = np.array(ys, float)[order]
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    if len(out) and out[-1] > high:
        out -= out[-1] - high
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - gap)
    out = np.maximum(out, low)
    result = np.empty_like(out)
    result[order] = out
    return list(result)


def draw_relevance(
    landmarks: Sequence[int],
    relevance: Sequence[float],
    title: str,
    subtitle: str = "",
    *,
    n_labels: int = 8,
    height: int = 900,
    region_share: Mapping[str, tuple[float, float]] | None = None,
    notes: Sequence[str] = (),
    bar_label: str = "per landmark",
) -> np.ndarray:
    """The heatmap image (BGR uint8).

    Args:
        landmarks: mesh indices of the model's landmarks.
        relevance: their relevance (normalised to sum 1).
        title, subtitle: text above the face.
        n_labels: how many of the most relevant regions to label.
        region_share: region -> (share, signed attribution) for the labels (default: the
            landmarks' relevance summed per region, unsigned).
        notes: lines written under the face (e.g. the most relevant blendshapes).
        bar_label: what the colour bar's top value is (``"per landmark"``, ``"per region"``).
    """
    lms = np.asarray(landmarks, np.int64)
    rel = np.asarray(relevance, np.float64)
    regions = face_regions()
    ref = reference_face()[:, :2]
    margin_x, top, bottom = 250, 90, 90
    face_h = height - top - bottom
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    scale = face_h / (hi - lo)[1]
    face_w = int((hi - lo)[0] * scale)
    width = face_w + 2 * margin_x
    pts = ((ref - lo) * scale + [margin_x, top]).round().astype(np.int32)
    img = np.full((height, width, 3), 255, np.uint8)

    for a, b in regions.edges:
        cv2.line(img, tuple(pts[a]), tuple(pts[b]), (228, 228, 228), 1, cv2.LINE_AA)
    for a, b in regions.contours:
        cv2.line(img, tuple(pts[a]), tuple(pts[b]), (190, 190, 190), 1, cv2.LINE_AA)
    unused = np.setdiff1d(np.arange(len(ref)), lms)
    for i in unused:
        cv2.circle(img, tuple(pts[i]), 1, (175, 175, 175), -1, cv2.LINE_AA)
    peak = float(rel.max()) if len(rel) and rel.max() > 0 else 1.0
    norm = rel / peak
    colours = _colours(norm)
    for j in np.argsort(norm):  # most relevant drawn last, on top
        r = int(round(2 + 9 * np.sqrt(norm[j])))
        c = tuple(int(v) for v in colours[j])
        cv2.circle(img, tuple(pts[lms[j]]), r, c, -1, cv2.LINE_AA)
        if r >= 5:
            cv2.circle(img, tuple(pts[lms[j]]), r, (90, 90, 90), 1, cv2.LINE_AA)

    # label the most relevant regions in the margins, with leader lines to their centres
    share: dict[str, float] = {}
    signs: dict[str, str] = {}
    if region_share is None:
        for lm, v in zip(lms, rel):
            share[regions.names[lm]] = share.get(regions.names[lm], 0.0) + float(v)
    else:
        share = {k: float(v[0]) for k, v in region_share.items()}
        signs = {k: "+" if v[1] >= 0 else "-" for k, v in region_share.items()}
    top_regions = sorted(share, key=lambda k: -share[k])[:n_labels]
    centre_x = width / 2
    for side in ("left_margin", "right_margin"):
        items = []
        for name in top_regions:
            members = [j for j, lm in enumerate(lms) if regions.names[lm] == name]
            w = rel[members] + 1e-12
            c = (pts[lms[members]] * w[:, None]).sum(axis=0) / w.sum()
            if (c[0] < centre_x) == (side == "left_margin"):
                items.append((name, c))
        ys = _spread([float(c[1]) for _, c in items], top + 10, height - bottom - 10, 34)
        for (name, c), y in zip(items, ys):
            label = f"{name}  {signs.get(name, '')}{100 * share[name]:.1f}%"
            (tw, _), _ = cv2.getTextSize(label, FONT, 0.5, 1)
            x_text = 10 if side == "left_margin" else width - tw - 10
            anchor = (x_text + tw + 4, int(y) - 4) if side == "left_margin" else (x_text - 4, int(y) - 4)
            cv2.line(img, anchor, (int(c[0]), int(c[1])), (120, 120, 120), 1, cv2.LINE_AA)
            _text(img, label, (x_text, int(y)), 0.5, INK, 1)

    _text(img, title, (14, 34), 0.8, INK, 2)
    if subtitle:
        _text(img, subtitle, (14, 62), 0.5, (90, 90, 90), 1)
    # colour bar: relevance of one landmark, as a share of the total
    bar_x0, bar_x1, bar_y = margin_x, width - margin_x, height - 50
    grad = _colours(np.linspace(0, 1, bar_x1 - bar_x0))
    img[bar_y : bar_y + 14, bar_x0:bar_x1] = grad[None]
    cv2.rectangle(img, (bar_x0, bar_y), (bar_x1 - 1, bar_y + 13), (120, 120, 120), 1)
    _text(img, "0", (bar_x0 - 16, bar_y + 12), 0.45)
    _text(img, f"{100 * peak:.2f}% {bar_label}", (bar_x1 + 6, bar_y + 12), 0.45)
    for k, line in enumerate(notes):
        _text(img, line, (14, bar_y - 12 - 20 * (len(notes) - 1 - k)), 0.45, INK)
    _text(img, "face as seen by a camera: the person's left is on the right; grey dots: landmarks the model does not use", (14, height - 14), 0.42, (110, 110, 110))
    return img


def draw_region_relevance(
    landmarks: Sequence[int],
    regions: Mapping[str, tuple[float, float]],
    blendshapes: Mapping[str, tuple[float, float]],
    title: str,
    subtitle: str = "",
    *,
    n_blendshapes: int = 5,
    **kwargs: object,
) -> np.ndarray:
    """The region-level heatmap (BGR uint8): each model landmark coloured by its region's share.

    Args:
        landmarks: mesh indices of the model's landmarks.
        regions: region -> (share of the relevance of regions and blendshapes, mean signed
            attribution); blendshapes: the same per blendshape.
        n_blendshapes: how many of the most relevant blendshapes to list under the face.
    """
    names = face_regions().names
    rel = np.array([regions.get(names[int(i)], (0.0, 0.0))[0] for i in landmarks], np.float64)
    top_bs = sorted(blendshapes, key=lambda k: -blendshapes[k][0])[:n_blendshapes]
    notes = []
    if top_bs:
        notes.append("blendshapes: " + ", ".join(f"{k} {'+' if blendshapes[k][1] >= 0 else '-'}{100 * blendshapes[k][0]:.1f}%" for k in top_bs))
    notes.append("shares of |signed attribution summed per region / blendshape|; sign: mean direction (+ towards the emotion)")
    return draw_relevance(landmarks, rel, title, subtitle, region_share=regions, notes=notes, bar_label="per region", **kwargs)  # type: ignore[arg-type]


def save_region_png(
    path: str | Path,
    landmarks: Sequence[int],
    regions: Mapping[str, tuple[float, float]],
    blendshapes: Mapping[str, tuple[float, float]],
    title: str,
    subtitle: str = "",
    **kwargs: object,
) -> Path:
    """Draw :func:`draw_region_relevance` and write it as a PNG at ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), draw_region_relevance(landmarks, regions, blendshapes, title, subtitle, **kwargs)):
        raise OSError(f"could not write {p}")
    return p


def save_relevance_png(path: str | Path, landmarks: Sequence[int], relevance: Sequence[float], title: str, subtitle: str = "", **kwargs: object) -> Path:
    """Draw :func:`draw_relevance` and write it as a PNG at ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), draw_relevance(landmarks, relevance, title, subtitle, **kwargs)):
        raise OSError(f"could not write {p}")
    return p
