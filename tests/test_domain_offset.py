"""The photo sources' face geometry moved to the video's (realtime_fer.training.domain_offset):
the resting face of clips, the per-source offsets and where they are added. Faces are the
reference face with known displacements, so no research data is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime_fer.data.extract import ExtractedSample
from realtime_fer.data.layouts import SampleRef
from realtime_fer.landmarks.normalize import normalize_landmarks, reference_face
from realtime_fer.training.domain_offset import (
    DomainOffsetOptions,
    apply_offsets,
    resting_blendshapes,
    resting_face,
    source_blendshape_offsets,
    source_offsets,
)

CHIN = [152, 148, 377, 176, 400]


def _face(chin_drop: float = 0.0, lip_gap: float = 0.0) -> np.ndarray:
    """(478, 3) pixels: the reference face (scaled to pixels) with the chin lowered and the
    lower inner lip opened by the given amounts (reference units)."""
    f = np.asarray(reference_face(), np.float64).copy()
    f[CHIN, 1] += chin_drop  # y points down in the reference frame
    f[14, 1] += lip_gap
    out = np.zeros((478, 3))
    out[:468] = f * 100.0 + 300.0
    out[468:] = out[468]
    return out


def _sample(frames: list[np.ndarray], label: str = "neutral", blend: np.ndarray | None = None, kind: str = "video") -> ExtractedSample:
    ref = SampleRef(path=Path(f"/x/{label}.mp4"), label=label, group="g", kind=kind)  # type: ignore[arg-type]
    return ExtractedSample(ref=ref, landmarks=np.asarray(frames, np.float32), fps=25.0, frame_size=(640, 480), blendshapes=blend)


def test_the_resting_face_is_the_clips_closed_mouth_frames() -> None:
    rng = np.random.default_rng(0)
    # a talking clip: the chin is 0.2 lower than the reference's; the mouth opens in 3 of 4 frames
    gaps = [0.0 if k % 4 == 0 else rng.uniform(0.1, 0.3) for k in range(40)]
    clip = _sample([_face(chin_drop=0.2, lip_gap=g) for g in gaps])
    rest = resting_face([clip], rest_quantile=0.25)
    expected = normalize_landmarks(_face(chin_drop=0.2)[None])[0]
    np.testing.assert_allclose(rest, expected, atol=1e-4)
    with pytest.raises(ValueError, match="no clip"):
        resting_face([_sample([np.full((478, 3), np.nan)])])
    with pytest.raises(ValueError, match="rest_quantile"):
        DomainOffsetOptions(rest_quantile=0.0)


def test_sources_move_by_their_neutral_training_photos_only() -> None:
    target = normalize_landmarks(_face(chin_drop=0.2)[None])[0].astype(np.float64)
    photos = [_sample([_face()], "neutral", kind="image"), _sample([_face()], "neutral", kind="image"),
              _sample([_face(chin_drop=0.5)], "happy", kind="image"), _sample([_face(chin_drop=0.2)], "fear", kind="image")]
    sources = ["raf", "raf", "raf", "ck"]
    labels = [p.ref.label for p in photos]
    off = source_offsets(photos, sources, labels, np.array([True, True, True, True]), target)
    assert set(off) == {"raf"}  # ck has no neutral photo: not moved
    np.testing.assert_allclose(off["raf"], target - normalize_landmarks(_face()[None])[0], atol=1e-5)
    assert np.abs(off["raf"][CHIN, 1]).max() > 0.1 and np.abs(np.delete(off["raf"], CHIN, axis=0)).max() < 0.05
    # a validation photo never sets it
    assert source_offsets(photos, sources, labels, np.array([False, False, True, True]), target) == {}


def test_blendshape_target_is_the_median_over_clips() -> None:
    faces = [_face(lip_gap=g) for g in (0.0, 0.3, 0.3, 0.3)]
    clips = [_sample(faces, blend=np.tile(np.full(52, v), (4, 1))) for v in (0.1, 0.2, 0.9)]
    np.testing.assert_allclose(resting_blendshapes(clips), np.full(52, 0.2))
    photo = _sample([_face()], "neutral", blend=np.full((1, 52), 0.05), kind="image")
    off = source_blendshape_offsets([photo], ["raf"], ["neutral"], np.array([True]), np.full(52, 0.2))
    np.testing.assert_allclose(off["raf"], np.full(52, 0.15))


def test_offsets_go_to_the_mean_part_of_the_rows_of_their_source() -> None:
    pooling = ("mean", "std")
    width = 2 * (3 * 468 + 52)
    feats = np.zeros((3, width), np.float32)
    lm = {"raf": np.arange(468 * 3, dtype=np.float64).reshape(468, 3)}
    bs = {"raf": np.full(52, 0.5)}
    rows = np.array(["raf", "ck", "raf"])
    apply_offsets(feats, pooling, rows, lm)
    apply_offsets(feats, pooling, rows, bs, n_blendshapes=52, blendshapes=True)
    np.testing.assert_array_equal(feats[0, : 3 * 468], np.arange(468 * 3))
    assert not feats[1].any() and not feats[:, 3 * 468 : 6 * 468].any()  # other source; std part
    blend_mean = slice(6 * 468, 6 * 468 + 52)
    np.testing.assert_array_equal(feats[2, blend_mean], 0.5)
    assert not feats[:, 6 * 468 + 52 :].any()


def _bundle_with_offset(tmp_path: Path, entry: object) -> Path:
    """The shipped bundle copied, its manifest's ``normalisation.domain_offset`` set to ``entry``
    (removed when None)."""
    import json
    import shutil

    from realtime_fer.models.bundle import default_bundle_path

    out = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.setdefault("normalisation", {}).pop("domain_offset", None)
    if entry is not None:
        manifest["normalisation"]["domain_offset"] = entry
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_the_explanations_baselines_move_with_the_bundles_offset(tmp_path: Path) -> None:
    """A bundle trained on faces moved by a domain offset is explained against neutral faces
    moved by it too: the dataset's face and blendshapes and the person's predicted resting face."""
    from realtime_fer.errors import BundleError
    from realtime_fer.explain.baselines import bundle_neutral_face, shipped_neutral_blendshapes, shipped_neutral_face
    from realtime_fer.explain.stream import StreamExplainer
    from realtime_fer.models.bundle import load_bundle

    off = np.zeros((468, 3))
    off[CHIN, 1] = 0.2
    plain = load_bundle(_bundle_with_offset(tmp_path / "a", None))
    moved = load_bundle(_bundle_with_offset(tmp_path / "b", {"source": "rafdb", "landmarks": off.tolist(), "blendshapes": [0.01] * 52}))
    assert plain.domain_offset == (None, None)
    np.testing.assert_allclose(moved.domain_offset[0], off, atol=1e-7)
    np.testing.assert_allclose(bundle_neutral_face(moved) - shipped_neutral_face(), off, atol=1e-6)
    a, b = StreamExplainer(plain), StreamExplainer(moved)
    np.testing.assert_allclose(b._dataset_neutral - a._dataset_neutral, off, atol=1e-6)
    if a._dataset_neutral_blend is not None:
        np.testing.assert_allclose(b._dataset_neutral_blend - shipped_neutral_blendshapes(), 0.01, atol=1e-6)
    if a.person is not None and b.person is not None:
        np.testing.assert_allclose(b.person.mean_targets - a.person.mean_targets, off[a.person.targets], atol=1e-6)
        # a face on the moved predictors is predicted as the moved resting face
        stable = a.person.mean_stable.reshape(-1, 3)
        np.testing.assert_allclose(b.person.predict(stable + off[a.person.stable]), a.person.predict(stable) + off[a.person.targets], atol=1e-5)
    broken = load_bundle(_bundle_with_offset(tmp_path / "c", {"landmarks": [1.0, 2.0]}))
    with pytest.raises(BundleError, match="domain_offset"):
        broken.domain_offset
