"""Speech-subspace projection (realtime_fer.models.speech_subspace): directions of real talking
motion, projected off before fitting and folded into the exported networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_testdata import session_cache
from fold_checks import assert_folded_network_exports
from realtime_fer.data.motion import MotionBank
from realtime_fer.errors import DataError
from realtime_fer.models.network import pool
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.speech_subspace import SpeechSubspace, SpeechSubspaceOptions, fold_projection, project

CLIPS = ("furious_talk2_clip1.mp4", "happyenglish_clip1.mp4", "nice_clip1.mp4")
MOUTH = [0, 13, 14, 17, 61, 291, 78, 308, 152]
BROWS = [10, 151, 9, 105, 334, 66, 296]


@pytest.fixture(scope="module")
def bank(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> MotionBank:
    from realtime_fer.landmarks.detector import LandmarkerOptions

    return MotionBank.from_videos([shared_data / "video" / "talking" / c for c in CLIPS], session_cache(tmp_path_factory), LandmarkerOptions(blendshapes=True), workers=0)


def test_directions_are_orthonormal_and_placed_in_the_mean_part(bank: MotionBank) -> None:
    sub = SpeechSubspace.from_bank(bank, SpeechSubspaceOptions(rank=4, blendshape_rank=2))
    lms = MOUTH + BROWS
    b = sub.basis(lms, ("mean", "std"), 52)
    width = 3 * len(lms)
    assert b.shape == (2 * (width + 52), 6)
    np.testing.assert_allclose(b.T @ b, np.eye(6), atol=1e-10)
    rows = np.flatnonzero(np.abs(b).sum(axis=1) > 0)
    mean_lm = rows[rows < width]
    mean_blend = rows[(rows >= 2 * width) & (rows < 2 * width + 52)]
    assert len(mean_lm) + len(mean_blend) == len(rows)  # nothing in the std parts
    # talking moves the mouth, not the forehead: the directions live on the mouth
    u, share = sub.landmark_basis(lms)
    energy = (u**2).reshape(len(lms), 3, -1).sum(axis=(1, 2))
    assert energy[: len(MOUTH)].sum() > 3 * energy[len(MOUTH) :].sum()
    assert 0.3 < share < 1.0
    assert sub.basis(lms, ("std",), 52) is None  # no mean part: nothing to remove


def test_projection_removes_speech_and_keeps_the_rest(bank: MotionBank) -> None:
    sub = SpeechSubspace.from_bank(bank, SpeechSubspaceOptions(rank=6))
    lms = list(range(468))
    b = sub.basis(lms, ("mean",), 0)
    speech = bank.frames.reshape(len(bank.frames), -1)
    kept = np.linalg.norm(project(speech, b)) / np.linalg.norm(speech)
    assert kept < 0.6  # most of the talking motion is gone
    rng = np.random.default_rng(0)
    other = rng.normal(size=(50, 1404)).astype(np.float32)  # a random direction is nearly untouched
    assert np.linalg.norm(project(other, b)) / np.linalg.norm(other) > 0.99
    np.testing.assert_allclose(project(project(other, b), b), project(other, b), atol=1e-5)  # a projection


@pytest.mark.parametrize("half", [False, True])
def test_folded_network_reads_raw_windows_as_the_fitted_one_reads_projected(bank: MotionBank, half: bool) -> None:
    """Fit on projected features, fold, and the folded network on the raw window gives the
    same score; its ONNX export gives it too (nothing else in the graph changes)."""
    rng = np.random.default_rng(1)
    lms = MOUTH + BROWS
    sub = SpeechSubspace.from_bank(bank, SpeechSubspaceOptions(rank=5, blendshape_rank=3))
    wins = rng.normal(0, 0.05, size=(300, 8, len(lms), 3)).astype(np.float32) + bank.frames[:8, lms][None]
    blend = rng.uniform(0, 1, size=(300, 8, 52)).astype(np.float32)
    codes = (wins[:, :, :, 1].mean(axis=(1, 2)) > np.median(wins[:, :, :, 1].mean(axis=(1, 2)))).astype(int)
    pooling = ("mean", "std")
    x = pool(wins, pooling, blendshapes=blend)
    basis = sub.basis(lms, pooling, 52)
    nets = fit_randomized(project(x, basis), codes, {"e": np.array([1])}, RandomizedOptions(hidden=[64, 32], seed=3), window_length=8, n_landmarks=len(lms), pooling=pooling, n_blendshapes=52)
    fitted = nets["e"]
    folded = fold_projection(fitted, basis, half=half)
    want = fitted.score_pooled(project(x, basis))
    got = folded.score(wins, blend)
    np.testing.assert_allclose(got, want, atol=2e-3 if half else 1e-4)
    assert_folded_network_exports(folded, wins, blend, half)


def test_options_reject_negative_ranks() -> None:
    with pytest.raises(ValueError, match="rank"):
        SpeechSubspaceOptions(rank=-1)
    with pytest.raises(ValueError, match="rank"):
        SpeechSubspaceOptions(rank=4, ranks={"surprise": -1})
    with pytest.raises(DataError, match="unknown emotion label 'suprise'"):
        SpeechSubspaceOptions(rank=4, ranks={"suprise": 2})
    assert not SpeechSubspaceOptions().enabled and SpeechSubspaceOptions(blendshape_rank=1).enabled
    assert SpeechSubspaceOptions(ranks={"surprise": 2}).enabled


def test_an_emotion_can_keep_more_of_the_speech_directions(bank: MotionBank) -> None:
    """``ranks`` overrides ``rank`` per emotion: fewer directions, the leading ones of the same
    basis."""
    sub = SpeechSubspace.from_bank(bank, SpeechSubspaceOptions(rank=6, ranks={"Surprised": 2}))
    assert sub.options.ranks == {"surprise": 2} and sub.options.rank_of("surprise") == 2 and sub.options.rank_of("anger") == 6
    lms = MOUTH + BROWS
    full = sub.basis(lms, ("mean", "std"), 52, "anger")
    few = sub.basis(lms, ("mean", "std"), 52, "surprise")
    assert full.shape[1] == 6 and few.shape[1] == 2
    np.testing.assert_array_equal(few, full[:, :2])
    np.testing.assert_array_equal(sub.basis(lms, ("mean", "std"), 52), full)  # no emotion: rank
    assert SpeechSubspace.from_bank(bank, SpeechSubspaceOptions(rank=6, ranks={"surprise": 0})).basis(lms, ("mean",), 0, "surprise") is None


@pytest.fixture(scope="module")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from test_train_cli import train_small_video_recipe

    return train_small_video_recipe(shared_data, tmp_path_factory, "speech_subspace", "  pooling: [mean, std]\n  speech_subspace: {rank: 4, ranks: {surprise: 2}}\n")


def test_trained_bundle_ignores_talking_directions(trained: tuple[Path, Path], shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Through the bundle's ONNX models: moving a real face's window along a talking direction
    of a model's landmarks leaves that model's probability unchanged; a random direction of
    the same size does not. Surprise removes only its own 2 directions (``ranks``): the next
    two move it."""
    from realtime_fer.data.extract import extract_dataset
    from realtime_fer.data.windows import iter_window_chunks
    from realtime_fer.features.windows import WindowOptions
    from realtime_fer.models.bundle import load_bundle
    from realtime_fer.models.scorer import BundleScorer
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.trainer import speech_subspace

    cfg_path, out = trained
    cfg = load_train_config(cfg_path)
    bundle = load_bundle(out)
    assert bundle.manifest["training"]["config"]["model"]["speech_subspace"]["rank"] == 4
    assert bundle.manifest["training"]["config"]["model"]["speech_subspace"]["ranks"] == {"surprise": 2}
    sub = speech_subspace(cfg)
    ck = extract_dataset(cfg.data.sources[0].path, cfg.data.cache_dir, workers=0, progress=False)
    samples = [s for s in ck.samples if s.ref.label in ("happy", "surprise")][:12]
    wins, _ = next(iter_window_chunks(samples, WindowOptions(length=bundle.window_length, hop=bundle.hop), jitter=False))
    scorer = BundleScorer(bundle, device="cpu")

    def logits(w: np.ndarray) -> dict[str, np.ndarray]:  # probabilities near 0 or 1 hide changes
        return {e: np.log(p / (1 - p)) for e, p in scorer.predict(w).items()}

    base = logits(wins)
    rng = np.random.default_rng(0)
    for emotion in ("happy", "surprise"):
        lms = bundle.emotions[emotion].landmarks
        u, _ = sub.landmark_basis(lms, 4)
        removed = sub.options.rank_of(emotion)
        assert removed == {"happy": 4, "surprise": 2}[emotion]
        for j in range(u.shape[1]):
            moved = wins.copy()
            moved[:, :, lms, :] += 0.1 * u[:, j].reshape(len(lms), 3).astype(np.float32)
            speech = np.abs(logits(moved)[emotion] - base[emotion])
            if j < removed:
                assert speech.max() < 0.003, (emotion, j, speech.max())  # measured < 3e-4 (float16 first layer)
            else:
                assert speech.mean() > 0.005, (emotion, j, speech.mean())  # not projected off: it moves the model
        r = rng.normal(size=3 * len(lms))
        r /= np.linalg.norm(r)
        moved = wins.copy()
        moved[:, :, lms, :] += 0.1 * r.reshape(len(lms), 3).astype(np.float32)
        other = np.abs(logits(moved)[emotion] - base[emotion]).mean()
        assert other > 0.02, (emotion, other)  # 70x any projected direction


def test_speech_subspace_without_talking_clips_is_one_error_line(shared_data: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from fer_testdata import ck_subset
    from test_train_cli import assert_clean_error, fer, write_config

    cfg = write_config(tmp_path / "train.yaml", {"ck": ck_subset(shared_data, tmp_path_factory), "raf": ck_subset(shared_data, tmp_path_factory)}, session_cache(tmp_path_factory))
    cfg.write_text(cfg.read_text().replace("model:\n", "model:\n  speech_subspace: {rank: 4}\n"))
    assert_clean_error(fer("train", "--config", cfg, "--no-progress", cwd=tmp_path), "speech_subspace", "talking")
    cfg.write_text(cfg.read_text().replace("speech_subspace: {rank: 4}", "speech_subspace: {rank: -2}"))
    assert_clean_error(fer("train", "--config", cfg, "--no-progress", cwd=tmp_path), "rank")


def test_shape_basis_keeps_the_leading_shape_components_and_folds(bank: MotionBank) -> None:
    """``model.shape_components``: after the speech projection, all but the leading K
    directions of the pooled mean shape are projected off; the speech directions fall among
    the removed ones; the folded network reads raw windows as the fitted one reads projected."""
    from realtime_fer.training.fitting import shape_basis

    lms = MOUTH + BROWS
    frames = bank.frames[:, lms]
    t = 8
    wins = np.stack([frames[i : i + t] for i in range(0, len(frames) - t, 3)]).astype(np.float32)
    pooling = ("mean", "std")
    sub = SpeechSubspace.from_bank(bank, SpeechSubspaceOptions(rank=3))
    speech = sub.basis(lms, pooling, 0)
    x = project(pool(wins, pooling), speech)
    keep = 6
    b = shape_basis(x, 0, len(lms), keep)
    width = 3 * len(lms)
    assert b.shape == (2 * width, width - keep)
    np.testing.assert_allclose(b.T @ b, np.eye(width - keep), atol=1e-8)
    assert not np.abs(b[width:]).any()  # the std part is untouched
    y = project(x, b)
    sv = np.linalg.svd(y[:, :width] - y[:, :width].mean(axis=0), compute_uv=False)
    assert (sv[keep:] < 1e-3 * sv[0]).all() and sv[keep - 1] > 1e-3 * sv[0]  # K directions of shape left
    np.testing.assert_allclose(project(y, speech), y, atol=1e-5)  # speech stays off
    assert shape_basis(x, 0, len(lms), width) is None
    codes = (x[:, 1] > np.median(x[:, 1])).astype(int)
    fitted = fit_randomized(y, codes, {"e": np.array([1])}, RandomizedOptions(hidden=[32], seed=0), window_length=t, n_landmarks=len(lms), pooling=pooling)["e"]
    folded = fold_projection(fitted, b)
    # the raw window through the folded net (only the shape basis folded, as fit_models does:
    # it holds the speech directions) = the twice projected features through the fitted one
    np.testing.assert_allclose(folded.score(wins), fitted.score_pooled(y), atol=1e-3)


def test_identity_subspace_removes_how_resting_faces_differ_and_folds(bank: MotionBank) -> None:
    """``model.identity_subspace``: the leading directions in which the resting (here: label 0)
    windows' pooled mean shapes and blendshapes differ are projected off after the speech
    directions, orthogonal to them, and folded into the network ``fit_models`` returns, which
    then reads raw windows; those directions no longer move its score."""
    from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
    from realtime_fer.models.identity_subspace import IdentitySubspaceOptions, identity_basis, join_bases
    from realtime_fer.training.features import PooledSet
    from realtime_fer.training.fitting import fit_models

    rng = np.random.default_rng(4)
    lms = MOUTH + BROWS
    t, n = 8, 400
    # a talking face (the bank's motion) with a per-"person" offset of the rest shape
    starts = rng.integers(0, len(bank.frames) - t, n)
    wins = np.stack([bank.frames[s : s + t] for s in starts]).astype(np.float32)
    person = rng.normal(0, 0.02, size=(n, 1, NUM_MESH_LANDMARKS, 3)).astype(np.float32)
    wins = wins + person
    blend = rng.uniform(0, 0.2, size=(n, t, 52)).astype(np.float32)
    codes = rng.integers(0, 2, n)
    pooling = ("mean", "std")
    data = PooledSet(pool(wins, pooling, blendshapes=blend), np.arange(n), pooling, 52)
    sub = SpeechSubspace.from_bank(bank, SpeechSubspaceOptions(rank=3))
    opts = IdentitySubspaceOptions(rank=4, blendshape_rank=2)

    x = project(data.features[:, data.columns(lms)], sub.basis(lms, pooling, 52))
    ib = identity_basis(x, np.flatnonzero(codes == 0), pooling=pooling, n_landmarks=len(lms), n_blendshapes=52, options=opts)
    width = 3 * len(lms)
    assert ib.shape == (x.shape[1], 6)
    np.testing.assert_allclose(ib.T @ ib, np.eye(6), atol=1e-8)
    assert not np.abs(ib[width : 2 * width]).any()  # the std part is untouched
    assert np.abs(ib[2 * width : 2 * width + 52, 4:]).any() and not np.abs(ib[2 * width + 52 :]).any()  # mean blendshapes only
    speech = sub.basis(lms, pooling, 52)
    np.testing.assert_allclose(speech.T @ ib, 0, atol=1e-6)  # orthogonal to the speech directions
    both = join_bases(speech, ib)
    assert both.shape[1] == speech.shape[1] + 6
    assert identity_basis(x, np.arange(3), pooling=pooling, n_landmarks=len(lms), n_blendshapes=52, options=IdentitySubspaceOptions()) is None
    with pytest.raises(ValueError, match="identity subspace"):
        identity_basis(x, np.arange(3), pooling=pooling, n_landmarks=len(lms), n_blendshapes=52, options=opts)

    nets, _ = fit_models("randomized", data, codes, {"e": 1}, {"e": lms}, window_length=t, randomized=RandomizedOptions(hidden=[32], seed=0),
                         subspace=sub, identity=opts, identity_code=0)
    net = nets["e"]
    # moving a window along an identity direction of the mean shape does not change its score
    direction = ib[:width, 0].reshape(len(lms), 3)
    moved = wins[:, :, lms] + 0.05 * direction[None, None]
    np.testing.assert_allclose(net.score(moved, blend), net.score(wins[:, :, lms], blend), atol=1e-3)
    with pytest.raises(ValueError, match="identity_code"):
        fit_models("randomized", data, codes, {"e": 1}, {"e": lms}, window_length=t, identity=opts)
