"""Valence and arousal of a face, derived from its emotion probabilities.

Each emotion the models score has a fixed point on the valence/arousal plane (the circumplex of
affect), taken from published ratings of the emotion **word**: Warriner, Kuperman & Brysbaert
(2013), *Norms of valence, arousal, and dominance for 13,915 English lemmas*, Behavior Research
Methods 45(4), 1191-1207, doi:10.3758/s13428-012-0314-x. Their ratings are means on 1-9 scales
(``V.Mean.Sum``, ``A.Mean.Sum``); each label word's means are rescaled to [-1, 1] by
``(m - 5) / 4`` (5 is the middle of the scale). A face's valence and arousal are the average of
the emotions' points weighted by the face's probabilities (the smoothed ones, what ``top`` is
decided on). They are **derived** numbers: a summary of the emotion probabilities on two axes,
not a separate measurement of the face (docs/describe.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Circumplex:
    """One emotion word's published ratings and its point on the plane."""

    word: str
    valence_mean: float
    """Warriner et al. (2013) ``V.Mean.Sum`` (1 = unhappy, 9 = happy)."""
    arousal_mean: float
    """Warriner et al. (2013) ``A.Mean.Sum`` (1 = calm, 9 = excited)."""

    @property
    def valence(self) -> float:
        """Valence in [-1, 1]."""
        return (self.valence_mean - 5.0) / 4.0

    @property
    def arousal(self) -> float:
        """Arousal in [-1, 1]."""
        return (self.arousal_mean - 5.0) / 4.0


#: Emotion label -> the norms of that word (the label itself), Warriner et al. (2013).
CIRCUMPLEX: dict[str, Circumplex] = {
    "anger": Circumplex("anger", 2.50, 5.93),
    "contempt": Circumplex("contempt", 3.22, 4.61),
    "disgust": Circumplex("disgust", 3.32, 5.00),
    "fear": Circumplex("fear", 2.93, 6.14),
    "happy": Circumplex("happy", 8.47, 6.05),
    "neutral": Circumplex("neutral", 5.50, 3.45),
    "sad": Circumplex("sad", 2.10, 3.49),
    "surprise": Circumplex("surprise", 7.44, 6.57),
}

_POINTS: tuple[tuple[str, float, float], ...] = tuple((e, c.valence, c.arousal) for e, c in CIRCUMPLEX.items())


def valence_arousal(probabilities: Mapping[str, float]) -> tuple[float, float]:
    """The probability-weighted mean of the emotions' circumplex points.

    Args:
        probabilities: emotion -> probability in [0, 1] (one face; they need not sum to 1).
            Emotions without a point in :data:`CIRCUMPLEX` are ignored.

    Returns:
        ``(valence, arousal)``, each in [-1, 1]; ``(0.0, 0.0)`` (the centre of the plane) when
        every known emotion has probability 0.
    """
    total = valence = arousal = 0.0
    for emotion, v, a in _POINTS:
        p = probabilities.get(emotion)
        if p is None or not p > 0.0:  # also skips NaN
            continue
        total += p
        valence += p * v
        arousal += p * a
    if total <= 0.0:
        return 0.0, 0.0
    return valence / total, arousal / total
