"""``model.blendshape_model``'s own hyperparameters: validated, and the ones given replace the
landmark models' in the blendshape model's fit (and only there)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_fer.models.blendshape_fusion import BlendshapeModelOptions
from realtime_fer.models.randomized import RandomizedOptions


@pytest.mark.parametrize("bad", [{"input_scale": 0.0}, {"input_scale": -1.0}, {"ridge": 0.0}, {"ridge": -0.1}, {"attribution_penalty": -1.0}, {"hidden": []}])
def test_bad_blendshape_model_options_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="blendshape_model"):
        BlendshapeModelOptions(enabled=True, **bad)


@pytest.mark.parametrize("given", [{}, {"input_scale": 1.5}, {"ridge": 0.05}, {"input_scale": 0.25, "ridge": 0.01, "attribution_penalty": 0.0}])
def test_the_blendshape_model_fits_with_its_own_hyperparameters(monkeypatch: pytest.MonkeyPatch, given: dict) -> None:
    from realtime_fer.training import fitting

    seen: dict[str, RandomizedOptions] = {}

    class Stop(Exception):
        pass

    def capture(family, data, codes, positives, subsets, **kwargs):  # noqa: ANN001, ANN003
        seen["opts"] = kwargs["randomized"]
        raise Stop

    monkeypatch.setattr(fitting, "fit_models", capture)
    landmark = RandomizedOptions(hidden=[64], input_scale=0.5, ridge=0.003, attribution_penalty=0.1)

    class Data:
        n_blendshapes = 52

    with pytest.raises(Stop):
        fitting.fit_blendshape_fusion({"happy": None}, Data(), np.zeros(4), {"happy": 1}, {"happy": [0]}, rows=np.arange(4), cal_data=Data(), cal_rows=np.arange(4),
                                      cal_codes=np.zeros(4), window_length=24, randomized=landmark, options=BlendshapeModelOptions(enabled=True, hidden=[256], **given))
    opts = seen["opts"]
    assert opts.hidden == [256]
    assert opts.input_scale == given.get("input_scale", 0.5)
    assert opts.ridge == given.get("ridge", 0.003)
    assert opts.attribution_penalty == given.get("attribution_penalty", 0.1)
    assert landmark.input_scale == 0.5 and landmark.ridge == 0.003  # the landmark models' options are not touched
