"""Scoring windows with every emotion model of a bundle through onnxruntime.

The bundle's per-emotion ONNX files are checked one by one and then turned into one graph
(:mod:`realtime_fer.models.fused`), so that a scoring step costs one ``session.run`` for all
emotions and all faces: for realtime_fer networks, the union graph that pools the bundle's
landmark union once (:func:`~realtime_fer.models.fused.fuse_networks`); for other ONNX models,
the models side by side (:func:`~realtime_fer.models.fused.fuse_models`). The joined graph (and each model's numpy network, for the explanations)
is kept in the start-up cache (:mod:`realtime_fer.models.bundle_cache`), so later starts of the
same bundle need neither the ``onnx`` package nor the joining.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from realtime_fer.errors import BundleError
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.models.io_names import BLENDSHAPES_NAME, INPUT_NAME, UNION_OUTPUT, blendshapes_input_name, input_name, output_name
from realtime_fer.models.network import Network
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
            fused, networks = self._build(bundle)
            try:
                self.session = make_session(fused, device)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
                raise BundleError(f"bundle {bundle.path}: cannot build the onnxruntime session of its models: {str(exc).splitlines()[0]}") from None
            self._store(bundle, fused, networks)
        self._outputs = [output_name(e) for e in self.emotions]
        self._inputs = {e: input_name(e) for e in self.emotions}
        self.n_blendshapes = len(bundle.blendshapes or ())
        self._blend_inputs = {e: blendshapes_input_name(e) for e in self.emotions} if self.n_blendshapes else {}
        names = [i.name for i in self.session.get_inputs()]
        #: True when the session runs the union graph (one window over :attr:`union`).
        self.union_graph: bool = INPUT_NAME in names
        self.union: np.ndarray = bundle.landmark_union
        self._positions = {e: np.searchsorted(self.union, idx) for e, idx in self.indices.items()}
        if self.union_graph and int(self.session.get_inputs()[0].shape[2]) != len(self.union):
            raise BundleError(f"bundle {bundle.path}: its fused graph reads {self.session.get_inputs()[0].shape[2]} landmarks, the union of its models {len(self.union)}")
        self.provider: str = self.session.get_providers()[0]
        log.info("%d emotion models run in one onnxruntime session on %s (%s)", len(self.emotions), self.provider,
                 f"pooled once over {len(self.union)} landmarks" if self.union_graph else "side by side")

    @staticmethod
    def _build(bundle: ModelBundle) -> tuple[bytes, dict[str, Network] | None]:
        """Check each model against its manifest entry and join them into one graph (bytes);
        also returns each model's numpy network, or ``None`` when they are not realtime_fer
        networks."""
        import onnx

        from realtime_fer.models.fused import fuse_models, fuse_networks, input_shape

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
            networks = {e: bundle.network(e) for e in bundle.emotions}
        except BundleError as exc:  # not realtime_fer networks: joined side by side
            log.debug("bundle %s: %s; its models run side by side", bundle.path, exc)
            networks = None
        try:
            if networks is not None:
                try:
                    return fuse_networks(networks, {e: np.asarray(entry.landmarks, np.int64) for e, entry in bundle.emotions.items()}).SerializeToString(), networks
                except ValueError as exc:  # e.g. models with different poolings
                    log.debug("bundle %s: no union graph (%s); its models run side by side", bundle.path, exc)
            return fuse_models(models).SerializeToString(), networks
        except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types
            raise BundleError(f"bundle {bundle.path}: cannot build the onnxruntime session of its models: {str(exc).splitlines()[0]}") from None

    @staticmethod
    def _store(bundle: ModelBundle, fused: bytes, networks: dict[str, Network] | None) -> None:
        """Keep the working fused graph and each model's numpy network (``None``: not
        realtime_fer networks; they score, but only the graph is kept) in the start-up cache."""
        if bundle.cache is None:
            return
        bundle.cache.store(fused, networks or {})

    def _blendshapes(self, blendshapes: np.ndarray | None) -> np.ndarray:
        """The faces' blendshape windows as the session's float32 input (bundles that read them)."""
        if blendshapes is None:
            raise ValueError(f"bundle {self.bundle.path} reads blendshapes: pass them (the landmarker must compute them)")
        return np.ascontiguousarray(blendshapes, dtype=np.float32)

    def predict_union(self, windows: np.ndarray, blendshapes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Emotion -> (N,) calibrated probabilities (float32) for windows (N, T, U, 3) of the
        bundle's landmark union (:attr:`union`, in order) and, for bundles that read them, the
        faces' blendshapes (N, T, B)."""
        w = np.ascontiguousarray(windows, dtype=np.float32)
        if not self.union_graph:
            return self.predict_subsets({e: np.ascontiguousarray(w[:, :, self._positions[e], :]) for e in self.emotions}, blendshapes)
        feed = {INPUT_NAME: w}
        if self.n_blendshapes:
            feed[BLENDSHAPES_NAME] = self._blendshapes(blendshapes)
        out = self.session.run([UNION_OUTPUT], feed)[0]
        return {e: out[:, k] for k, e in enumerate(self.emotions)}

    def predict_subsets(self, inputs: Mapping[str, np.ndarray], blendshapes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Emotion -> (N,) calibrated probabilities (float32) for per-emotion windows
        (N, T, L_e, 3) float32, each already holding its model's landmarks in order, and (for
        bundles that read them) the faces' blendshapes (N, T, B) float32.

        For the union graph the subsets are written back into one union window (a landmark
        shared by several models must then hold the same values in each of their inputs, as
        the selector gathers them)."""
        if self.union_graph:
            first = inputs[self.emotions[0]]
            w = np.empty((first.shape[0], first.shape[1], len(self.union), 3), np.float32)
            for e in self.emotions:
                w[:, :, self._positions[e], :] = inputs[e]
            return self.predict_union(w, blendshapes)
        feed = {self._inputs[e]: inputs[e] for e in self.emotions}
        if self.n_blendshapes:
            b = self._blendshapes(blendshapes)
            feed.update({name: b for name in self._blend_inputs.values()})
        outs = self.session.run(self._outputs, feed)
        return {e: o.reshape(-1) for e, o in zip(self.emotions, outs)}

    def predict(self, windows: np.ndarray, blendshapes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Calibrated probabilities per emotion for full-mesh windows (N, T, 468, 3) (and their
        blendshapes (N, T, B) for bundles that read them)."""
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim != 4 or w.shape[1] != self.bundle.window_length or w.shape[3] != 3:
            raise ValueError(f"expected windows (N, {self.bundle.window_length}, 468, 3), got {w.shape}")
        if self.union_graph:
            return self.predict_union(w[:, :, self.union, :], blendshapes)
        return self.predict_subsets({e: np.ascontiguousarray(w[:, :, self.indices[e], :]) for e in self.emotions}, blendshapes)
