"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ``../shared/data`` (relative to the project root); skips when absent."""
    path = (PROJECT_ROOT / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"../shared/data is absent: {path} does not exist (real datasets are not part of the repository)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _startup_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The bundles' start-up cache of this test session lives in its temp folder, not in the
    user's ~/.cache (subprocesses inherit it)."""
    import os

    from realtime_fer.models.bundle_cache import ENV_VAR

    if not os.environ.get(ENV_VAR):
        os.environ[ENV_VAR] = str(tmp_path_factory.getbasetemp() / "startup_cache")
