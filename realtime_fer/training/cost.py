"""Inference cost of an emotion network: input size, multiply-accumulates, and the measured
onnxruntime time per window (one thread, batch of one, as the live recognizer runs it)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from realtime_fer.models.network import Network


def network_macs(net: Network) -> int:
    """Multiply-accumulates (and element-wise operations) per window: pooling, standardisation,
    hidden layers, head. FLOPs are about twice this."""
    macs = len(net.pooling) * net.window_length * (net.n_landmarks * 3 + net.n_blendshapes)  # pooling
    macs += net.input_dim  # standardisation
    for w, _ in net.layers:
        macs += w.shape[0] * w.shape[1]
    return int(macs + len(net.head_w))


def onnx_ms_per_window(net: Network, runs: int = 300, seed: int = 0) -> float:
    """Median wall time (ms) of one onnxruntime call on one window (after warm-up)."""
    from realtime_fer.models.onnx_export import BLENDSHAPES_NAME, INPUT_NAME, OUTPUT_PROBABILITY, build_onnx
    from realtime_fer.models.runtime import make_session

    sess = make_session(build_onnx(net).SerializeToString(), "cpu", threads=1)
    rng = np.random.default_rng(seed)
    feed = {INPUT_NAME: rng.normal(0, 0.5, size=(1, net.window_length, net.n_landmarks, 3)).astype(np.float32)}
    if net.n_blendshapes:
        feed[BLENDSHAPES_NAME] = rng.uniform(0, 1, size=(1, net.window_length, net.n_blendshapes)).astype(np.float32)
    for _ in range(20):
        sess.run([OUTPUT_PROBABILITY], feed)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        sess.run([OUTPUT_PROBABILITY], feed)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def inference_cost(net: Network, runs: int = 300) -> dict[str, Any]:
    """Input dimensions, MACs, ONNX parameters and measured ms per window of ``net``."""
    params = net.mean.size + net.std.size + sum(w.size + b.size for w, b in net.layers) + net.head_w.size + 1
    return {
        "n_landmarks": net.n_landmarks,
        "input_dims": net.input_dim,
        "macs": network_macs(net),
        "parameters": int(params),
        "onnx_ms_per_window": round(onnx_ms_per_window(net, runs), 4),
    }
