"""The one rule for float16-representable weights (realtime_fer.models.half)."""

import numpy as np

from realtime_fer.models.half import is_half, round_to_half


def test_rounding_lands_on_the_half_grid_in_the_asked_precision():
    x = np.random.default_rng(0).normal(size=(40, 7))
    single, double = round_to_half(x), round_to_half(x, np.float64)
    assert single.dtype == np.float32 and double.dtype == np.float64
    assert np.array_equal(single, double.astype(np.float32))
    assert np.array_equal(round_to_half(single), single)  # idempotent
    assert np.abs(single - x).max() <= np.abs(x).max() * 2.0**-11  # float16's half-ulp
    assert is_half(single)


def test_only_float32_values_on_the_grid_are_half():
    x = round_to_half(np.linspace(-3, 3, 101))
    assert is_half(x)
    assert not is_half(x.astype(np.float64))  # the exporter stores float32 tensors only
    off = x.copy()
    off[50] = np.float32(1.0) + np.float32(2.0**-20)  # float32, not float16-representable
    assert not is_half(off)
