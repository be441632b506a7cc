"""Stage 5 of the pipeline: Integrated Gradients attributions of the emotion networks.

- :mod:`~realtime_fer.explain.gradients`, :mod:`~realtime_fer.explain.integrated_gradients`: the engine
- :mod:`~realtime_fer.explain.baselines`: neutral / other emotions' typical faces / zero
- :mod:`~realtime_fer.explain.relevance`: dataset-level relevance per landmark
- :mod:`~realtime_fer.explain.regions`: readable region names of the 468 mesh landmarks
- :mod:`~realtime_fer.explain.heatmap`, :mod:`~realtime_fer.explain.dataset`: ``realtime-fer explain``
"""

from realtime_fer.explain.baselines import BASELINE_KINDS, BaselineBank, BaselineSet
from realtime_fer.explain.gradients import input_gradient, logit, pooled_gradient
from realtime_fer.explain.integrated_gradients import Attribution, IntegratedGradients
from realtime_fer.explain.regions import face_regions, region_name
from realtime_fer.explain.relevance import LandmarkRelevance, attribute_against, landmark_relevance

__all__ = [
    "BASELINE_KINDS",
    "Attribution",
    "BaselineBank",
    "BaselineSet",
    "IntegratedGradients",
    "LandmarkRelevance",
    "attribute_against",
    "face_regions",
    "input_gradient",
    "landmark_relevance",
    "logit",
    "pooled_gradient",
    "region_name",
]
