"""Scoring windows with every emotion model of a bundle through onnxruntime."""

from __future__ import annotations

import logging

import numpy as np

from realtime_fer.errors import BundleError
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.models.onnx_export import INPUT_NAME, OUTPUT_PROBABILITY
from realtime_fer.models.runtime import Device, make_session

log = logging.getLogger(__name__)


class BundleScorer:
    """Runs each emotion's ONNX model on its own landmark subset of full-mesh windows.

    Args:
        bundle: a verified :class:`ModelBundle`.
        device: ``auto`` (CUDA when usable, else CPU), ``cpu`` or ``cuda``.
    """

    def __init__(self, bundle: ModelBundle, device: Device = "auto") -> None:
        self.bundle = bundle
        self.sessions = {}
        self.indices = {}
        for name, entry in bundle.emotions.items():
            path = bundle.path / entry.file
            try:
                sess = make_session(path, device)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
                raise BundleError(f"bundle {bundle.path}: cannot load {entry.file} with onnxruntime: {str(exc).splitlines()[0]}") from None
            shape = sess.get_inputs()[0].shape
            if sess.get_inputs()[0].name != INPUT_NAME or len(shape) != 4 or shape[1] != bundle.window_length or shape[2] != len(entry.landmarks):
                raise BundleError(
                    f"bundle {bundle.path}: {entry.file} takes input {sess.get_inputs()[0].name}{shape}, but the manifest says "
                    f"{INPUT_NAME}[batch, {bundle.window_length}, {len(entry.landmarks)}, 3]"
                )
            self.sessions[name] = sess
            self.indices[name] = np.asarray(entry.landmarks, np.int64)
        self.provider = next(iter(self.sessions.values())).get_providers()[0]
        log.info("emotion models run on onnxruntime %s", self.provider)

    def predict(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probabilities per emotion for windows (N, T, 468, 3)."""
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim != 4 or w.shape[1] != self.bundle.window_length or w.shape[3] != 3:
            raise ValueError(f"expected windows (N, {self.bundle.window_length}, 468, 3), got {w.shape}")
        out = {}
        for name, sess in self.sessions.items():
            x = np.ascontiguousarray(w[:, :, self.indices[name], :])
            out[name] = sess.run([OUTPUT_PROBABILITY], {INPUT_NAME: x})[0]
        return out
