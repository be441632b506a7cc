"""Fuzzing bundle manifests: mutations of a copy of the shipped default bundle into load_bundle.

Each case copies the real bundle (hard links; a file that a case changes is copied), mutates
it, and loads it. ``load_bundle`` must return a bundle (when the mutation is harmless, e.g. a
changed metric) or raise a :class:`~realtime_fer.errors.BundleError` with a one-line message;
for mutations that break it (traversal, missing file, hash mismatch, truncated ONNX, huge
file) it must raise, and path traversal must be refused as such, before the file is read.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime_fer.errors import BundleError, FerError
from realtime_fer.models.bundle import MANIFEST, MAX_MODEL_BYTES, _sha256, default_bundle_path, load_bundle
from test_fuzz_common import assert_clear_error, fuzz, fuzz_report, tried  # noqa: F401 - fixture

SRC = default_bundle_path()
pytestmark = pytest.mark.skipif(not (SRC / MANIFEST).is_file(), reason=f"the shipped default model is not in {SRC}")

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["../anger.onnx", "/etc/passwd", "", "anger.onnx", "0" * 64, "nan", "24"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=10)

#: File names that must be refused as pointing outside the bundle (the parent folder holds a
#: valid copy of anger.onnx, so without the check ``../anger.onnx`` would load).
TRAVERSAL = ["../anger.onnx", "../../anger.onnx", "sub/../../anger.onnx", "{outside}", "/etc/passwd", "/dev/zero", "~/anger.onnx", "..\\anger.onnx", "anger.onnx\x00.txt"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain copy of the shipped bundle, on the same file system as the cases (hard links)."""
    root = tmp_path_factory.mktemp("bundle_fuzz")
    shutil.copytree(SRC, root / "template")
    shutil.copy2(SRC / "anger.onnx", root / "anger.onnx")  # the target of ../ traversal
    return root / "template"


class Case:
    """One mutated bundle folder beside the template."""

    counter = 0

    def __init__(self, template: Path) -> None:
        Case.counter += 1
        self.root = template.parent / f"case{Case.counter}"
        self.root.mkdir()
        for f in template.iterdir():
            os.link(f, self.root / f.name)
        self.manifest: dict[str, Any] = json.loads((template / MANIFEST).read_text())
        self.emotions = sorted(self.manifest["emotions"])

    def own(self, name: str) -> Path:
        """Replace the hard link ``name`` by a private copy (so mutating it spares the template)."""
        p = self.root / name
        data = p.read_bytes()
        p.unlink()
        p.write_bytes(data)
        return p

    def write_manifest(self) -> None:
        (self.root / MANIFEST).unlink()
        (self.root / MANIFEST).write_text(json.dumps(self.manifest), encoding="utf-8")

    def load(self) -> BaseException | None:
        try:
            load_bundle(self.root)
        except FerError as exc:
            assert isinstance(exc, BundleError), f"{type(exc).__name__}: {exc}"
            assert_clear_error(exc)
            return exc
        return None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _set(doc: Any, path: list, value: Any, delete: bool = False) -> None:
    for k in path[:-1]:
        doc = doc[k]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


def _key_paths(manifest: dict) -> list[list]:
    """Key paths worth mutating: top-level keys, each emotion entry and its fields, each hash."""
    paths: list[list] = [[k] for k in manifest]
    paths += [["window", k] for k in manifest["window"]]
    for e, entry in manifest["emotions"].items():
        paths.append(["emotions", e])
        paths += [["emotions", e, k] for k in entry]
        paths.append(["emotions", e, "landmarks", 0])
    paths += [["files", f] for f in manifest["files"]]
    return paths


MUTATIONS = ["value", "delete", "traversal", "missing_file", "hash_mismatch", "truncated_onnx", "flipped_onnx", "huge_file", "manifest_bytes"]


@fuzz(200)
@given(mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_mutated_bundles_load_or_raise_a_bundle_error(template: Path, mutation: str, data: st.DataObject) -> None:
    case = Case(template)
    try:
        emotion = data.draw(st.sampled_from(case.emotions), label="emotion")
        fname = case.manifest["emotions"][emotion]["file"]
        must_fail = True
        fragment = ""
        if mutation in ("value", "delete"):
            path = data.draw(st.sampled_from(_key_paths(case.manifest)), label="path")
            _set(case.manifest, path, data.draw(json_values, label="value") if mutation == "value" else None, delete=mutation == "delete")
            case.write_manifest()
            must_fail = False  # some keys (created, training, metrics) do not matter to loading
        elif mutation == "traversal":
            name = data.draw(st.sampled_from(TRAVERSAL), label="name").replace("{outside}", str(template.parent / "anger.onnx"))
            case.manifest["emotions"][emotion]["file"] = name
            case.manifest["files"][name] = case.manifest["files"][fname]  # the right hash: only the check stops it
            case.write_manifest()
            fragment = "model file name"
        elif mutation == "missing_file":
            (case.root / fname).unlink()
            fragment = "missing"
        elif mutation == "hash_mismatch":
            h = case.manifest["files"][fname]
            i = data.draw(st.integers(0, 63), label="digit")
            case.manifest["files"][fname] = h[:i] + ("0" if h[i] != "0" else "1") + h[i + 1 :]
            case.write_manifest()
            fragment = "sha256"
        elif mutation in ("truncated_onnx", "flipped_onnx"):
            p = case.own(fname)
            raw = bytearray(p.read_bytes())
            if mutation == "truncated_onnx":
                raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")]
            else:
                for i in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8, unique=True), label="flips"):
                    raw[i] ^= 0xFF
            p.write_bytes(bytes(raw))
            if data.draw(st.booleans(), label="fix hash"):  # a consistent manifest: the ONNX check must catch it
                case.manifest["files"][fname] = _sha256(p)
                case.write_manifest()
                must_fail = mutation == "truncated_onnx"  # a flipped weight byte is still a valid model
            else:
                fragment = "sha256"
        elif mutation == "huge_file":
            p = case.own(fname)
            with open(p, "r+b") as fh:  # sparse: no disk used
                fh.truncate(MAX_MODEL_BYTES + 1)
            fragment = "bytes"
        elif mutation == "manifest_bytes":
            raw = data.draw(st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"[]", b"null", b"{", b"[" * 100000, b"\xff\xfe{}"])), label="manifest")
            (case.root / MANIFEST).unlink()
            (case.root / MANIFEST).write_bytes(raw)
        exc = case.load()
        tried("bundle manifests", "rejected" if exc is not None else "accepted")
        if must_fail:
            assert exc is not None, f"{mutation}: the broken bundle loaded"
            assert fragment in str(exc), (mutation, str(exc))
    finally:
        case.close()


def test_traversal_is_refused_before_the_file_is_read(template: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``../anger.onnx`` (a valid model with the right hash) is refused by name, not hashed."""
    case = Case(template)
    try:
        case.manifest["emotions"]["anger"]["file"] = "../anger.onnx"
        case.manifest["files"]["../anger.onnx"] = case.manifest["files"]["anger.onnx"]
        case.write_manifest()
        import realtime_fer.models.bundle as bundle_mod

        read: list[Path] = []
        monkeypatch.setattr(bundle_mod, "_sha256", lambda p: read.append(p) or "")
        with pytest.raises(BundleError, match="outside the bundle folder"):
            load_bundle(case.root)
        assert not [p for p in read if "anger" in p.name and p.parent != case.root]
    finally:
        case.close()


def test_a_link_out_of_the_bundle_is_refused(template: Path) -> None:
    case = Case(template)
    try:
        (case.root / "anger.onnx").unlink()
        (case.root / "anger.onnx").symlink_to(template.parent / "anger.onnx")
        with pytest.raises(BundleError, match="link that points outside"):
            load_bundle(case.root)
    finally:
        case.close()


def test_the_unmutated_copy_loads(template: Path) -> None:
    case = Case(template)
    try:
        assert case.load() is None
    finally:
        case.close()
