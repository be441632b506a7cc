"""Checks shared by the tests of projections and maps folded into a network's first layer
(test_speech_subspace.py, test_rest_normalisation.py). Not a test module."""

from __future__ import annotations

import numpy as np

from realtime_fer.models.half import is_half
from realtime_fer.models.network import Network
from realtime_fer.models.onnx_export import INPUT_NAME, OUTPUT_PROBABILITY, build_onnx


def assert_folded_network_exports(folded: Network, windows: np.ndarray, blendshapes: np.ndarray, half: bool) -> None:
    """With ``half``, the folded first layer holds float16-representable values (stored in half
    precision like the random weights); the exported ONNX graph gives the folded network's
    probabilities on the raw windows (nothing else in the graph changes)."""
    import onnxruntime as ort

    if half:
        w1 = folded.layers[0][0]
        assert is_half(w1)
    sess = ort.InferenceSession(build_onnx(folded).SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: (windows if i.name == INPUT_NAME else blendshapes) for i in sess.get_inputs()}
    (prob,) = sess.run([OUTPUT_PROBABILITY], feeds)
    np.testing.assert_allclose(prob, folded.probability(windows, blendshapes), atol=1e-4)
