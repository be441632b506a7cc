"""The start-up cache of a bundle's derived models (realtime_fer.models.bundle_cache): the
second start of a bundle needs no ``onnx`` and gives exactly what the first derived."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.models import bundle_cache
from realtime_fer.models.bundle import default_bundle_path, load_bundle
from realtime_fer.models.onnx_import import load_network
from realtime_fer.models.scorer import BundleScorer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv(bundle_cache.ENV_VAR, str(path))
    return path


def _windows(bundle, n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    from realtime_fer.landmarks.normalize import reference_face

    w = (reference_face()[None, None] + rng.normal(scale=0.01, size=(n, bundle.window_length, 468, 3))).astype(np.float32)
    b = rng.uniform(0, 1, size=(n, bundle.window_length, len(bundle.blendshapes))).astype(np.float32) if bundle.blendshapes else None
    return w, b


def test_second_load_reads_the_cache_and_agrees(cache_dir: Path) -> None:
    first = load_bundle()
    assert first.cache is not None and not first.cache.present
    w, b = _windows(first)
    p_first = BundleScorer(first, "cpu").predict(w, b)
    assert first.cache.present, "the first scorer stores the fused graph and the networks"

    second = load_bundle()
    assert second.cache is not None and second.cache.present
    assert second.cache.fused() is not None
    p_second = BundleScorer(second, "cpu").predict(w, b)
    for e in first.emotions:
        np.testing.assert_array_equal(p_second[e], p_first[e])
        cached = second.network(e)
        onnx_net = load_network(second.path / second.emotions[e].file)
        for name in ("mean", "std", "head_w"):
            np.testing.assert_array_equal(getattr(cached, name), getattr(onnx_net, name))
        assert len(cached.layers) == len(onnx_net.layers)
        for (w1, b1), (w2, b2) in zip(cached.layers, onnx_net.layers):
            np.testing.assert_array_equal(w1, w2)
            np.testing.assert_array_equal(b1, b2)
        assert (cached.pooling, cached.activation, cached.head_inputs, cached.head_b, cached.platt_a, cached.platt_b, cached.n_blendshapes) == (
            onnx_net.pooling, onnx_net.activation, onnx_net.head_inputs, onnx_net.head_b, onnx_net.platt_a, onnx_net.platt_b, onnx_net.n_blendshapes)


def test_cached_start_imports_no_onnx(cache_dir: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from realtime_fer.models.bundle import load_bundle
        from realtime_fer.models.scorer import BundleScorer
        b = load_bundle()
        BundleScorer(b, "cpu")
        nets = [b.network(e) for e in b.emotions]
        print(b.cache.present, "onnx" in sys.modules)
        """
    )
    env = dict(os.environ, **{bundle_cache.ENV_VAR: str(cache_dir)})
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout.split() == ["True", "True"], "the first start derives with onnx and stores"
    assert runs[1].stdout.split() == ["True", "False"], "a later start needs no onnx"


def test_damaged_entry_is_rebuilt(cache_dir: Path) -> None:
    bundle = load_bundle()
    w, b = _windows(bundle)
    expected = BundleScorer(bundle, "cpu").predict(w, b)
    folder = bundle.cache.folder
    (folder / "fused.onnx").write_bytes(b"not a model")
    npz = sorted(folder.glob("network*.npz"))[0]
    npz.write_bytes(npz.read_bytes()[:100])
    again = load_bundle()
    assert again.cache.fused() is None  # the recorded hash no longer matches
    got = BundleScorer(again, "cpu").predict(w, b)
    for e in bundle.emotions:
        np.testing.assert_array_equal(got[e], expected[e])
        assert again.network(e) is not None
    assert load_bundle().cache.fused() is not None, "rebuilt and stored again"


def test_unwritable_or_disabled_cache_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(bundle_cache.ENV_VAR, str(blocker / "cache"))  # cannot be created
    bundle = load_bundle()
    w, b = _windows(bundle)
    BundleScorer(bundle, "cpu").predict(w, b)
    assert not bundle.cache.present
    monkeypatch.setenv(bundle_cache.ENV_VAR, "off")
    off = load_bundle()
    assert off.cache is not None and off.cache.folder is None
    BundleScorer(off, "cpu").predict(w, b)
    assert load_bundle(verify_hashes=False).cache is None, "unverified files never use the cache"


def test_another_model_file_is_another_entry(cache_dir: Path, tmp_path: Path) -> None:
    import json

    copy = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), copy)
    original = load_bundle(copy)
    BundleScorer(original, "cpu")
    manifest = json.loads((copy / "manifest.json").read_text())
    # swap two emotions' models (file and landmarks; hashes stay right): another bundle to the cache
    entries = manifest["emotions"]
    a, b = "happy", "surprise"
    for key in ("file", "landmarks"):
        entries[a][key], entries[b][key] = entries[b][key], entries[a][key]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    swapped = load_bundle(copy)
    assert swapped.cache.key != original.cache.key and not swapped.cache.present
    w, bl = _windows(swapped)
    p = BundleScorer(swapped, "cpu").predict(w, bl)
    p0 = BundleScorer(load_bundle(default_bundle_path()), "cpu").predict(w, bl)
    np.testing.assert_array_equal(p[a], p0[b])
