"""Blendshape categories a model must not read (model.ignored_blendshapes, models/ignored_inputs.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fold_checks import assert_folded_network_exports
from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES
from realtime_fer.models.ignored_inputs import GAZE_BLENDSHAPES, blendshape_indices, ignored_blendshape_basis
from realtime_fer.models.network import pool
from realtime_fer.models.randomized import RandomizedOptions
from realtime_fer.training.config import ModelOptions
from realtime_fer.training.features import PooledSet
from realtime_fer.training.fitting import fit_models

N, T = 240, 6
SUBSET = [61, 291, 13, 159]
GAZE = blendshape_indices(["gaze"])
SMILE = BLENDSHAPE_NAMES.index("mouthSmileLeft")


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows whose label shows both in a smile and in the eyes looking down (a cue the
    photos have and video does not)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2, N)
    wins = rng.normal(0, 0.01, size=(N, T, 468, 3)).astype(np.float32)
    blend = rng.uniform(0, 0.2, size=(N, T, 52))
    blend[:, :, SMILE] += 0.2 * codes[:, None]
    blend[:, :, BLENDSHAPE_NAMES.index("eyeLookDownLeft")] += 0.3 * codes[:, None]
    blend[:, :, BLENDSHAPE_NAMES.index("eyeLookDownRight")] += 0.3 * codes[:, None]
    return wins, blend.astype(np.float32), codes


def test_gaze_names_the_eight_eye_look_categories_and_unknown_names_fail() -> None:
    assert len(GAZE_BLENDSHAPES) == 8 and all(n.startswith("eyeLook") for n in GAZE_BLENDSHAPES)
    assert GAZE == sorted(BLENDSHAPE_NAMES.index(n) for n in GAZE_BLENDSHAPES)
    assert blendshape_indices(["gaze", "eyeLookInLeft", "jawOpen"]) == sorted(GAZE + [BLENDSHAPE_NAMES.index("jawOpen")])
    with pytest.raises(ValueError, match="unknown blendshape 'eyeRoll'"):
        blendshape_indices(["eyeRoll"])
    with pytest.raises(ValueError, match="unknown blendshape"):
        ModelOptions(blendshapes=True, ignored_blendshapes=["gaze", "smile"])
    with pytest.raises(ValueError, match="needs model.blendshapes"):
        ModelOptions(blendshapes=False, ignored_blendshapes=["gaze"])
    assert ModelOptions(blendshapes=True, ignored_blendshapes=["gaze"]).ignored_blendshapes == ["gaze"]


def test_the_basis_picks_the_categories_in_every_pooling_part() -> None:
    pooling = ("mean", "std")
    b = ignored_blendshape_basis(len(SUBSET), pooling, 52, GAZE)
    width = 3 * len(SUBSET) * len(pooling)
    assert b.shape == (width + 2 * 52, 16)
    np.testing.assert_array_equal(b.T @ b, np.eye(16))
    rows = sorted(np.flatnonzero(b.any(axis=1)))
    assert rows == sorted([width + i for i in GAZE] + [width + 52 + i for i in GAZE])
    assert ignored_blendshape_basis(len(SUBSET), pooling, 52, []) is None
    assert ignored_blendshape_basis(len(SUBSET), pooling, 0, GAZE) is None


@pytest.mark.parametrize("half", [False, True])
def test_a_network_fitted_blind_to_gaze_never_reads_it(half: bool) -> None:
    wins, blend, codes = _data()
    pooling = ("mean", "std")
    data = PooledSet(pool(wins, pooling, np.float32, blend), np.arange(N), pooling, 52)
    opts = RandomizedOptions(hidden=[32], seed=1, weight_dtype="float16" if half else "float32")
    kwargs = dict(window_length=T, randomized=opts, symmetric=True, symmetric_parts="blendshape_sums")
    plain, _ = fit_models("randomized", data, codes, {"e": 1}, {"e": SUBSET}, **kwargs)
    blind, _ = fit_models("randomized", data, codes, {"e": 1}, {"e": SUBSET}, ignored_blendshapes=GAZE, **kwargs)
    w = wins[:, :, SUBSET]
    looking = blend.copy()
    looking[:, :, GAZE] = np.random.default_rng(5).uniform(0, 1, size=(N, T, len(GAZE)))
    # the plain model reads the eyes looking down; the blind one gives them no weight at all
    assert np.abs(plain["e"].score(w, looking) - plain["e"].score(w, blend)).mean() > 0.05
    np.testing.assert_allclose(blind["e"].score(w, looking), blind["e"].score(w, blend), atol=1e-4)
    # ... and still reads the smile
    smiling = blend.copy()
    smiling[:, :, SMILE] += 0.2
    assert np.abs(blind["e"].score(w, smiling) - blind["e"].score(w, blend)).mean() > 0.05
    assert_folded_network_exports(blind["e"], w[:16], looking[:16], half)
