"""Scoring gathered windows with every emotion model of a bundle, batched across faces."""

from __future__ import annotations

import logging
import numpy as np

from realtime_fer.errors import BundleError
from realtime_fer.features.selector import FeatureSelector
from realtime_fer.models.scorer import BundleScorer

log = logging.getLogger(__name__)


class WindowScorer:
    """Runs the onnxruntime session of a :class:`~realtime_fer.models.scorer.BundleScorer`
    directly on the faces' windows over the landmark union that a :class:`FeatureSelector`
    gathers (:meth:`FeatureSelector.gather_union`).

    ``BundleScorer.predict`` takes full-mesh windows and slices the union itself; the live
    pipeline keeps only the landmark union in its ring buffers, so here the models get that
    window as it is: one ``session.run`` (all emotions in one fused graph) per scoring step,
    whatever the number of faces.
    """

    def __init__(self, scorer: BundleScorer, selector: FeatureSelector) -> None:
        self.scorer = scorer
        self.emotions: tuple[str, ...] = scorer.emotions
        if set(self.emotions) != set(selector.emotions):
            raise BundleError(f"selector emotions {selector.emotions} differ from the bundle's {self.emotions}")
        for name in self.emotions:
            want = np.asarray(scorer.indices[name])
            have = selector.landmarks_of(name)
            if want.shape != have.shape or not np.array_equal(want, have):
                raise BundleError(f"emotion {name!r}: the selector gathers other landmarks than the model reads")
        if not np.array_equal(selector.union, scorer.union):
            raise BundleError("the selector keeps another landmark union than the models read")
        self.provider: str = scorer.provider

    def predict_union(self, windows: np.ndarray, blendshapes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Emotion -> (N,) probabilities for the faces' union windows (N, T, L_union, 3)
        (:meth:`FeatureSelector.gather_union`) and blendshape windows (N, T, B)."""
        return {e: p.astype(np.float64) for e, p in self.scorer.predict_union(windows, blendshapes).items()}
