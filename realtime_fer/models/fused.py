"""One ONNX graph for all emotion models of a bundle, so a scoring step is one ``session.run``.

A bundle stores one ONNX file per emotion (each can be evaluated, pruned and replaced on its
own). At run time the per-call cost of eight sessions (argument conversion, thread hand-offs,
output allocation) is larger than the arithmetic of these small networks, so the scorer joins
them side by side into one graph: every emotion keeps its own input ``<emotion>/window`` (and
``<emotion>/blendshapes`` for models that read them) and output ``<emotion>/probability`` (names prefixed with ``<emotion>/``), and nothing else changes.
The join is done in memory when the bundle is loaded; the files on disk stay as they are.
"""

from __future__ import annotations

from typing import Mapping

import onnx
from onnx import compose, helper

from realtime_fer.models.io_names import INPUT_NAME, OPSET, OUTPUT_PROBABILITY, blendshapes_input_name, input_name, output_name

__all__ = ["fuse_models", "input_shape", "input_name", "blendshapes_input_name", "output_name"]


def input_shape(model: onnx.ModelProto) -> list[int | str]:
    """The first graph input's shape: ints for fixed dimensions, names for symbolic ones."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def fuse_models(models: Mapping[str, onnx.ModelProto]) -> onnx.ModelProto:
    """Join per-emotion models (each ``window`` -> ``probability``, ``score``) into one graph.

    Args:
        models: emotion -> its model, in the order the fused outputs should have.

    Returns:
        A checked model with inputs ``<emotion>/window`` and outputs ``<emotion>/probability``.
    """
    if not models:
        raise ValueError("no models to fuse")
    nodes, inits, inputs, outputs = [], [], [], []
    for emotion, model in models.items():
        if "/" in emotion:
            raise ValueError(f"emotion names cannot contain '/': {emotion!r}")
        graph = compose.add_prefix(model, prefix=f"{emotion}/").graph  # returns a prefixed copy
        nodes.extend(graph.node)
        inits.extend(graph.initializer)
        own = [v for v in graph.input if v.name == input_name(emotion)]
        outs = [v for v in graph.output if v.name == output_name(emotion)]
        if len(own) != 1 or len(outs) != 1:
            raise ValueError(f"the {emotion!r} model has no {INPUT_NAME!r} input or {OUTPUT_PROBABILITY!r} output")
        inputs.extend(own + [v for v in graph.input if v.name == blendshapes_input_name(emotion)])
        outputs.extend(outs)
    fused = helper.make_model(
        helper.make_graph(nodes, "realtime_fer_emotions", inputs, outputs, inits),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="realtime_fer",
    )
    fused.ir_version = min(m.ir_version for m in models.values())
    onnx.checker.check_model(fused)
    return fused
