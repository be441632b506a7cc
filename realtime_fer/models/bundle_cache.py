"""A per-user cache of what a verified bundle's ONNX files turn into at start-up.

Starting the recognizer needs three things derived from a bundle's per-emotion ONNX files:
the check that each model takes the windows its manifest entry describes, the fused graph of
all emotion models (:mod:`realtime_fer.models.fused`) and, for the explanations, each model's
numpy :class:`~realtime_fer.models.network.Network`. Deriving them needs the ``onnx`` package,
whose import alone costs about 0.6 s, and nothing of it changes while the bundle's files do
not. So the first start of a bundle stores them here and later starts read them back with
numpy and onnxruntime only (docs/benchmarks.md, *Cold start*).

An entry is keyed by the SHA-256 of everything it is derived from: the format of this cache,
the realtime_fer version, the window, the blendshape names and, per emotion, its file's SHA-256
(which :func:`~realtime_fer.models.bundle.load_bundle` has just verified) and landmark count.
A changed model file is a new key; a corrupt or half-written entry is ignored (and rebuilt).
An entry is used only for bundles whose hashes were verified.

Where: ``$REALTIME_FER_CACHE_DIR``, else ``$XDG_CACHE_HOME/realtime_fer``, else
``~/.cache/realtime_fer``; ``REALTIME_FER_CACHE_DIR=off`` disables it. When the folder cannot be
written the cache is skipped (one debug line) and everything is derived as before.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from realtime_fer import __version__
from realtime_fer.models.network import Network

log = logging.getLogger(__name__)

ENV_VAR = "REALTIME_FER_CACHE_DIR"
#: Bumped when what an entry holds or how it is written changes.
FORMAT = 3  # 2: the fused graph is the union graph (models.fused.fuse_networks); 3: blendshape-only units multiply the blendshape columns alone
_INDEX = "entry.json"
_FUSED = "fused.onnx"


def cache_root() -> Path | None:
    """The cache folder, or ``None`` when disabled."""
    env = os.environ.get(ENV_VAR)
    if env:
        return None if env.lower() in ("off", "0", "none", "false") else Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "realtime_fer"
    try:
        return Path.home() / ".cache" / "realtime_fer"
    except (RuntimeError, KeyError):  # no home directory (some services): no cache
        return None


def bundle_key(window_length: int, blendshapes: list[str] | None, models: Sequence[tuple[str, str, int]], files: Mapping[str, str]) -> str:
    """The key of a bundle's entry (see the module docs).

    Args:
        window_length: frames per window.
        blendshapes: the bundle's blendshape names (``None``: none).
        models: per emotion, in manifest order, ``(emotion, ONNX file name, landmark count)``.
        files: the verified SHA-256 of each file, by name.
    """
    spec = {
        "format": FORMAT,
        "version": __version__,
        "window": int(window_length),
        "blendshapes": list(blendshapes or []),
        "emotions": [[name, file, files.get(file), int(n_landmarks)] for name, file, n_landmarks in models],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _network_to_npz(net: Network) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {"mean": net.mean, "std": net.std, "head_w": net.head_w}
    for i, (w, b) in enumerate(net.layers):
        arrays[f"layer{i}_w"], arrays[f"layer{i}_b"] = w, b
    meta = {
        "window_length": net.window_length, "n_landmarks": net.n_landmarks, "pooling": list(net.pooling),
        "n_layers": len(net.layers), "activation": net.activation, "head_inputs": list(net.head_inputs),
        "head_b": float(net.head_b), "platt_a": float(net.platt_a), "platt_b": float(net.platt_b),
        "family": net.family, "extras": net.extras, "n_blendshapes": net.n_blendshapes,
    }
    return arrays, meta


def _network_from_npz(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Network:
    return Network(
        window_length=int(meta["window_length"]), n_landmarks=int(meta["n_landmarks"]), pooling=tuple(meta["pooling"]),
        mean=arrays["mean"], std=arrays["std"],
        layers=[(arrays[f"layer{i}_w"], arrays[f"layer{i}_b"]) for i in range(int(meta["n_layers"]))],
        activation=str(meta["activation"]), head_inputs=tuple(int(i) for i in meta["head_inputs"]), head_w=arrays["head_w"],
        head_b=float(meta["head_b"]), platt_a=float(meta["platt_a"]), platt_b=float(meta["platt_b"]),
        family=str(meta["family"]), extras=dict(meta["extras"]), n_blendshapes=int(meta["n_blendshapes"]),
    )


class BundleCacheEntry:
    """The cached derivations of one bundle (see the module docs); every reader returns
    ``None`` on a miss or a damaged entry."""

    def __init__(self, key: str, root: Path | None = None) -> None:
        self.key = key
        base = root if root is not None else cache_root()
        self.folder: Path | None = base / "bundles" / key if base is not None else None
        self._index: dict[str, Any] | None = None

    def _read_index(self) -> dict[str, Any] | None:
        if self._index is None and self.folder is not None:
            try:
                index = json.loads((self.folder / _INDEX).read_text())
                if isinstance(index, dict) and index.get("format") == FORMAT and index.get("key") == self.key:
                    self._index = index
            except (OSError, ValueError):
                return None
        return self._index

    @property
    def present(self) -> bool:
        """An entry exists: the bundle's models passed the input checks when it was built."""
        return self._read_index() is not None

    def fused(self) -> bytes | None:
        """The fused ONNX graph, verified against the hash recorded with it."""
        index = self._read_index()
        if index is None or self.folder is None:
            return None
        try:
            data = (self.folder / _FUSED).read_bytes()
        except OSError:
            return None
        if _sha256(data) != index.get("fused_sha256"):
            log.debug("bundle cache %s: fused graph damaged; rebuilding", self.folder)
            return None
        return data

    def network(self, emotion: str) -> Network | None:
        """``emotion``'s numpy network, or ``None``."""
        index = self._read_index()
        meta = index.get("networks", {}).get(emotion) if index else None
        if meta is None or self.folder is None:
            return None
        try:
            data = (self.folder / meta["file"]).read_bytes()
            if _sha256(data) != meta["sha256"]:
                return None
            with np.load(io.BytesIO(data), allow_pickle=False) as z:  # the bytes just verified
                arrays = {k: z[k] for k in z.files}
            return _network_from_npz(arrays, meta["meta"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _intact(self, networks: Mapping[str, Network]) -> bool:
        """The stored entry is whole: its graph and every one of ``networks`` read back."""
        return self.fused() is not None and all(self.network(e) is not None for e in networks)

    def store(self, fused: bytes, networks: Mapping[str, Network]) -> bool:
        """Write the entry (a temp folder renamed into place); ``False`` when it cannot be
        written (read-only home, full disk: the cache is then simply not used)."""
        if self.folder is None:
            return False
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{self.key[:12]}-", dir=self.folder.parent))
            try:
                (tmp / _FUSED).write_bytes(fused)
                nets: dict[str, Any] = {}
                for i, (emotion, net) in enumerate(networks.items()):
                    arrays, meta = _network_to_npz(net)
                    name, buf = f"network{i}.npz", io.BytesIO()
                    np.savez(buf, **arrays)
                    (tmp / name).write_bytes(buf.getvalue())
                    nets[emotion] = {"file": name, "sha256": _sha256(buf.getvalue()), "meta": meta}
                index = {"format": FORMAT, "key": self.key, "fused_sha256": _sha256(fused), "networks": nets}
                (tmp / _INDEX).write_text(json.dumps(index))
                if self.folder.exists():
                    self._index = None
                    if self._intact(networks):  # another process (or stream) stored it meanwhile
                        return True
                    shutil.rmtree(self.folder, ignore_errors=True)  # a damaged entry
                os.replace(tmp, self.folder)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        except (OSError, TypeError, ValueError) as exc:
            log.debug("bundle cache not written (%s): %s", self.folder, exc)
            return False
        self._index = None
        log.debug("bundle cache written: %s", self.folder)
        return True
