"""Names of the inputs and outputs of realtime_fer's ONNX graphs.

A module of its own, without the ``onnx`` package, so that the run-time path (bundle loading,
scoring) can name a model's inputs without importing ``onnx`` (see
:mod:`realtime_fer.models.bundle_cache`).
"""

from __future__ import annotations

#: ONNX opset of the exported and fused graphs.
OPSET = 17
#: Per-emotion model input: the window, [batch, T, L, 3].
INPUT_NAME = "window"
#: Second input of models that read MediaPipe's blendshapes: [batch, T, B].
BLENDSHAPES_NAME = "blendshapes"
OUTPUT_PROBABILITY = "probability"
OUTPUT_SCORE = "score"
#: Output of the union graph (:func:`realtime_fer.models.fused.fuse_networks`): [batch, emotions].
UNION_OUTPUT = "probabilities"


def input_name(emotion: str) -> str:
    """The fused graph's input for ``emotion``'s window."""
    return f"{emotion}/{INPUT_NAME}"


def blendshapes_input_name(emotion: str) -> str:
    """The fused graph's input for ``emotion``'s blendshapes (models that read them)."""
    return f"{emotion}/{BLENDSHAPES_NAME}"


def output_name(emotion: str) -> str:
    """The fused graph's calibrated probability of ``emotion``."""
    return f"{emotion}/{OUTPUT_PROBABILITY}"
