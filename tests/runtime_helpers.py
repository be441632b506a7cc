"""Helpers for the recognizer tests (test_recognizer.py, test_selector.py, test_cli_run.py).

Not a test module. The tests score with the shipped default model (``load_bundle()``); while it
is being trained, ``REALTIME_FER_TEST_BUNDLE=/path/to/bundle`` points them at another bundle.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest

BUNDLE_ENV = "REALTIME_FER_TEST_BUNDLE"
T = TypeVar("T")


def bundle_arg() -> str | None:
    """The bundle the tests use: ``None`` (the shipped default) unless the env var says otherwise."""
    return os.environ.get(BUNDLE_ENV) or None


def model_cli_args() -> list[str]:
    """``--model PATH`` when the env var is set, else nothing (the default model)."""
    path = bundle_arg()
    return ["--model", path] if path else []


def require_bundle():  # noqa: ANN201
    """The loaded test bundle; skips while the shipped default model does not exist yet."""
    from realtime_fer.models.bundle import default_bundle_path, load_bundle

    path = bundle_arg()
    if path is None and not (default_bundle_path() / "manifest.json").is_file():
        pytest.skip(f"the shipped default model is not in {default_bundle_path()} yet; set {BUNDLE_ENV} to a bundle folder")
    return load_bundle(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(fn: Callable[[], T], within: float, what: str, step: float = 0.05) -> T:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(step)


def video(shared_data: Path, name: str) -> Path:
    return shared_data / "video" / "pyfeat" / name
