"""onnxruntime sessions with a deliberate choice of execution provider.

``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` even on machines without a GPU and then
prints a CUDA error when a session asks for it. We ask for CUDA only when it is listed *and* an
NVIDIA device is present, and log which provider each session actually runs on.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]


def cuda_device_present() -> bool:
    """True when an NVIDIA device node exists (cheap; does not initialise CUDA)."""
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def choose_providers(device: Device = "auto") -> list[str]:
    """The onnxruntime providers to request for ``device``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    cuda_ok = "CUDAExecutionProvider" in available and cuda_device_present()
    if device == "cuda" and not cuda_ok:
        log.warning("CUDA requested for onnxruntime but not usable (providers %s, NVIDIA device %s); using CPU", available, cuda_device_present())
    if device in ("auto", "cuda") and cuda_ok:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(model: str | Path | bytes, device: Device = "auto", threads: int = 1):  # noqa: ANN201
    """An ``onnxruntime.InferenceSession`` for ``model`` (path or serialized bytes).

    ``threads`` bounds intra-op threads: the per-emotion models are tiny, and one thread each
    avoids oversubscribing a small CPU that MediaPipe also uses.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts, providers=choose_providers(device))
    log.debug("onnxruntime session on %s", sess.get_providers()[0])
    return sess
