"""Finding and verifying MediaPipe's face_landmarker.task (realtime_fer.landmarks.model_file):
explicit path, then $REALTIME_FER_LANDMARKER_MODEL, then the copy carried in the package; SHA-256 pinned."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from realtime_fer.errors import FerError, ModelFileError
from realtime_fer.landmarks import model_file
from realtime_fer.landmarks.model_file import ENV_VAR, PINNED_SHA256, PINNED_SIZE, find_model_file, sha256_of


@pytest.fixture(scope="module")
def packaged_model() -> Path:
    """The model file carried inside the package (the default source), with its licence."""
    path = model_file.packaged_model()
    assert path.is_file(), f"the package carries no {model_file.PACKAGED_MODEL}"
    folder = path.parent
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert PINNED_SHA256 in (folder / "NOTICE").read_text()
    return path


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _assert_says_what_to_do(message: str) -> None:
    assert "reinstall realtime-fer" in message
    assert ENV_VAR in message


def test_package_is_the_default(packaged_model: Path, no_env: None) -> None:
    found = find_model_file()
    assert found == packaged_model
    assert found.stat().st_size == PINNED_SIZE
    assert sha256_of(found.resolve()) == PINNED_SHA256


def test_explicit_path_wins(packaged_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "my model.task"
    shutil.copyfile(packaged_model, copy)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere.task"))  # not consulted
    assert find_model_file(copy) == copy
    assert find_model_file(str(copy)) == copy


def test_environment_variable(packaged_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "linked.task"
    link.symlink_to(packaged_model)
    monkeypatch.setenv(ENV_VAR, str(link))
    assert find_model_file() == link


def test_wrong_file_is_rejected_with_its_hash(packaged_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "face_landmarker.task"
    data = bytearray(packaged_model.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte: same size, different model
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as err:
        find_model_file(bad)
    msg = str(err.value)
    assert str(bad) in msg and "the explicit path" in msg
    assert PINNED_SHA256 in msg and sha256_of(bad.resolve()) in msg
    assert "corrupt" in msg and "verify_model" in msg
    _assert_says_what_to_do(msg)
    # a deliberate other model is accepted without verification
    assert find_model_file(bad, verify=False) == bad

    monkeypatch.setenv(ENV_VAR, str(bad))
    with pytest.raises(ModelFileError, match=rf"\${ENV_VAR}"):
        find_model_file()


def test_missing_explicit_path(tmp_path: Path, no_env: None) -> None:
    missing = tmp_path / "nope" / "face_landmarker.task"
    with pytest.raises(ModelFileError) as err:
        find_model_file(missing)
    msg = str(err.value)
    assert str(missing) in msg and "does not exist" in msg
    _assert_says_what_to_do(msg)
    assert isinstance(err.value, FerError) and err.value.exit_code == 2


def test_missing_env_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.task"))
    with pytest.raises(ModelFileError) as err:
        find_model_file()
    msg = str(err.value)
    assert f"${ENV_VAR}" in msg and "gone.task" in msg
    _assert_says_what_to_do(msg)


def test_broken_install_says_what_to_do(no_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an installation that lost its packaged model (a stripped or half-copied site-packages)
    monkeypatch.setattr(model_file, "packaged_model", lambda: tmp_path / "assets" / "face_landmarker.task")
    with pytest.raises(ModelFileError) as err:
        find_model_file()
    msg = str(err.value)
    assert "the realtime-fer package" in msg and "does not exist" in msg
    _assert_says_what_to_do(msg)
