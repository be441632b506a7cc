"""The pruning curve of one emotion as a PNG (OpenCV only): validation metric vs number of
landmarks for IG-chosen subsets, random subsets (mean ± std over seeds) and the full set."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)
IG_COLOUR = (40, 40, 200)  # red (BGR)
RANDOM_COLOUR = (190, 120, 30)  # blue
FULL_COLOUR = (120, 120, 120)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, colour: tuple[int, int, int] = INK, thick: int = 1) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    span = max(hi - lo, 1e-9)
    step = 10 ** np.floor(np.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (m * step) <= n:
            step *= m
            break
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-6, step)]


def draw_curve(
    counts: Sequence[int],
    ig: Sequence[float | None],
    random_mean: Sequence[float | None],
    random_std: Sequence[float | None],
    full: float | None,
    *,
    chosen: int | None,
    title: str,
    metric: str,
    tolerance: float | None = None,
    width: int = 900,
    height: int = 560,
) -> np.ndarray:
    """The curve image (BGR uint8); ``None`` values are skipped."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 80, 30, 70, 70
    xs = np.asarray(counts, float)
    values = [v for v in list(ig) + list(random_mean) + [full] if v is not None]
    values += [m - s for m, s in zip(random_mean, random_std) if m is not None and s is not None]
    values += [m + s for m, s in zip(random_mean, random_std) if m is not None and s is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((hi - lo) * 0.08, 0.005)
    lo, hi = lo - pad, min(hi + pad, 1.0 + pad)
    x_lo, x_hi = 0.0, float(xs.max()) * 1.03 if len(xs) else 1.0

    def px(x: float, y: float) -> tuple[int, int]:
        return (int(left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)), int(height - bottom - (y - lo) / (hi - lo) * (height - top - bottom)))

    # axes and grid
    for t in _nice_ticks(lo, hi):
        p0, p1 = px(x_lo, t), px(x_hi, t)
        cv2.line(img, p0, p1, (235, 235, 235), 1)
        _text(img, f"{t:.3f}", (8, p0[1] + 4), 0.42, (90, 90, 90))
    for c in counts:
        p = px(c, lo)
        cv2.line(img, p, px(c, hi), (242, 242, 242), 1)
        _text(img, str(c), (p[0] - 10, p[1] + 18), 0.4, (90, 90, 90))
    cv2.rectangle(img, px(x_lo, hi), px(x_hi, lo), (150, 150, 150), 1)
    _text(img, "landmarks", (width // 2 - 40, height - 22), 0.5)
    _text(img, metric, (8, top - 14), 0.5)
    _text(img, title, (left, 30), 0.7, INK, 2)

    # random: mean +- std band and line
    band = [(c, m, s) for c, m, s in zip(counts, random_mean, random_std) if m is not None and s is not None]
    if len(band) >= 2:
        poly = [px(c, m + s) for c, m, s in band] + [px(c, m - s) for c, m, s in reversed(band)]
        overlay = img.copy()
        cv2.fillPoly(overlay, [np.array(poly, np.int32)], (240, 215, 180))
        img[:] = cv2.addWeighted(overlay, 0.6, img, 0.4, 0)
    for series, colour in ((random_mean, RANDOM_COLOUR), (ig, IG_COLOUR)):
        pts = [px(c, v) for c, v in zip(counts, series) if v is not None]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 4, colour, -1, cv2.LINE_AA)
    if full is not None:
        y = px(x_lo, full)[1]
        for x0 in range(left, width - right, 14):
            cv2.line(img, (x0, y), (min(x0 + 7, width - right), y), FULL_COLOUR, 1)
    known = [v for v in ig if v is not None]
    if tolerance and known:
        yt = px(x_lo, max(known) - tolerance)[1]
        for x0 in range(left, width - right, 6):
            cv2.line(img, (x0, yt), (x0 + 2, yt), FULL_COLOUR, 1)
    if chosen is not None and chosen in list(counts):
        v = ig[list(counts).index(chosen)]
        if v is not None:
            cv2.circle(img, px(chosen, v), 10, IG_COLOUR, 2, cv2.LINE_AA)
    # legend
    lx, ly = width - right - 300, height - bottom - 90
    cv2.rectangle(img, (lx - 10, ly - 20), (width - right - 6, ly + 66), (255, 255, 255), -1)
    cv2.rectangle(img, (lx - 10, ly - 20), (width - right - 6, ly + 66), (200, 200, 200), 1)
    cv2.line(img, (lx, ly - 5), (lx + 30, ly - 5), IG_COLOUR, 2)
    _text(img, "IG-chosen landmarks (o = chosen)", (lx + 38, ly), 0.45)
    cv2.line(img, (lx, ly + 17), (lx + 30, ly + 17), RANDOM_COLOUR, 2)
    _text(img, "random subsets, mean +- std", (lx + 38, ly + 22), 0.45)
    cv2.line(img, (lx, ly + 39), (lx + 30, ly + 39), FULL_COLOUR, 1)
    _text(img, "full set" + (" (dotted: best - tolerance)" if tolerance else ""), (lx + 38, ly + 44), 0.45)
    return img


def save_curve_png(path: str | Path, *args: object, **kwargs: object) -> Path:
    """:func:`draw_curve` written as a PNG at ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), draw_curve(*args, **kwargs)):  # type: ignore[arg-type]
        raise OSError(f"could not write {p}")
    return p
