"""Model bundles: a folder with ``manifest.json`` and one ONNX model per emotion.

The manifest (schema version :data:`SCHEMA_VERSION`) records everything the runtime needs and
everything a reader of the model needs to trust it: the emotions, each emotion's landmark
indices (into the 468-point face mesh), the window length and hop, the normalisation, the
landmarker model, decision thresholds and rule, validation metrics, the training data with
its licence terms, and the SHA-256 of every file. :func:`load_bundle` verifies all of it and
raises :class:`~realtime_fer.errors.BundleError` with a clear message otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.errors import BundleError
from realtime_fer.features.windows import WindowOptions, bundle_window_options
from realtime_fer.hashing import file_sha256
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.network import Network
from realtime_fer.models.bundle_cache import BundleCacheEntry, bundle_key
from realtime_fer.models.io_names import BLENDSHAPES_NAME, INPUT_NAME, OUTPUT_PROBABILITY, OUTPUT_SCORE

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
#: Fallback label when no emotion model passes its threshold.
FALLBACK = "neutral"
#: Largest manifest read (bytes); a real one is tens of kilobytes.
MAX_MANIFEST_BYTES = 16 << 20
#: Largest model file hashed and loaded (bytes); a real one is about 1 MB.
MAX_MODEL_BYTES = 1 << 30
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _sha256(path: Path) -> str:
    return file_sha256(path)


def member_path(root: Path, name: object) -> Path:
    """The file ``name`` of the bundle at ``root``, refusing anything outside the folder.

    A manifest names its model files relative to the bundle folder; an absolute path, a ``..``
    component, a backslash, a NUL byte or a symlink that leads out of the folder is rejected
    before anything is opened.

    Raises:
        BundleError: ``name`` is not a plain relative file name inside ``root``.
    """
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise BundleError(f"bundle {root}: invalid model file name {name!r} in the manifest")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or name.startswith("~"):
        raise BundleError(f"bundle {root}: model file name {name!r} points outside the bundle folder (absolute paths and '..' are not allowed)")
    full = root / rel
    try:
        inside = full.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, an unusable name
        raise BundleError(f"bundle {root}: model file name {name!r} cannot be resolved: {exc}") from None
    if not inside:
        raise BundleError(f"bundle {root}: model file {name!r} is a link that points outside the bundle folder")
    return full


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
    cache: BundleCacheEntry | None = field(default=None, compare=False, repr=False)
    """What its ONNX files were turned into at an earlier start (hash-verified bundles only;
    :mod:`realtime_fer.models.bundle_cache`)."""

    @property
    def window_length(self) -> int:
        return int(self.manifest["window"]["length"])

    @property
    def hop(self) -> int:
        return int(self.manifest["window"]["hop"])

    @property
    def window(self) -> WindowOptions:
        """The window geometry in seconds (:func:`~realtime_fer.features.windows.bundle_window_options`):
        ``window.seconds`` / ``window.hop_seconds`` of the manifest, or for a bundle without them
        (every bundle made before windows were in seconds, the shipped one included) the legacy
        ``length / 25`` and ``hop / 25``: their windows were 24 frames of 25 fps clips."""
        return bundle_window_options(self.manifest["window"])

    @property
    def window_seconds(self) -> float:
        """A window's span in source seconds (see :attr:`window`)."""
        return self.window.span_s

    @property
    def hop_seconds(self) -> float:
        """Source seconds between two decisions on a face (see :attr:`window`)."""
        return self.window.hop_s

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
    def domain_offset(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The offsets its training moved RAF-DB's faces by (manifest
        ``normalisation.domain_offset``; ``data.domain_offset``): ``(landmarks (468, 3),
        blendshapes (52,))``, either None. The neutral faces the explanations compare with are
        RAF-DB's, so they are moved by the same offsets."""
        entry = (self.manifest.get("normalisation") or {}).get("domain_offset") or {}
        lm, bs = entry.get("landmarks"), entry.get("blendshapes")
        try:
            lm_arr = None if lm is None else np.asarray(lm, np.float32).reshape(NUM_MESH_LANDMARKS, 3)
            bs_arr = None if bs is None else np.asarray(bs, np.float32).reshape(-1)
        except ValueError:
            raise BundleError(f"{self.path}: manifest normalisation.domain_offset is malformed") from None
        return lm_arr, bs_arr

    @property
    def withheld(self) -> dict[str, str]:
        """Emotions whose models are scored (and published with their probabilities) but never
        decided as the ``top``, with the reason (manifest ``decision.withheld``)."""
        return {str(k): str(v) for k, v in (self.manifest.get("decision", {}).get("withheld") or {}).items()}

    @property
    def thresholds(self) -> dict[str, float]:
        """The decision thresholds; a withheld emotion's is infinite (it never wins a decision)."""
        withheld = self.withheld
        return {name: (float("inf") if name in withheld else e.threshold) for name, e in self.emotions.items()}

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
        if emotion not in self.emotions:
            raise BundleError(f"bundle {self.path} has no model for {emotion!r}; it has {', '.join(self.emotions)}")
        entry = self.emotions[emotion]
        net = self.cache.network(emotion) if self.cache is not None else None
        if net is None:
            from realtime_fer.models.onnx_import import load_network

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
    withheld: dict[str, str] | None = None,
) -> Path:
    """Write a bundle folder (ONNX per emotion + manifest with hashes); returns its path.
    ``withheld``: emotions scored but never decided as the top, with the reason.

    The bundle is written into a temporary folder beside ``path`` and renamed into place when
    complete, so an interruption or a full disk leaves the previous bundle (or none), never a
    half-written one; the temporary folder is removed on failure.
    """
    out = Path(path)
    if out.exists():
        if not overwrite:
            raise BundleError(f"bundle folder already exists: {out}")
        if not out.is_dir() or (not (out / MANIFEST).exists() and any(out.iterdir())):
            raise BundleError(f"refusing to overwrite {out}: it is not empty and holds no {MANIFEST}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_bundle_files(tmp, nets, landmarks, thresholds, window=window, metrics=metrics, training=training, normalisation=normalisation, landmarker=landmarker, blendshapes=blendshapes, withheld=withheld)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_folder(new: Path, out: Path) -> None:
    """Move the complete folder ``new`` to ``out``, replacing a previous bundle there."""
    if not out.exists():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old / out.name, out)  # put the previous bundle back
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_bundle_files(
    out: Path,
    nets: dict[str, Network],
    landmarks: dict[str, list[int]],
    thresholds: dict[str, float],
    *,
    window: dict[str, Any],
    metrics: dict[str, dict[str, Any]] | None,
    training: dict[str, Any] | None,
    normalisation: dict[str, Any] | None,
    landmarker: dict[str, Any] | None,
    blendshapes: list[str] | None,
    withheld: dict[str, str] | None = None,
) -> None:
    """Write the ONNX models and the manifest of a bundle into the existing folder ``out``."""
    unknown = sorted(set(withheld or {}) - set(nets))
    if unknown:
        raise ValueError(f"withheld emotions without a model: {', '.join(unknown)}")
    from realtime_fer.models.onnx_export import save_onnx

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
        "decision": {"rule": "argmax of probability among emotions at or above their threshold", "fallback": FALLBACK, **({"withheld": dict(withheld)} if withheld else {})},
        "normalisation": normalisation or {},
        "landmarker": landmarker or {},
        "training": training or {},
        "files": files,
    }
    with open(out / MANIFEST, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


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
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"corrupt manifest {mpath}: {size} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may have")
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"corrupt manifest {mpath}: {type(exc).__name__ if isinstance(exc, RecursionError) else exc}") from None
    except OSError as exc:
        raise BundleError(f"cannot read manifest {mpath}: {exc.strerror or exc}") from None
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
        for key in ("seconds", "hop_seconds"):
            value = window.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 3600):
                raise ValueError(f"window {key} must be a number of seconds > 0, got {value!r:.80}")
        blend = manifest.get("blendshapes")
        if blend is not None and (not isinstance(blend, list) or not all(isinstance(b, str) for b in blend)):
            raise TypeError("'blendshapes' must be a list of names")
        entries = {}
        for name, e in raw.items():
            if not isinstance(e, dict):
                raise TypeError(f"emotion {name!r}: expected an object, got {type(e).__name__}")
            if not isinstance(e["file"], str):
                raise TypeError(f"emotion {name!r}: 'file' must be a string, got {e['file']!r:.80}")
            if isinstance(e["landmarks"], (str, bytes)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in e["landmarks"]):
                raise TypeError(f"emotion {name!r}: 'landmarks' must be a list of integers")
            lms = [int(i) for i in e["landmarks"]]
            if not lms or min(lms) < 0 or max(lms) >= NUM_MESH_LANDMARKS or len(set(lms)) != len(lms):
                raise ValueError(f"emotion {name!r}: landmark indices must be distinct and in [0, {NUM_MESH_LANDMARKS})")
            threshold = e["threshold"]
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) or not 0 <= threshold <= 1:
                raise ValueError(f"emotion {name!r}: 'threshold' must be a number in [0, 1], got {threshold!r:.80}")
            metrics = e.get("metrics", {})
            if not isinstance(metrics, dict):
                raise TypeError(f"emotion {name!r}: 'metrics' must be an object")
            entries[name] = EmotionEntry(name=name, file=e["file"], landmarks=lms, threshold=float(threshold), family=str(e.get("family", "")), metrics=dict(metrics))
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise BundleError(f"malformed manifest {mpath}: {exc!s}") from None
    for entry in entries.values():
        f = member_path(root, entry.file)
        if not f.is_file():
            raise BundleError(f"bundle {root}: model file {entry.file} for {entry.name!r} is missing")
        expected = files.get(entry.file)
        if expected is None:
            raise BundleError(f"bundle {root}: manifest lists no sha256 for {entry.file}")
        if not isinstance(expected, str) or not _SHA256_HEX.match(expected):
            raise BundleError(f"bundle {root}: the sha256 of {entry.file} in the manifest is not 64 hex digits: {expected!r:.80}")
        size = f.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise BundleError(f"bundle {root}: {entry.file} has {size} bytes, more than the {MAX_MODEL_BYTES} a model may have")
        if verify_hashes and _sha256(f) != expected:
            raise BundleError(f"bundle {root}: {entry.file} is corrupt (sha256 differs from the manifest)")
    # The files are the verified ones: an entry of the start-up cache says they passed the
    # input checks before (and holds their fused graph and networks); otherwise check now.
    models = [(name, e.file, len(e.landmarks)) for name, e in entries.items()]
    cache = BundleCacheEntry(bundle_key(length, blend, models, files)) if verify_hashes else None
    if cache is None or not cache.present:
        for entry in entries.values():
            _check_model_input(root, entry, length, len(blend or ()))
    log.info("loaded bundle %s: %s", root, ", ".join(entries))
    return ModelBundle(path=root, manifest=manifest, emotions=entries, cache=cache)


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
