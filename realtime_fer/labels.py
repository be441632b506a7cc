"""The canonical emotion labels and the synonyms that datasets use for them."""

from __future__ import annotations

from realtime_fer.errors import DataError

#: Canonical labels, in a fixed order used everywhere (manifests, messages, metrics).
EMOTIONS: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happy",
    "neutral",
    "sad",
    "surprise",
)

_SYNONYMS: dict[str, str] = {
    "angry": "anger",
    "anger": "anger",
    "ang": "anger",
    "mad": "anger",
    "contempt": "contempt",
    "contemptuous": "contempt",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "fea": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "hap": "happy",
    "neutral": "neutral",
    "neu": "neutral",
    "calm": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "sa": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "sur": "surprise",
    "su": "surprise",
}


def canonical_label(name: str) -> str:
    """Map a dataset's label (any case, synonyms such as ``angry``/``joy``/``surprised``) to a
    canonical label.

    Raises:
        DataError: the label is unknown.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    try:
        return _SYNONYMS[key]
    except KeyError:
        raise DataError(
            f"unknown emotion label {name!r}; known labels: {', '.join(EMOTIONS)} "
            f"(synonyms such as 'angry', 'surprised', 'happiness' are accepted)"
        ) from None


def is_known_label(name: str) -> bool:
    """True when :func:`canonical_label` accepts ``name``."""
    try:
        canonical_label(name)
    except DataError:
        return False
    return True
