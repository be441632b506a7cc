"""Model bundles: a folder with ``manifest.json`` and one ONNX model per emotion.

The manifest (schema version :data:`SCHEMA_VERSION`) records everything the runtime needs and
everything a reader of the model needs to trust it: the emotions, each emotion's landmark
indices (into the 468-point face mesh), the window length and hop, the normalisation, the
landmarker model, decision thresholds and rule, validation metrics, the training data with
its licence terms, and the SHA-256 of every file. :func:`load_bundle` verifies all of it and
raises :class:`~realtime_fer.errors.BundleError` with a clear message otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.errors import BundleError
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.network import Network
from realtime_fer.models.onnx_export import BLENDSHAPES_NAME, INPUT_NAME, OUTPUT_PROBABILITY, OUTPUT_SCORE, save_onnx

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
#: Fallback label when no emotion model passes its threshold.
FALLBACK = "neutral"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_bundle_path() -> Path:
    """The default model shipped inside the package."""
    return Path(str(resources.files("realtime_fer.assets").joinpath("default_model")))


@dataclass
class EmotionEntry:
    """One emotion's model in a bundle."""

    name: str
    file: str
    landmarks: list[int]
    threshold: float
    family: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelBundle:
    """A verified bundle: its manifest and per-emotion entries. Sessions are created lazily."""

    path: Path
    manifest: dict[str, Any]
    emotions: dict[str, EmotionEntry]

    @property
    def window_length(self) -> int:
        return int(self.manifest["window"]["length"])

    @property
    def hop(self) -> int:
        return int(self.manifest["window"]["hop"])

    @property
    def blendshapes(self) -> list[str] | None:
        """The blendshape categories every model reads beside its landmarks (in input order),
        or ``None`` for landmark-only bundles."""
        names = self.manifest.get("blendshapes")
        return list(names) if names else None

    @property
    def landmark_union(self) -> np.ndarray:
        """Sorted union of all emotions' landmark indices."""
        return np.unique(np.concatenate([np.asarray(e.landmarks, np.int64) for e in self.emotions.values()]))

    @property
    def thresholds(self) -> dict[str, float]:
        return {name: e.threshold for name, e in self.emotions.items()}

    def decide(self, probabilities: dict[str, np.ndarray]) -> np.ndarray:
        """:func:`decide` with this bundle's thresholds."""
        return decide(probabilities, self.thresholds)

    def network(self, emotion: str) -> Network:
        """The numpy :class:`Network` of ``emotion``'s ONNX model (for explanations: gradients
        and Integrated Gradients without torch), checked against the manifest.

        Raises:
            BundleError: unknown emotion, or the model is not a realtime_fer network or does
                not match its manifest entry.
        """
        from realtime_fer.models.onnx_import import load_network

        if emotion not in self.emotions:
            raise BundleError(f"bundle {self.path} has no model for {emotion!r}; it has {', '.join(self.emotions)}")
        entry = self.emotions[emotion]
        net = load_network(self.path / entry.file)
        if net.n_landmarks != len(entry.landmarks) or net.window_length != self.window_length or net.n_blendshapes != len(self.blendshapes or ()):
            raise BundleError(f"bundle {self.path}: {entry.file} takes [{net.window_length}, {net.n_landmarks}] windows, the manifest says [{self.window_length}, {len(entry.landmarks)}]")
        return net


def decide(probabilities: dict[str, np.ndarray], thresholds: dict[str, float]) -> np.ndarray:
    """The decision rule, for N windows: the most probable emotion among those at or above
    their threshold, else ``neutral`` (a neutral model, when present, competes like the others).

    Args:
        probabilities: emotion -> (N,) calibrated probabilities.
        thresholds: emotion -> decision threshold.

    Returns:
        (N,) array of emotion names.
    """
    names = list(probabilities)
    p = np.stack([np.atleast_1d(np.asarray(probabilities[e], np.float64)) for e in names], axis=1)
    above = p >= np.array([thresholds[e] for e in names])[None, :]
    pick = np.where(above, p, -1.0).argmax(axis=1)
    return np.array(names + [FALLBACK])[np.where(above.any(axis=1), pick, len(names))]


def write_bundle(
    path: str | Path,
    nets: dict[str, Network],
    landmarks: dict[str, list[int]],
    thresholds: dict[str, float],
    *,
    window: dict[str, Any],
    metrics: dict[str, dict[str, Any]] | None = None,
    training: dict[str, Any] | None = None,
    normalisation: dict[str, Any] | None = None,
    landmarker: dict[str, Any] | None = None,
    overwrite: bool = True,
    blendshapes: list[str] | None = None,
) -> Path:
    """Write a bundle folder (ONNX per emotion + manifest with hashes); returns its path."""
    out = Path(path)
    if out.exists():
        if not overwrite:
            raise BundleError(f"bundle folder already exists: {out}")
        if not (out / MANIFEST).exists() and any(out.iterdir()):
            raise BundleError(f"refusing to overwrite {out}: it is not empty and holds no {MANIFEST}")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    emotions: dict[str, Any] = {}
    files: dict[str, str] = {}
    for name in [e for e in EMOTIONS if e in nets] + sorted(set(nets) - set(EMOTIONS)):
        net = nets[name]
        fname = f"{name}.onnx"
        save_onnx(net, out / fname, name=name)
        files[fname] = _sha256(out / fname)
        emotions[name] = {
            "file": fname,
            "landmarks": [int(i) for i in landmarks[name]],
            "n_landmarks": len(landmarks[name]),
            "threshold": float(thresholds[name]),
            "family": net.family,
            "metrics": (metrics or {}).get(name, {}),
        }
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "emotions": emotions,
        "window": window,
        "input": {"name": INPUT_NAME, "shape": ["batch", window["length"], "n_landmarks", 3], "dtype": "float32"},
        **({"blendshapes": list(blendshapes), "blendshapes_input": {"name": BLENDSHAPES_NAME, "shape": ["batch", window["length"], len(blendshapes)], "dtype": "float32"}} if blendshapes else {}),
        "outputs": {"probability": OUTPUT_PROBABILITY, "score": OUTPUT_SCORE},
        "decision": {"rule": "argmax of probability among emotions at or above their threshold", "fallback": FALLBACK},
        "normalisation": normalisation or {},
        "landmarker": landmarker or {},
        "training": training or {},
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


def load_bundle(path: str | Path | None = None, *, verify_hashes: bool = True) -> ModelBundle:
    """Load and verify a bundle (default: the one shipped in the package).

    Raises:
        BundleError: the folder or manifest is missing, the manifest is malformed or of another
            schema version, a file is missing or its SHA-256 differs, or an ONNX model does not
            match its manifest entry.
    """
    root = Path(path) if path is not None else default_bundle_path()
    if not root.exists():
        raise BundleError(f"model bundle not found: {root}")
    if not root.is_dir():
        raise BundleError(f"model bundle must be a folder holding {MANIFEST}: {root}")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"model bundle {root} has no {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"corrupt manifest {mpath}: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"corrupt manifest {mpath}: expected a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"bundle {root} has manifest schema_version {version!r}; this realtime_fer reads version {SCHEMA_VERSION}")
    try:
        window = manifest["window"]
        length, hop = int(window["length"]), int(window["hop"])
        raw = manifest["emotions"]
        files = manifest["files"]
        if not isinstance(raw, dict) or not raw or not isinstance(files, dict):
            raise TypeError("'emotions' and 'files' must be non-empty objects")
        if length < 1 or hop < 1:
            raise ValueError("window length and hop must be >= 1")
        entries = {}
        for name, e in raw.items():
            lms = [int(i) for i in e["landmarks"]]
            if not lms or min(lms) < 0 or max(lms) >= NUM_MESH_LANDMARKS or len(set(lms)) != len(lms):
                raise ValueError(f"emotion {name!r}: landmark indices must be distinct and in [0, {NUM_MESH_LANDMARKS})")
            entries[name] = EmotionEntry(name=name, file=str(e["file"]), landmarks=lms, threshold=float(e["threshold"]), family=str(e.get("family", "")), metrics=dict(e.get("metrics", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"malformed manifest {mpath}: {exc!s}") from None
    for entry in entries.values():
        f = root / entry.file
        if not f.is_file():
            raise BundleError(f"bundle {root}: model file {entry.file} for {entry.name!r} is missing")
        if entry.file not in files:
            raise BundleError(f"bundle {root}: manifest lists no sha256 for {entry.file}")
        if verify_hashes and _sha256(f) != files[entry.file]:
            raise BundleError(f"bundle {root}: {entry.file} is corrupt (sha256 differs from the manifest)")
        _check_model_input(root, entry, length, len(manifest.get("blendshapes") or ()))
    log.info("loaded bundle %s: %s", root, ", ".join(entries))
    return ModelBundle(path=root, manifest=manifest, emotions=entries)


def _check_model_input(root: Path, entry: EmotionEntry, length: int, n_blendshapes: int = 0) -> None:
    """The ONNX model of ``entry`` must take ``window`` [batch, length, len(landmarks), 3] (and
    ``blendshapes`` [batch, length, B] when the manifest lists B blendshapes)."""
    import onnx

    try:
        graph = onnx.load(str(root / entry.file), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types
        raise BundleError(f"bundle {root}: {entry.file} is not a readable ONNX model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    inp = graph.input[0] if len(graph.input) else None
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in inp.type.tensor_type.shape.dim] if inp is not None else []
    if inp is None or inp.name != INPUT_NAME or len(dims) != 4 or dims[1:] != [length, len(entry.landmarks), 3]:
        shown = f"{inp.name}{dims}" if inp is not None else "nothing"
        raise BundleError(
            f"bundle {root}: {entry.file} takes input {shown}, but the manifest says "
            f"{INPUT_NAME}[batch, {length}, {len(entry.landmarks)}, 3] (window length {length}, "
            f"{len(entry.landmarks)} landmarks for {entry.name!r})"
        )
    second = graph.input[1] if len(graph.input) > 1 else None
    bdims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in second.type.tensor_type.shape.dim] if second is not None else []
    if (n_blendshapes and (second is None or second.name != BLENDSHAPES_NAME or bdims[1:] != [length, n_blendshapes])) or (not n_blendshapes and second is not None):
        raise BundleError(
            f"bundle {root}: {entry.file} takes {'no blendshapes' if second is None else f'{second.name}{bdims}'}, but the manifest says "
            + (f"{BLENDSHAPES_NAME}[batch, {length}, {n_blendshapes}]" if n_blendshapes else "none")
        )
