"""Are the explanations plausible? Do they name the face regions (and blendshapes) where the
Facial Action Coding System places each emotion, and do they hold still while an expression
does?

The FACS table (the action units of each prototypical expression, after Ekman and Friesen,
as listed in issue 22) mapped onto this project's 48 region names and MediaPipe's blendshapes:

========  ===================  ===============================================================
emotion   action units         regions (both sides) / blendshapes
========  ===================  ===============================================================
happy     AU6, AU12            cheeks, mouth corners, nasolabial folds / cheekSquint, mouthSmile
surprise  AU1, AU2, AU5, AU26  inner/mid/outer brows, upper eyelids, jaw, chin / browInnerUp,
                               browOuterUp, eyeWide, jawOpen
sad       AU1, AU4, AU15       inner brows, between the brows, mouth corners, below the mouth
                               corners / browInnerUp, browDown, mouthFrown
anger     AU4, AU5, AU7, AU23  brows, between the brows, upper and lower eyelids, lips /
                               browDown, eyeWide, eyeSquint, mouthPress
disgust   AU9, AU10            nose (bridge, sides, tip, base, nostrils), upper lip, above the
                               upper lip, nasolabial folds / noseSneer, mouthUpperUp
fear      AU1, AU2, AU4, AU5,  brows, between the brows, upper eyelids, mouth corners /
          AU20                 browInnerUp, browOuterUp, browDown, eyeWide, mouthStretch
contempt  AU14                 mouth corners / mouthDimple
========  ===================  ===============================================================

(AU26, the jaw drop, moves the chin most; AU15 pulls the mouth corners down onto the skin below
them; AU10 deepens the nasolabial folds.)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

_BOTH = ("left", "right")


def _sides(*names: str) -> set[str]:
    return {f"{s} {n}" for s in _BOTH for n in names}


def _bs(*stems: str) -> set[str]:
    out = set()
    for stem in stems:
        out |= {stem} if stem in ("browInnerUp", "jawOpen") else {f"{stem}Left", f"{stem}Right"}
    return out


_BROWS = _sides("inner brow", "mid brow", "outer brow") | {"between the brows"}
_LIPS = {"upper lip", "lower lip"} | _sides("upper lip", "lower lip")
_NOSE = {"nose bridge", "nose tip", "nose base"} | _sides("side of nose", "nostril")

#: emotion -> the regions FACS places it in (region names of ``assets/face_regions.json``)
FACS_REGIONS: dict[str, frozenset[str]] = {
    "happy": frozenset(_sides("cheek", "mouth corner", "nasolabial fold")),
    "surprise": frozenset(_BROWS - {"between the brows"} | _sides("upper eyelid", "jaw") | {"chin"}),
    "sad": frozenset(_sides("inner brow", "mouth corner") | {"between the brows", "below the left mouth corner", "below the right mouth corner"}),
    "anger": frozenset(_BROWS | _sides("upper eyelid", "lower eyelid") | _LIPS),
    "disgust": frozenset(_NOSE | {"upper lip", "above the upper lip"} | _sides("upper lip", "nasolabial fold")),
    "fear": frozenset(_BROWS | _sides("upper eyelid", "mouth corner")),
    "contempt": frozenset(_sides("mouth corner")),
}

#: emotion -> the blendshapes that measure its action units
FACS_BLENDSHAPES: dict[str, frozenset[str]] = {
    "happy": frozenset(_bs("cheekSquint", "mouthSmile")),
    "surprise": frozenset(_bs("browInnerUp", "browOuterUp", "eyeWide", "jawOpen")),
    "sad": frozenset(_bs("browInnerUp", "browDown", "mouthFrown")),
    "anger": frozenset(_bs("browDown", "eyeWide", "eyeSquint", "mouthPress")),
    "disgust": frozenset(_bs("noseSneer", "mouthUpperUp")),
    "fear": frozenset(_bs("browInnerUp", "browOuterUp", "browDown", "eyeWide", "mouthStretch")),
    "contempt": frozenset(_bs("mouthDimple")),
}


def facs_items(emotion: str) -> frozenset[str]:
    """The region and blendshape names FACS places ``emotion`` in (empty for neutral or an
    unknown label)."""
    return FACS_REGIONS.get(emotion, frozenset()) | FACS_BLENDSHAPES.get(emotion, frozenset())


def plausibility(emotion: str, top_names: Sequence[Sequence[str]], items: Sequence[str], k: int = 3) -> dict[str, Any]:
    """How often the ``k`` largest items of each explanation (region or blendshape names, most
    relevant first) name ``emotion``'s FACS regions or blendshapes.

    Args:
        items: every item the model could name (its regions and blendshapes), for the chance
            level.

    Returns ``any`` (share of explanations whose top k hold at least one), ``share`` (mean
    share of the top k that do), ``regions_any`` (the same as ``any`` counting regions only),
    ``chance_any`` / ``chance_share`` (the same for k items drawn at random from ``items``)
    and ``n``; ``None`` values where FACS has no table for the emotion."""
    wanted = facs_items(emotion)
    if not wanted or not top_names:
        return {"n": len(top_names), "any": None, "share": None, "regions_any": None, "chance_any": None, "chance_share": None}
    regions = FACS_REGIONS[emotion]
    tops = [list(t)[:k] for t in top_names]
    n_items, hits = len(items), sum(1 for i in items if i in wanted)
    miss = 1.0
    for j in range(min(k, n_items)):  # P(no FACS item among k drawn without replacement)
        miss *= max(n_items - hits - j, 0) / (n_items - j)
    return {
        "n": len(tops),
        "any": float(np.mean([any(n in wanted for n in t) for t in tops])),
        "share": float(np.mean([sum(n in wanted for n in t) / max(len(t), 1) for t in tops])),
        "regions_any": float(np.mean([any(n in regions for n in t) for t in tops])),
        "chance_any": float(1.0 - miss),
        "chance_share": float(hits / max(n_items, 1)),
    }


def stability(runs: Sequence[Sequence[Sequence[str]]], k: int = 3) -> dict[str, Any]:
    """How still the top ``k`` holds over consecutive windows: ``runs`` are sequences of
    consecutive explanations (one held expression each, e.g. one clip), each a ranked list of
    item names. Returns the mean Jaccard overlap of consecutive top-k sets (1: unchanged),
    the share of steps whose top-1 is unchanged, and the number of steps."""
    jac, same_first = [], []
    for run in runs:
        for a, b in zip(run[:-1], run[1:]):
            sa, sb = set(list(a)[:k]), set(list(b)[:k])
            jac.append(len(sa & sb) / max(len(sa | sb), 1))
            same_first.append(bool(a) and bool(b) and a[0] == b[0])
    if not jac:
        return {"steps": 0, "jaccard": None, "same_top1": None}
    return {"steps": len(jac), "jaccard": float(np.mean(jac)), "same_top1": float(np.mean(same_first))}
