"""Read a :class:`~realtime_fer.models.network.Network` back from its ONNX file: the inverse of
:func:`realtime_fer.models.onnx_export.build_onnx`, so that a bundle's models can be explained
(gradients, Integrated Gradients) without retraining and without torch.

The graph is *traced* from its input: pooling nodes, the standardisation constants, each hidden
layer's weights and activation, which representations the head concatenates, the head weights
and the Platt parameters are read off the nodes and their initializers (float16 weights are
widened exactly as the graph's ``Cast`` does). This works for every graph ``build_onnx`` has
written, including those written before initializers got stable names. Graphs that record their
structure in ``metadata_props`` (format ``realtime_fer.network/1``) are checked against it, and
its float64 Platt parameters and head bias are used (the graph holds them in float32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from realtime_fer.errors import BundleError
from realtime_fer.models.network import Network
from realtime_fer.models.onnx_export import BLENDSHAPES_NAME, INPUT_NAME, METADATA_FORMAT, OUTPUT_PROBABILITY, OUTPUT_SCORE

_ACTIVATIONS = {"Tanh": "tanh", "Relu": "relu", "Sigmoid": "sigmoid"}


class _Trace:
    """What each tensor of the graph is, filled node by node."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.kind: dict[str, tuple[Any, ...]] = {INPUT_NAME: ("input", INPUT_NAME)}

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)


def _fail(path: Path, what: str) -> BundleError:
    return BundleError(f"{path}: not a realtime_fer emotion network ({what})")


def network_from_model(model: onnx.ModelProto, path: str | Path = "<model>") -> Network:
    """Rebuild the :class:`Network` of an ONNX model written by ``build_onnx``.

    Raises:
        BundleError: the graph is not one that ``build_onnx`` writes, or it disagrees with its
            recorded metadata.
    """
    p = Path(path)
    graph = model.graph
    if not graph.input or graph.input[0].name != INPUT_NAME:
        raise _fail(p, f"no input named {INPUT_NAME!r}")
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[1].HasField("dim_value") or not dims[2].HasField("dim_value"):
        raise _fail(p, "the input is not [batch, T, L, 3]")
    window_length, n_landmarks = int(dims[1].dim_value), int(dims[2].dim_value)
    tr = _Trace(graph)
    n_blendshapes = 0
    if len(graph.input) > 1:
        bdims = graph.input[1].type.tensor_type.shape.dim
        if graph.input[1].name != BLENDSHAPES_NAME or len(bdims) != 3 or not bdims[2].HasField("dim_value"):
            raise _fail(p, f"the second input is not {BLENDSHAPES_NAME}[batch, T, B]")
        n_blendshapes = int(bdims[2].dim_value)
        tr.kind[BLENDSHAPES_NAME] = ("input", BLENDSHAPES_NAME)
    pooling: tuple[str, ...] = ()
    mean = std = head_w = None
    head_b = platt_a = platt_b = None
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    activation = None
    head_inputs: tuple[int, ...] = ()
    pending_w: dict[str, tuple[int, np.ndarray]] = {}  # MatMul output -> (layer k, W)

    def src(kind: tuple | None) -> str | None:
        """The input a per-frame tensor comes from (``window`` or ``blendshapes``)."""
        return kind[1] if kind and kind[0] == "input" else None

    for node in graph.node:
        op, ins, out = node.op_type, list(node.input), node.output[0]
        kinds = [tr.kind.get(i) for i in ins]
        consts = [tr.const(i) for i in ins]
        k0 = kinds[0] if kinds else None
        if op == "Cast" and consts[0] is not None:  # float16 weights widened on load
            tr.consts[out] = consts[0].astype(np.float32)
        elif op == "ReduceMean" and src(k0):
            keep = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
            tr.kind[out] = ("input_mean", src(k0)) if keep else ("pool", "mean", src(k0))
        elif op in ("ReduceMin", "ReduceMax") and src(k0):
            tr.kind[out] = ("pool", "min" if op == "ReduceMin" else "max", src(k0))
        elif op == "Sub" and src(k0) and kinds[1] == ("input_mean", src(k0)):
            tr.kind[out] = ("centred_t", src(k0))
        elif op == "Mul" and k0 and k0[0] == "centred_t" and ins[0] == ins[1]:
            tr.kind[out] = ("squared_t", k0[1])
        elif op == "ReduceMean" and k0 and k0[0] == "squared_t":
            tr.kind[out] = ("var_t", k0[1])
        elif op == "Add" and k0 and k0[0] == "var_t" and consts[1] is not None:
            tr.kind[out] = ("var_eps", k0[1])
        elif op == "Sqrt" and k0 and k0[0] == "var_eps":
            tr.kind[out] = ("pool", "std", k0[1])
        elif op == "Gather" and src(k0) and consts[1] is not None:
            tr.kind[out] = ("frame", int(consts[1]), src(k0))
        elif op == "Sub" and k0 and kinds[1] and k0[0] == "frame" and kinds[1][0] == "frame" and k0[2] == kinds[1][2]:
            tr.kind[out] = ("pool", "delta", k0[2])
        elif op == "Reshape" and k0 and k0[0] == "pool":
            tr.kind[out] = ("flat", k0[1], k0[2])
        elif op == "Concat" and kinds and all(k and k[0] == "flat" for k in kinds):
            pooling = _pooling_of([(k[1], k[2]) for k in kinds], n_blendshapes, p)
            tr.kind[out] = ("pooled",)
        elif op == "Sub" and kinds[0] and kinds[0][0] in ("pooled", "flat") and consts[1] is not None:
            if kinds[0][0] == "flat":
                pooling = _pooling_of([(kinds[0][1], kinds[0][2])], n_blendshapes, p)
            mean = consts[1].astype(np.float32).reshape(-1)
            tr.kind[out] = ("centred",)
        elif op == "Div" and kinds[0] == ("centred",) and consts[1] is not None:
            std = consts[1].astype(np.float32).reshape(-1)
            tr.kind[out] = ("rep", 0)
        elif op == "MatMul" and kinds[0] and kinds[0][0] in ("rep", "head_in") and consts[1] is not None:
            if kinds[0][0] == "rep" and _feeds_activation(graph, out):
                if kinds[0][1] != len(layers):
                    raise _fail(p, "hidden layers are not a chain")
                pending_w[out] = (len(layers) + 1, consts[1].astype(np.float32))
                tr.kind[out] = ("mm", len(layers) + 1)
            else:
                head_inputs = kinds[0][1] if kinds[0][0] == "head_in" else (kinds[0][1],)
                head_w = consts[1].astype(np.float32).reshape(-1)
                tr.kind[out] = ("head_mm",)
        elif op == "Add" and kinds[0] and kinds[0][0] == "mm" and consts[1] is not None:
            k, w = pending_w.pop(ins[0])
            layers.append((w, consts[1].astype(np.float32).reshape(-1)))
            tr.kind[out] = ("pre", k)
        elif op in _ACTIVATIONS and kinds[0] and kinds[0][0] == "pre":
            if activation not in (None, _ACTIVATIONS[op]):
                raise _fail(p, "mixed activations")
            activation = _ACTIVATIONS[op]
            tr.kind[out] = ("rep", kinds[0][1])
        elif op == "Concat" and kinds and all(k and k[0] == "rep" for k in kinds):
            tr.kind[out] = ("head_in", tuple(k[1] for k in kinds))
        elif op == "Add" and kinds[0] == ("head_mm",) and consts[1] is not None:
            head_b = float(consts[1].reshape(-1)[0])
            tr.kind[out] = ("score2d",)
        elif op == "Reshape" and kinds[0] == ("score2d",) and out == OUTPUT_SCORE:
            tr.kind[out] = ("score",)
        elif op == "Mul" and kinds[0] == ("score",) and consts[1] is not None:
            platt_a = float(consts[1].reshape(-1)[0])
            tr.kind[out] = ("scaled",)
        elif op == "Add" and kinds[0] == ("scaled",) and consts[1] is not None:
            platt_b = float(consts[1].reshape(-1)[0])
            tr.kind[out] = ("logit",)
        elif op == "Sigmoid" and kinds[0] == ("logit",) and out == OUTPUT_PROBABILITY:
            tr.kind[out] = ("probability",)
        else:
            raise _fail(p, f"unexpected node {node.name or op} ({op})")

    missing = [n for n, v in (("pooling", pooling), ("mean", mean), ("std", std), ("head", head_w), ("head bias", head_b), ("platt_a", platt_a), ("platt_b", platt_b)) if v is None or (n == "pooling" and not v)]
    if missing or tr.kind.get(OUTPUT_PROBABILITY) != ("probability",):
        raise _fail(p, "missing " + ", ".join(missing or ["probability output"]))
    meta = {e.key: e.value for e in model.metadata_props}
    net = Network(
        window_length=window_length,
        n_landmarks=n_landmarks,
        pooling=pooling,
        mean=mean,
        std=std,
        layers=layers,
        activation=activation or "tanh",
        head_inputs=head_inputs,
        head_w=head_w,
        head_b=head_b,
        platt_a=platt_a,
        platt_b=platt_b,
        family=meta.get("family", "randomized"),
        n_blendshapes=n_blendshapes,
    )
    _check(net, meta, p)
    return net


def _pooling_of(parts: list[tuple[str, str]], n_blendshapes: int, path: Path) -> tuple[str, ...]:
    """The pooling of a graph from its concatenated parts: the window's parts, then (for
    networks that read blendshapes) the same poolings of the blendshapes."""
    window = tuple(p for p, s in parts if s == INPUT_NAME)
    blend = tuple(p for p, s in parts if s == BLENDSHAPES_NAME)
    expected = [(p, INPUT_NAME) for p in window] + [(p, BLENDSHAPES_NAME) for p in (window if n_blendshapes else ())]
    if not window or parts != expected or (n_blendshapes and blend != window):
        raise _fail(path, "pooled parts are not the window's followed by the same parts of the blendshapes")
    return window


def _feeds_activation(graph: onnx.GraphProto, tensor: str) -> bool:
    """Is ``tensor`` (a MatMul output) added to a bias and then activated (a hidden layer)?"""
    adds = [n.output[0] for n in graph.node if n.op_type == "Add" and tensor in n.input]
    return any(n.op_type in _ACTIVATIONS and n.input[0] in adds for n in graph.node)


def _check(net: Network, meta: dict[str, str], path: Path) -> None:
    """Shapes must be consistent; recorded metadata must agree; its exact floats are used."""
    d = net.input_dim
    widths = [d] + [w.shape[1] for w, _ in net.layers]
    if net.mean.shape != (d,) or net.std.shape != (d,):
        raise _fail(path, f"standardisation of size {net.mean.shape} for {d} pooled features")
    for k, (w, b) in enumerate(net.layers):
        if w.shape[0] != widths[k] or b.shape != (w.shape[1],):
            raise _fail(path, f"hidden layer {k + 1} has shape {w.shape}")
    if len(net.head_w) != sum(widths[i] for i in net.head_inputs):
        raise _fail(path, "head width does not match its inputs")
    if meta.get("format") != METADATA_FORMAT:
        return
    expect = {
        "pooling": ",".join(net.pooling),
        "window_length": str(net.window_length),
        "n_landmarks": str(net.n_landmarks),
        "n_blendshapes": str(net.n_blendshapes),
        "n_layers": str(len(net.layers)),
        "head_inputs": ",".join(str(i) for i in net.head_inputs),
        "activation": net.activation,
    }
    for key, value in expect.items():
        if key in meta and meta[key] != value:
            raise _fail(path, f"metadata {key}={meta[key]!r} but the graph has {value!r}")
    for key in ("head_b", "platt_a", "platt_b"):
        if key in meta:
            exact = float(meta[key])
            if np.float32(exact) != np.float32(getattr(net, key)):
                raise _fail(path, f"metadata {key}={meta[key]} but the graph holds {getattr(net, key)!r}")
            setattr(net, key, exact)


def load_network(onnx_path: str | Path) -> Network:
    """The :class:`Network` of an emotion model file written by
    :func:`~realtime_fer.models.onnx_export.save_onnx`.

    Raises:
        BundleError: the file is missing, is not ONNX, or is not such a network.
    """
    p = Path(onnx_path)
    if not p.is_file():
        raise BundleError(f"model file not found: {p}")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types
        raise BundleError(f"{p} is not a readable ONNX model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return network_from_model(model, p)
