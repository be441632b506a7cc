"""Approximate FACS action units from MediaPipe's 52 blendshapes.

MediaPipe's Face Landmarker scores the 52 ARKit-style blendshapes (``browInnerUp``,
``mouthSmileLeft``, ...) in [0, 1]. Many of them describe the visible movement of one Facial
Action Coding System action unit (Ekman & Friesen), so an AU's intensity is approximated by its
blendshape's score; an AU that has a left and a right blendshape takes the larger of the two (FACS
codes an action that shows on one side of the face as present, with an L or R prefix). These
are **approximations**: the blendshape model was not trained on FACS-coded faces, and its scores
are not FACS A-E intensities. :data:`ACTION_UNITS` is the table (docs/describe.md prints it);
:data:`NO_COUNTERPART` lists the main-code AUs (1-28) that no blendshape describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES


@dataclass(frozen=True)
class ActionUnit:
    """One action unit and the blendshape(s) it is read from."""

    code: int
    """FACS number (``12`` for AU12)."""
    name: str
    """FACS name (``"lip corner puller"``)."""
    blendshapes: tuple[str, ...]
    """One blendshape, or a left/right pair whose maximum is taken."""

    @property
    def key(self) -> str:
        """The published key, ``"AU12"``."""
        return f"AU{self.code}"


#: The mapping, in FACS order (docs/describe.md). Left/right pairs take the larger score.
ACTION_UNITS: tuple[ActionUnit, ...] = (
    ActionUnit(1, "inner brow raiser", ("browInnerUp",)),
    ActionUnit(2, "outer brow raiser", ("browOuterUpLeft", "browOuterUpRight")),
    ActionUnit(4, "brow lowerer", ("browDownLeft", "browDownRight")),
    ActionUnit(5, "upper lid raiser", ("eyeWideLeft", "eyeWideRight")),
    ActionUnit(6, "cheek raiser", ("cheekSquintLeft", "cheekSquintRight")),
    ActionUnit(7, "lid tightener", ("eyeSquintLeft", "eyeSquintRight")),
    ActionUnit(9, "nose wrinkler", ("noseSneerLeft", "noseSneerRight")),
    ActionUnit(10, "upper lip raiser", ("mouthUpperUpLeft", "mouthUpperUpRight")),
    ActionUnit(12, "lip corner puller", ("mouthSmileLeft", "mouthSmileRight")),
    ActionUnit(14, "dimpler", ("mouthDimpleLeft", "mouthDimpleRight")),
    ActionUnit(15, "lip corner depressor", ("mouthFrownLeft", "mouthFrownRight")),
    ActionUnit(16, "lower lip depressor", ("mouthLowerDownLeft", "mouthLowerDownRight")),
    ActionUnit(17, "chin raiser", ("mouthShrugLower",)),
    ActionUnit(18, "lip pucker", ("mouthPucker",)),
    ActionUnit(20, "lip stretcher", ("mouthStretchLeft", "mouthStretchRight")),
    ActionUnit(22, "lip funneler", ("mouthFunnel",)),
    ActionUnit(24, "lip pressor", ("mouthPressLeft", "mouthPressRight")),
    ActionUnit(26, "jaw drop", ("jawOpen",)),
    ActionUnit(28, "lip suck", ("mouthRollLower", "mouthRollUpper")),
    ActionUnit(29, "jaw thrust", ("jawForward",)),
    ActionUnit(30, "jaw sideways", ("jawLeft", "jawRight")),
    ActionUnit(34, "cheek puff", ("cheekPuff",)),
    ActionUnit(43, "eyes closed", ("eyeBlinkLeft", "eyeBlinkRight")),
)

#: Main-code AUs (1-28) with no blendshape counterpart, and why (docs/describe.md).
NO_COUNTERPART: dict[int, str] = {
    8: "lips toward each other: no blendshape (mouthClose is lip closure against an open jaw, not AU8's tension)",
    11: "nasolabial deepener: no blendshape",
    13: "sharp lip puller: no blendshape (mouthSmile is AU12)",
    19: "tongue show: the landmarker does not see the tongue",
    21: "neck tightener: outside the face mesh",
    23: "lip tightener: no blendshape separates it from AU24 (mouthPress)",
    25: "lips part: no blendshape (jawOpen and mouthLowerDown are AU26 and AU16)",
    27: "mouth stretch: not separated from AU26 (jawOpen)",
}

_INDEX = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
#: (key, first, second) blendshape indices of each AU; an AU read from one blendshape repeats
#: it, so the larger of the pair is that score.
_PAIRS: tuple[tuple[str, int, int], ...] = tuple((au.key, _INDEX[au.blendshapes[0]], _INDEX[au.blendshapes[-1]]) for au in ACTION_UNITS)


def action_units(blendshapes: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Approximate AU intensities of one face, in [0, 1] as the blendshape scores are.

    Args:
        blendshapes: the face's 52 blendshape scores in MediaPipe's order
            (:data:`~realtime_fer.landmarks.detector.BLENDSHAPE_NAMES`).

    Returns:
        ``{"AU1": ..., "AU2": ..., ...}`` for every AU of :data:`ACTION_UNITS`, in FACS order.

    Raises:
        ValueError: not 52 scores.
    """
    scores = blendshapes.tolist() if isinstance(blendshapes, np.ndarray) else list(blendshapes)
    if len(scores) != len(BLENDSHAPE_NAMES) or (isinstance(blendshapes, np.ndarray) and blendshapes.ndim != 1):
        raise ValueError(f"expected {len(BLENDSHAPE_NAMES)} blendshape scores, got {np.shape(blendshapes)}")
    # plain Python on a list: about 3 us a face, half the cost of the numpy gather
    return {key: float(max(scores[i], scores[j])) for key, i, j in _PAIRS}
