"""Scoring windows with every emotion model of a bundle through onnxruntime.

The bundle's per-emotion ONNX files are checked one by one and then joined into one graph
(:mod:`realtime_fer.models.fused`), so that a scoring step costs one ``session.run`` for all
emotions and all faces. The joined graph (and each model's numpy network, for the explanations)
is kept in the start-up cache (:mod:`realtime_fer.models.bundle_cache`), so later starts of the
same bundle need neither the ``onnx`` package nor the joining.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from realtime_fer.errors import BundleError
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.models.io_names import INPUT_NAME, blendshapes_input_name, input_name, output_name
from realtime_fer.models.runtime import Device, make_session

log = logging.getLogger(__name__)


class BundleScorer:
    """Runs each emotion's model on its own landmark subset, all in one onnxruntime session.

    Args:
        bundle: a verified :class:`ModelBundle`.
        device: ``auto`` (CUDA when usable, else CPU), ``cpu`` or ``cuda``.

    Raises:
        BundleError: a model file is not valid ONNX or does not take the windows the manifest
            describes.
    """

    def __init__(self, bundle: ModelBundle, device: Device = "auto") -> None:
        self.bundle = bundle
        self.emotions: tuple[str, ...] = tuple(bundle.emotions)
        self.indices: dict[str, np.ndarray] = {e: np.asarray(entry.landmarks, np.int64) for e, entry in bundle.emotions.items()}
        fused = bundle.cache.fused() if bundle.cache is not None else None
        self.session = None
        if fused is not None:
            try:
                self.session = make_session(fused, device)
                log.debug("fused graph of %s from the start-up cache", bundle.path)
            except Exception as exc:  # noqa: BLE001 - a damaged cache entry: build it again
                log.debug("cached fused graph unusable (%s); rebuilding", exc)
        if self.session is None:
            fused = self._build(bundle)
            try:
                self.session = make_session(fused, device)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
                raise BundleError(f"bundle {bundle.path}: cannot build the onnxruntime session of its models: {str(exc).splitlines()[0]}") from None
            self._store(bundle, fused)
        self._outputs = [output_name(e) for e in self.emotions]
        self._inputs = {e: input_name(e) for e in self.emotions}
        self.n_blendshapes = len(bundle.blendshapes or ())
        self._blend_inputs = {e: blendshapes_input_name(e) for e in self.emotions} if self.n_blendshapes else {}
        self.provider: str = self.session.get_providers()[0]
        log.info("%d emotion models run in one onnxruntime session on %s", len(self.emotions), self.provider)

    @staticmethod
    def _build(bundle: ModelBundle) -> bytes:
        """Check each model against its manifest entry and join them into one graph (bytes)."""
        import onnx

        from realtime_fer.models.fused import fuse_models, input_shape

        models = {}
        for name, entry in bundle.emotions.items():
            path = bundle.path / entry.file
            try:
                model = onnx.load(str(path))
                onnx.checker.check_model(model)
            except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise several unrelated types
                raise BundleError(f"bundle {bundle.path}: cannot load {entry.file} with onnx: {str(exc).splitlines()[0]}") from None
            shape = input_shape(model) if model.graph.input else []
            in_name = model.graph.input[0].name if model.graph.input else None
            if in_name != INPUT_NAME or len(shape) != 4 or shape[1] != bundle.window_length or shape[2] != len(entry.landmarks):
                raise BundleError(
                    f"bundle {bundle.path}: {entry.file} takes input {in_name}{shape}, but the manifest says "
                    f"{INPUT_NAME}[batch, {bundle.window_length}, {len(entry.landmarks)}, 3]"
                )
            models[name] = model
        try:
            return fuse_models(models).SerializeToString()
        except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types
            raise BundleError(f"bundle {bundle.path}: cannot build the onnxruntime session of its models: {str(exc).splitlines()[0]}") from None

    @staticmethod
    def _store(bundle: ModelBundle, fused: bytes) -> None:
        """Keep the working fused graph and each model's numpy network in the start-up cache."""
        if bundle.cache is None:
            return
        try:
            networks = {e: bundle.network(e) for e in bundle.emotions}
        except BundleError as exc:  # not realtime_fer networks: they score, but only the graph is kept
            log.debug("bundle %s: networks not cached: %s", bundle.path, exc)
            networks = {}
        bundle.cache.store(fused, networks)

    def predict_subsets(self, inputs: Mapping[str, np.ndarray], blendshapes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Emotion -> (N,) calibrated probabilities (float32) for per-emotion windows
        (N, T, L_e, 3) float32, each already holding its model's landmarks in order, and (for
        bundles that read them) the faces' blendshapes (N, T, B) float32."""
        feed = {self._inputs[e]: inputs[e] for e in self.emotions}
        if self.n_blendshapes:
            if blendshapes is None:
                raise ValueError(f"bundle {self.bundle.path} reads blendshapes: pass them (the landmarker must compute them)")
            b = np.ascontiguousarray(blendshapes, dtype=np.float32)
            feed.update({name: b for name in self._blend_inputs.values()})
        outs = self.session.run(self._outputs, feed)
        return {e: o.reshape(-1) for e, o in zip(self.emotions, outs)}

    def predict(self, windows: np.ndarray, blendshapes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Calibrated probabilities per emotion for full-mesh windows (N, T, 468, 3) (and their
        blendshapes (N, T, B) for bundles that read them)."""
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim != 4 or w.shape[1] != self.bundle.window_length or w.shape[3] != 3:
            raise ValueError(f"expected windows (N, {self.bundle.window_length}, 468, 3), got {w.shape}")
        return self.predict_subsets({e: np.ascontiguousarray(w[:, :, self.indices[e], :]) for e in self.emotions}, blendshapes)
