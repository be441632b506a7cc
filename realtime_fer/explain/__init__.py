"""Stage 5 of the pipeline: Integrated Gradients attributions of the emotion networks."""

from realtime_fer.explain.gradients import input_gradient, logit
from realtime_fer.explain.integrated_gradients import Attribution, IntegratedGradients

__all__ = ["Attribution", "IntegratedGradients", "input_gradient", "logit"]
