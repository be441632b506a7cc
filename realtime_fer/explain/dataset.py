"""Dataset-level explanation of a model bundle (``realtime-fer explain``).

Labelled folder -> landmarks (cached extraction) -> windows -> for every emotion of the bundle:
its network read back from the ONNX file (:meth:`ModelBundle.network`), Integrated Gradients of
its positive samples against the chosen baseline, aggregated per landmark
(:mod:`realtime_fer.explain.relevance`), and optionally a heatmap PNG per emotion.

Output schema (``relevance.json``; extra fields may be added)::

    {"emotions": {"<name>": {"n_samples", "baseline": {"kind", "faces"}, "completeness": {...},
                             "landmarks": [...], "relevance": [...] (sums to 1),
                             "signed_mean": [...], "regions": [...],
                             "top": [{"region" | "blendshape", "relevance", "signed"}],
                             "top_landmarks": [{"landmark", "region", "relevance", "signed"}],
                             "region_relevance": {...}, "blendshape_relevance": {...}}},

``top`` ranks the named regions and the blendshapes by the mean size of their signed
attribution (see :mod:`realtime_fer.explain.relevance`), as the live messages do;
``landmarks``/``relevance``/``top_landmarks`` keep the per-landmark relevance that pruning uses.
     "skipped": {"<name>": "reason"}, "integrated_gradients": {...}, "model": {...}, "data": {...}}
"""

from __future__ import annotations


import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realtime_fer.data.extract import extract_dataset, with_blendshapes
from realtime_fer.data.windows import iter_window_chunks
from realtime_fer.errors import DataError
from realtime_fer.explain.baselines import BaselineBank, check_kind
from realtime_fer.explain.gradients import Precision
from realtime_fer.explain.heatmap import save_region_png
from realtime_fer.explain.integrated_gradients import Method, quadrature
from realtime_fer.explain.regions import face_regions
from realtime_fer.explain.relevance import LandmarkRelevance, landmark_relevance
from realtime_fer.features.windows import WindowOptions
from realtime_fer.landmarks.detector import LandmarkerOptions
from realtime_fer.models.bundle import load_bundle

log = logging.getLogger(__name__)

#: windows taken from one video at most (evenly spaced), as in training
MAX_WINDOWS_PER_VIDEO = 60

BASELINE_TEXT = {
    "neutral": "the same subject's neutral face where the data has one, else the data's mean neutral face (or the shipped RAF-DB mean neutral face)",
    "others": "the typical face (sample nearest the label mean) of each other label, attributions averaged over them",
    "zero": "the all-zero input",
}


def _pick(n: int, k: int | None) -> np.ndarray:
    """``k`` evenly spaced positions out of ``n`` (all when ``k`` is None or >= n)."""
    if k is None or n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def explain_dataset(
    data_dir: str | Path,
    bundle: str | Path | None = None,
    *,
    baseline: str = "others",
    n_steps: int = 16,
    method: Method = "gausslegendre",
    dtype: Precision = "float32",
    max_samples: int | None = 500,
    top_k: int = 10,
    heatmaps: str | Path | None = None,
    cache_dir: str | Path = ".fer_cache",
    landmarker: LandmarkerOptions | None = None,
    workers: int | None = None,
    max_video_frames: int | None = None,
    progress: bool = True,
    on_emotion: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Relevance of every landmark for every emotion of ``bundle`` (default: the shipped model)
    over the labelled folder ``data_dir``; returns the ``relevance.json`` dict.

    Args:
        baseline: ``neutral``, ``others`` (the paper's) or ``zero``.
        n_steps, method: quadrature of the IG path integral.
        max_samples: most windows of each emotion to explain (evenly spaced); None: all.
        heatmaps: folder for one ``<emotion>.png`` heatmap each (None: no images).
        on_emotion: called with each emotion's name after it is done (progress display).

    Raises:
        DataError: unknown baseline, missing/empty folder, no face in it.
        BundleError: the bundle is missing or corrupt.
    """
    check_kind(baseline)
    quadrature(method, n_steps)  # validates steps and method before the long work
    t0 = time.perf_counter()
    model = load_bundle(bundle)
    nets = {e: model.network(e) for e in model.emotions}
    blend = bool(model.blendshapes)
    res = extract_dataset(data_dir, cache_dir, with_blendshapes(landmarker, blend), workers=workers, progress=progress, max_video_frames=max_video_frames)
    samples = [s for s in res.samples if s.detected.any()]
    if not samples:
        raise DataError(f"no face found in any sample of {data_dir}")
    labels_s = np.array([s.ref.label for s in samples])
    # samples whose windows are explained: up to max_samples per emotion, evenly spaced
    chosen = np.zeros(len(samples), bool)
    for e in model.emotions:
        rows = np.nonzero(labels_s == e)[0]
        chosen[rows[_pick(len(rows), max_samples)]] = True

    window = WindowOptions(length=model.window_length, hop=model.hop)
    faces, owners, kept, kept_owner, kept_blend = [], [], [], [], []
    for chunk in iter_window_chunks(samples, window, jitter=False, max_windows=MAX_WINDOWS_PER_VIDEO, blendshapes=blend):
        wins, own = chunk[0], chunk[1]
        faces.append(wins.mean(axis=1))
        owners.append(own)
        sel = chosen[own]
        if sel.any():
            kept.append(wins[sel])
            kept_owner.append(own[sel])
            if blend:
                kept_blend.append(chunk[2][sel])
    owner = np.concatenate(owners)
    bank = BaselineBank.from_faces(
        np.concatenate(faces), labels_s[owner], [samples[i].ref.group for i in owner], [samples[i].ref.path.name for i in owner]
    )
    pos_windows = np.concatenate(kept) if kept else np.zeros((0, model.window_length, 468, 3), np.float32)
    pos_owner = np.concatenate(kept_owner) if kept_owner else np.zeros(0, np.int64)
    pos_blend = np.concatenate(kept_blend) if kept_blend else None
    log.info("%d windows of %d samples; explaining up to %s per emotion", len(owner), len(samples), max_samples)

    out_emotions: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for e, entry in model.emotions.items():
        rows = np.nonzero(labels_s[pos_owner] == e)[0]
        rows = rows[_pick(len(rows), max_samples)]
        if not len(rows):
            skipped[e] = "no sample of this emotion in the data"
            if on_emotion:
                on_emotion(e)
            continue
        groups = [samples[i].ref.group for i in pos_owner[rows]]
        wins = np.ascontiguousarray(pos_windows[rows][:, :, entry.landmarks])
        bs = bank.baselines(baseline, e, groups)
        rel = landmark_relevance(nets[e], wins, bs, entry.landmarks, emotion=e, n_steps=n_steps, method=method, dtype=dtype, blendshapes=None if pos_blend is None else pos_blend[rows], blendshape_names=model.blendshapes or None)
        out_emotions[e] = rel.to_dict(top_k)
        if heatmaps is not None:
            out_emotions[e]["heatmap"] = str(_heatmap(Path(heatmaps), rel, baseline, Path(data_dir).name))
        if on_emotion:
            on_emotion(e)

    return {
        "emotions": out_emotions,
        "skipped": skipped,
        "integrated_gradients": {
            "explained_output": "calibrated logit (platt_a * score + platt_b) of each emotion's network",
            "baseline": baseline,
            "baseline_definition": BASELINE_TEXT[baseline],
            "baseline_moved": "each baseline window is first moved along the directions of the pooled mean shape its network cannot see (the talking motion projected off in training) to the window's own position, and set talking along them as the window does (visible_only, talking_baseline; docs/explainability.md)",
            "n_steps": n_steps,
            "method": method,
            "dtype": dtype,
            "aggregation": "top / region_relevance / blendshape_relevance: per window, the signed attribution summed over each named region's landmarks (x, y, z and frames) and over each blendshape's frames; its size averaged over the emotion's windows, normalised to sum 1 over regions and blendshapes together. relevance (per landmark): |attribution| summed over x, y, z and frames, averaged, normalised to sum 1; signed_mean: the same without |.| and not normalised (logit units)",
            "max_samples": max_samples,
        },
        "regions": {"convention": "left/right are the person's own (on the image's right in an unmirrored camera image)", "n_regions": len(face_regions().region_names)},
        "model": {"path": str(model.path), "created": model.manifest.get("created"), "emotions": list(model.emotions), "window": model.manifest.get("window")},
        "data": {
            "path": str(data_dir),
            "layout": res.layout,
            "n_samples": len(res.samples),
            "n_with_face": len(samples),
            "n_windows": int(len(owner)),
            "labels": {str(k): int(v) for k, v in zip(*np.unique(labels_s, return_counts=True))},
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _heatmap(folder: Path, rel: LandmarkRelevance, baseline: str, data_name: str) -> Path:
    gap = rel.completeness.get("max_relative_delta", 0.0)
    subtitle = f"Integrated Gradients vs {baseline} baseline; {rel.n_samples} windows of {data_name}; {len(rel.landmarks)} landmarks; completeness gap <= {gap:.1e}"
    items = rel.items()
    regions = {t["region"]: (t["relevance"], t["signed"]) for t in items if "region" in t}
    blend = {t["blendshape"]: (t["relevance"], t["signed"]) for t in items if "blendshape" in t}
    return save_region_png(folder / f"{rel.emotion}.png", rel.landmarks, regions, blend, f"{rel.emotion}: region and blendshape relevance", subtitle)
