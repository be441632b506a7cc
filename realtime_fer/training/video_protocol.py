"""The video protocol: how a recognizer does on labelled clips, as its users see it.

Each clip of a labelled folder (one emotion per clip, e.g. MEAD, CREMA-D, RAVDESS or
``<label>.mp4``) is run window by window and every window gets the ``top`` the live stream
would publish (smoothed over time as the stream does, see :mod:`realtime_fer.models.smoothing`).
Reported (the ``video`` section of ``realtime-fer evaluate``)::

    {"clips": {"<path>": {"label", "vote", "correct", "windows", "share": {label: fraction}}},
     "window_recall": {label: fraction of its windows published as that label},
     "mean_window_recall": mean over the labels present,
     "clip_accuracy", "clips_right", "n_clips",
     "no_windows": [paths of clips without a single window of one face (partial windows count)],
     "confusion": {"true": [labels present], "predicted": [labels], "windows": [[count]], "clips": [[count]]},
     "smoothing": {...}}

``vote`` is the majority label of the clip's published tops (ties: the label listed first in
:data:`~realtime_fer.labels.EMOTIONS`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Sequence

import numpy as np

from realtime_fer.data.layouts import SampleRef
from realtime_fer.labels import EMOTIONS
from realtime_fer.models.bundle import FALLBACK
from realtime_fer.models.smoothing import SmoothingOptions


def _vote(tops: np.ndarray) -> str:
    counts = Counter(str(t) for t in tops)
    best = max(counts.values())
    return next(e for e in list(EMOTIONS) + sorted(counts) if counts.get(e) == best)


def video_protocol(
    refs: Sequence[SampleRef],
    clip_rows: dict[int, np.ndarray],
    published: np.ndarray,
    emotions: Sequence[str],
    smoothing: SmoothingOptions,
) -> dict[str, Any] | None:
    """The protocol's figures from each clip's published tops.

    Args:
        refs: the evaluated samples' references; only videos and sequences (keys of
            ``clip_rows``) count.
        clip_rows: sample index -> the rows of ``published`` that are its windows, in time order.
        published: (N,) the published ``top`` of every window.
        emotions: the emotions the model scores (the predicted labels, with the fallback).
        smoothing: the smoothing that was applied (reported).

    Returns:
        The ``video`` section, or ``None`` when there is no clip.
    """
    if not clip_rows:
        return None
    predicted = list(dict.fromkeys([*emotions, FALLBACK]))
    clips: dict[str, dict[str, Any]] = {}
    no_windows = []
    for i, rows in clip_rows.items():
        ref = refs[i]
        label = ref.label
        if len(rows) == 0:
            no_windows.append(str(ref.path))
            clips[str(ref.path)] = {"label": label, "vote": None, "correct": False, "windows": 0, "share": {}}
            continue
        tops = published[rows]
        counts = Counter(str(t) for t in tops)
        vote = _vote(tops)
        clips[str(ref.path)] = {
            "label": label,
            "vote": vote,
            "correct": vote == label,
            "windows": int(len(rows)),
            "share": {k: counts[k] / len(rows) for k in sorted(counts, key=lambda k: -counts[k])},
        }
    true_labels = [e for e in EMOTIONS if any(c["label"] == e for c in clips.values())]
    col = {e: j for j, e in enumerate(predicted)}
    win_cm = np.zeros((len(true_labels), len(predicted)), np.int64)
    clip_cm = np.zeros_like(win_cm)
    for i, rows in clip_rows.items():
        r = true_labels.index(refs[i].label)
        for t in published[rows]:
            win_cm[r, col[str(t)]] += 1
        vote = clips[str(refs[i].path)]["vote"]
        if vote is not None:
            clip_cm[r, col[vote]] += 1
    return summarise(clips, {"true": true_labels, "predicted": predicted, "windows": win_cm.tolist(), "clips": clip_cm.tolist()}, no_windows, dataclasses.asdict(smoothing))


def summarise(clips: dict[str, dict[str, Any]], confusion: dict[str, Any], no_windows: list[str], smoothing: dict[str, Any]) -> dict[str, Any]:
    """The ``video`` section from its clips and confusion matrices: window recall per true label
    (the confusion diagonal over the row), their mean, clip accuracy and counts. Also used to
    merge the folds of leave-one-actor-out (their clips joined, their matrices summed)."""
    win = np.asarray(confusion["windows"], np.int64)
    predicted = confusion["predicted"]
    recall = {e: float(win[i, predicted.index(e)] / win[i].sum()) for i, e in enumerate(confusion["true"]) if win[i].sum()}
    right = sum(bool(c["correct"]) for c in clips.values())
    return {
        "clips": clips,
        "window_recall": recall,
        "mean_window_recall": float(np.mean(list(recall.values()))) if recall else None,
        "clip_accuracy": right / len(clips) if clips else None,
        "clips_right": int(right),
        "n_clips": len(clips),
        "n_clips_scored": sum(1 for c in clips.values() if c["windows"]),
        "no_windows": no_windows,
        "confusion": confusion,
        "smoothing": smoothing,
    }


def confusion_png(path: str, confusion: dict[str, Any], title: str = "", kind: str = "windows") -> None:
    """Draw a confusion matrix (rows: true labels, columns: published labels; cells coloured
    by the row's share, with the count and share written in) as a PNG."""
    import cv2

    rows, cols = confusion["true"], confusion["predicted"]
    m = np.asarray(confusion[kind], np.float64)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    cell, left, top = 74, 110, 96
    h, w = top + cell * len(rows) + 20, left + cell * len(cols) + 20
    img = np.full((h, w, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title or f"confusion ({kind}): rows true, columns published", (10, 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for j, c in enumerate(cols):
        cv2.putText(img, c[:8], (left + j * cell + 6, top - 12), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "published ->", (left, top - 40), font, 0.42, (80, 80, 80), 1, cv2.LINE_AA)
    for i, r in enumerate(rows):
        y = top + i * cell
        cv2.putText(img, r[:9], (8, y + cell // 2 + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j in range(len(cols)):
            x = left + j * cell
            v = share[i, j]
            if cols[j] == r:  # right: green, wrong: blue (BGR)
                colour = (int(255 - 200 * v), int(255 - 40 * v), int(255 - 200 * v))
            else:
                colour = (int(255 - 30 * v), int(255 - 120 * v), int(255 - 200 * v))
            cv2.rectangle(img, (x, y), (x + cell - 2, y + cell - 2), colour, -1)
            ink = (255, 255, 255) if v > 0.6 else (0, 0, 0)
            cv2.putText(img, f"{int(m[i, j])}", (x + 8, y + 30), font, 0.5, ink, 1, cv2.LINE_AA)
            cv2.putText(img, f"{v:.0%}", (x + 8, y + 54), font, 0.45, ink, 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")


def confusion_rows(confusion: dict[str, Any], kind: str = "windows") -> list[list[str]]:
    """The confusion matrix as text rows (true label, then the row's shares), for a table."""
    m = np.asarray(confusion[kind], np.float64)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    return [[r] + [f"{v:.2f}" if v else "." for v in share[i]] for i, r in enumerate(confusion["true"])]
