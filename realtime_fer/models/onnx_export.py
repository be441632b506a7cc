"""Export a :class:`~realtime_fer.models.network.Network` to ONNX, without torch.

The graph takes ``window`` (float32, [N, T, L, 3], N dynamic), and for networks that read
them ``blendshapes`` (float32, [N, T, B]: MediaPipe's blendshape scores of the same frames), and
returns ``probability`` (calibrated, [N]) and ``score`` (uncalibrated, [N]). Weights that are exactly representable in
float16 (the randomized network draws them so) are stored in float16 and cast on load, halving
the file size with bit-identical results.

Initializers have stable names (``mean``, ``std``, ``W1``/``W1_f16``, ``b1``, ..., ``head_w``,
``head_b``, ``platt_a``, ``platt_b``) and the network's structure is recorded in the model's
``metadata_props`` (:func:`network_metadata`), so :func:`realtime_fer.models.onnx_import.load_network`
can rebuild the :class:`Network` from the file alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from realtime_fer.models.half import is_half
from realtime_fer.models.io_names import BLENDSHAPES_NAME, INPUT_NAME, OPSET, OUTPUT_PROBABILITY, OUTPUT_SCORE
from realtime_fer.models.network import STD_EPSILON, Network

__all__ = ["BLENDSHAPES_NAME", "INPUT_NAME", "OPSET", "OUTPUT_PROBABILITY", "OUTPUT_SCORE", "METADATA_FORMAT", "build_onnx", "network_metadata", "save_onnx"]
#: ``metadata_props["format"]`` of graphs whose initializers have stable names and whose
#: structure is recorded in ``metadata_props`` (see :func:`network_metadata`).
METADATA_FORMAT = "realtime_fer.network/1"


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, value: np.ndarray, base: str, allow_half: bool = False) -> str:
        """An initializer named exactly ``base`` (``base_f16`` when stored in half precision and
        cast on load), so that :mod:`realtime_fer.models.onnx_import` finds the weights by name."""
        arr = np.asarray(value)
        if any(t.name in (base, base + "_f16") for t in self.inits):
            raise ValueError(f"duplicate initializer name {base!r}")
        if allow_half and arr.size > 64 and is_half(arr):
            half = base + "_f16"
            self.inits.append(numpy_helper.from_array(arr.astype(np.float16), half))
            return self.op("Cast", [half], base, to=TensorProto.FLOAT)
        self.inits.append(numpy_helper.from_array(arr, base))
        return base

    def op(self, op_type: str, inputs: list[str], base: str, **attrs: object) -> str:
        out = self.name(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out + "_op", **attrs))
        return out


def _pool_parts(b: _Builder, net: Network, source: str, width: int, tag: str) -> list[str]:
    """The pooled parts of input ``source`` ([N, T, ..., ] -> [N, width] each, in ``net.pooling``
    order); ``tag`` keeps initializer names unique per input."""
    t = net.window_length
    flat_shape = b.const(np.array([-1, width], np.int64), f"flat_shape{tag}")
    parts = []
    for p in net.pooling:
        if p == "mean":
            m = b.op("ReduceMean", [source], "mean_t", axes=[1], keepdims=0)
        elif p == "delta":
            last = b.op("Gather", [source, b.const(np.array(t - 1, np.int64), f"last_index{tag}")], "last_frame", axis=1)
            first = b.op("Gather", [source, b.const(np.array(0, np.int64), f"first_index{tag}")], "first_frame", axis=1)
            m = b.op("Sub", [last, first], "delta_t")
        elif p == "std":  # sqrt(mean((x - mean)^2) + eps), exactly as network.pool
            centred = b.op("Sub", [source, b.op("ReduceMean", [source], "mean_keep", axes=[1], keepdims=1)], "centred_t")
            var = b.op("ReduceMean", [b.op("Mul", [centred, centred], "squared_t")], "var_t", axes=[1], keepdims=0)
            m = b.op("Sqrt", [b.op("Add", [var, b.const(np.array(STD_EPSILON, np.float32), f"std_epsilon{tag}")], "var_eps")], "std_t")
        elif p == "min":
            m = b.op("ReduceMin", [source], "min_t", axes=[1], keepdims=0)
        elif p == "max":
            m = b.op("ReduceMax", [source], "max_t", axes=[1], keepdims=0)
        else:
            raise ValueError(f"unknown pooling {p!r}")
        parts.append(b.op("Reshape", [m, flat_shape], "flat"))
    return parts


def tail_only_units(net: Network) -> int:
    """How many of the first layer's last units read only the blendshape columns (the last
    ``len(pooling) * n_blendshapes`` inputs): the units of a fused blendshape model
    (:mod:`realtime_fer.models.blendshape_fusion`); 0 when none."""
    if not net.layers or not net.n_blendshapes:
        return 0
    w = net.layers[0][0]
    head = w.shape[0] - len(net.pooling) * net.n_blendshapes
    zero = ~np.asarray(w[:head], np.float32).any(axis=0)
    n = 0
    while n < len(zero) - 1 and zero[len(zero) - 1 - n]:
        n += 1
    return n


def network_body(b: _Builder, net: Network, pooled: str, prefix: str = "", split_tail: bool = False) -> str:
    """The nodes from ``net``'s pooled input (``pooled``, [N, input_dim]) to its uncalibrated
    score ([N, 1]); initializer names get ``prefix`` (empty for a model's own file, whose
    stable names :mod:`realtime_fer.models.onnx_import` reads). ``split_tail``: the first
    layer's units that read only the blendshape columns (:func:`tail_only_units`) multiply
    those columns alone instead of the whole input (the same numbers, fewer operations; the
    union graph uses it, a model's own file keeps one weight matrix)."""
    z = b.op("Div", [b.op("Sub", [pooled, b.const(net.mean.astype(np.float32), f"{prefix}mean")], "centred"), b.const(net.std.astype(np.float32), f"{prefix}std")], "z")
    reps = [z]
    act = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}[net.activation]
    tail = tail_only_units(net) if split_tail else 0
    for k, (w, bias) in enumerate(net.layers, start=1):
        if k == 1 and tail:
            rows = len(net.pooling) * net.n_blendshapes
            d, units = w.shape
            z_tail = b.op("Slice", [z, b.const(np.array([d - rows], np.int64), f"{prefix}tail_start"), b.const(np.array([d], np.int64), f"{prefix}tail_end"), b.const(np.array([1], np.int64), f"{prefix}tail_axis")], "z_tail")
            full = b.op("MatMul", [z, b.const(w[:, : units - tail].astype(np.float32), f"{prefix}W1a", allow_half=True)], "mm1a")
            part = b.op("MatMul", [z_tail, b.const(w[d - rows :, units - tail :].astype(np.float32), f"{prefix}W1b", allow_half=True)], "mm1b")
            mm = b.op("Concat", [full, part], "mm1", axis=1)
        else:
            mm = b.op("MatMul", [reps[-1], b.const(w.astype(np.float32), f"{prefix}W{k}", allow_half=True)], f"mm{k}")
        pre = b.op("Add", [mm, b.const(bias.astype(np.float32), f"{prefix}b{k}", allow_half=True)], f"pre{k}")
        reps.append(b.op(act, [pre], f"h{k}"))
    head_in = [reps[i] for i in net.head_inputs]
    feats = head_in[0] if len(head_in) == 1 else b.op("Concat", head_in, "head_features", axis=1)
    return b.op("Add", [b.op("MatMul", [feats, b.const(net.head_w.astype(np.float32).reshape(-1, 1), f"{prefix}head_w")], "head_mm"), b.const(np.array([net.head_b], np.float32), f"{prefix}head_b")], "score2d")


def calibrated_logit(b: _Builder, net: Network, score: str, prefix: str = "") -> str:
    """``platt_a * score + platt_b`` (the probability is its sigmoid)."""
    return b.op("Add", [b.op("Mul", [score, b.const(np.array(net.platt_a, np.float32), f"{prefix}platt_a")], "scaled"), b.const(np.array(net.platt_b, np.float32), f"{prefix}platt_b")], "logit")


def pooled_input(b: _Builder, net: Network, window: str, blendshapes: str | None, n_landmarks: int, tag: str = "") -> str:
    """The pooled, flattened input ([N, input_dim] for ``n_landmarks`` landmarks) of windows
    ``window`` and (for networks that read them) ``blendshapes``."""
    parts = _pool_parts(b, net, window, 3 * n_landmarks, tag)
    if net.n_blendshapes and blendshapes is not None:
        parts += _pool_parts(b, net, blendshapes, net.n_blendshapes, f"{tag}_blendshapes")
    return parts[0] if len(parts) == 1 else b.op("Concat", parts, "pooled", axis=1)


def build_onnx(net: Network, name: str = "emotion") -> onnx.ModelProto:
    """The ONNX graph of ``net`` (see the module docstring for inputs and outputs)."""
    b = _Builder()
    t, l = net.window_length, net.n_landmarks
    x = pooled_input(b, net, INPUT_NAME, BLENDSHAPES_NAME if net.n_blendshapes else None, l)
    score2d = network_body(b, net, x)
    b.nodes.append(helper.make_node("Reshape", [score2d, b.const(np.array([-1], np.int64), "vec")], [OUTPUT_SCORE], name="score_op"))
    logit = calibrated_logit(b, net, OUTPUT_SCORE)
    b.nodes.append(helper.make_node("Sigmoid", [logit], [OUTPUT_PROBABILITY], name="probability_op"))

    graph = helper.make_graph(
        b.nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", t, l, 3])]
        + ([helper.make_tensor_value_info(BLENDSHAPES_NAME, TensorProto.FLOAT, ["batch", t, net.n_blendshapes])] if net.n_blendshapes else []),
        [
            helper.make_tensor_value_info(OUTPUT_PROBABILITY, TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info(OUTPUT_SCORE, TensorProto.FLOAT, ["batch"]),
        ],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="realtime_fer")
    model.ir_version = 8
    meta = network_metadata(net)
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    return model


def network_metadata(net: Network) -> dict[str, str]:
    """The structure of ``net`` as ONNX ``metadata_props`` (strings); floats are written with
    ``repr`` so the float64 Platt parameters and head bias survive the round trip exactly."""
    return {
        "format": METADATA_FORMAT,
        "family": net.family,
        "activation": net.activation,
        "pooling": ",".join(net.pooling),
        "window_length": str(net.window_length),
        "n_landmarks": str(net.n_landmarks),
        "n_blendshapes": str(net.n_blendshapes),
        "n_layers": str(len(net.layers)),
        "head_inputs": ",".join(str(i) for i in net.head_inputs),
        "head_b": repr(float(net.head_b)),
        "platt_a": repr(float(net.platt_a)),
        "platt_b": repr(float(net.platt_b)),
    }


def save_onnx(net: Network, path: str | Path, name: str = "emotion") -> Path:
    """Write ``net`` as an ONNX file at ``path``."""
    p = Path(path)
    onnx.save(build_onnx(net, name), str(p))
    return p
