"""One ONNX graph for all emotion models of a bundle, so a scoring step is one ``session.run``.

Two ways to build it:

- :func:`fuse_networks` (used for every bundle of realtime_fer networks) builds the graph from
  the models' numpy :class:`~realtime_fer.models.network.Network` objects over the bundle's
  *landmark union*: it takes one window ``window`` [N, T, U, 3] of the union's landmarks (and
  ``blendshapes`` [N, T, B]), pools it once, gathers each model's pooled columns and runs each
  model's layers on them, returning ``probabilities`` [N, E] (one column per emotion, in bundle
  order). Pooling is per landmark coordinate, so the shared pooling gives each model the very
  numbers its own graph computes; it saves the per-model pooling nodes, which cost about as much
  as the models' matrix products (docs/benchmarks.md).
- :func:`fuse_models` joins arbitrary per-emotion ONNX graphs side by side (the fallback for
  models that are not realtime_fer networks):

A bundle stores one ONNX file per emotion (each can be evaluated, pruned and replaced on its
own). At run time the per-call cost of eight sessions (argument conversion, thread hand-offs,
output allocation) is larger than the arithmetic of these small networks, so the scorer joins
them side by side into one graph: every emotion keeps its own input ``<emotion>/window`` (and
``<emotion>/blendshapes`` for models that read them) and output ``<emotion>/probability`` (names prefixed with ``<emotion>/``), and nothing else changes.
The join is done in memory when the bundle is loaded; the files on disk stay as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
import onnx
from onnx import TensorProto, compose, helper

from realtime_fer.models.io_names import BLENDSHAPES_NAME, INPUT_NAME, OPSET, OUTPUT_PROBABILITY, UNION_OUTPUT, blendshapes_input_name, input_name, output_name

if TYPE_CHECKING:  # pragma: no cover
    from realtime_fer.models.network import Network

__all__ = ["fuse_models", "fuse_networks", "union_columns", "input_shape", "input_name", "blendshapes_input_name", "output_name"]


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


def union_columns(net: "Network", positions: np.ndarray, n_union: int) -> np.ndarray:
    """Where ``net``'s pooled input columns lie in the pooled union input.

    The pooled union input is, per pooling part in ``net.pooling`` order, the part of every
    union landmark (x, y, z each), then per part the blendshapes; a model whose landmarks sit at
    ``positions`` of the union reads its own parts in the same order (see
    :func:`realtime_fer.models.network.pool`).
    """
    coords = (np.asarray(positions, np.int64)[:, None] * 3 + np.arange(3)).reshape(-1)
    n_parts = len(net.pooling)
    cols = [k * 3 * n_union + coords for k in range(n_parts)]
    if net.n_blendshapes:
        cols += [n_parts * 3 * n_union + k * net.n_blendshapes + np.arange(net.n_blendshapes) for k in range(n_parts)]
    out = np.concatenate(cols)
    if len(out) != net.input_dim:  # pragma: no cover - a programming error
        raise AssertionError(f"{len(out)} columns for an input of {net.input_dim}")
    return out


def fuse_networks(networks: Mapping[str, "Network"], subsets: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """One graph for all ``networks`` over the union of their landmarks (module docstring).

    Args:
        networks: emotion -> its network, in the order of the output's columns. All must share
            window length, pooling and blendshape count.
        subsets: emotion -> the mesh indices its network reads, in its input order.

    Returns:
        The checked model: inputs ``window`` [N, T, U, 3] (U: the sorted union of ``subsets``)
        and, for blendshape networks, ``blendshapes`` [N, T, B]; output ``probabilities`` [N, E].

    Raises:
        ValueError: no networks, or networks that differ in window length, pooling or
            blendshapes.
    """
    from realtime_fer.models.onnx_export import _Builder, calibrated_logit, network_body, pooled_input

    if not networks:
        raise ValueError("no networks to fuse")
    nets = list(networks.values())
    first = nets[0]
    for name, net in networks.items():
        if (net.window_length, tuple(net.pooling), net.n_blendshapes) != (first.window_length, tuple(first.pooling), first.n_blendshapes):
            raise ValueError(f"the {name!r} network differs from the others in window length, pooling or blendshapes")
        if len(subsets[name]) != net.n_landmarks:
            raise ValueError(f"the {name!r} network reads {net.n_landmarks} landmarks, its subset has {len(subsets[name])}")
    union = np.unique(np.concatenate([np.asarray(subsets[e], np.int64) for e in networks]))
    b = _Builder()
    blend = BLENDSHAPES_NAME if first.n_blendshapes else None
    pooled = pooled_input(b, first, INPUT_NAME, blend, len(union))
    logits = []
    for name, net in networks.items():
        if "/" in name:
            raise ValueError(f"emotion names cannot contain '/': {name!r}")
        cols = union_columns(net, np.searchsorted(union, np.asarray(subsets[name], np.int64)), len(union))
        x = b.op("Gather", [pooled, b.const(cols, f"{name}/columns")], f"{name}/x", axis=1)
        logits.append(calibrated_logit(b, net, network_body(b, net, x, prefix=f"{name}/", split_tail=True), prefix=f"{name}/"))
    joined = logits[0] if len(logits) == 1 else b.op("Concat", logits, "logits", axis=1)
    b.nodes.append(helper.make_node("Sigmoid", [joined], [UNION_OUTPUT], name="probabilities_op"))
    t = first.window_length
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", t, len(union), 3])]
    if blend:
        inputs.append(helper.make_tensor_value_info(BLENDSHAPES_NAME, TensorProto.FLOAT, ["batch", t, first.n_blendshapes]))
    graph = helper.make_graph(b.nodes, "realtime_fer_emotions_union", inputs, [helper.make_tensor_value_info(UNION_OUTPUT, TensorProto.FLOAT, ["batch", len(networks)])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="realtime_fer")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
