"""Strict YAML configs (realtime_fer.config_io, realtime_fer.training.config) and the
canonical emotion labels (realtime_fer.labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from realtime_fer.config_io import from_dict, load_yaml, to_dict
from realtime_fer.errors import ConfigError, DataError, FerError
from realtime_fer.labels import EMOTIONS, canonical_label, is_known_label
from realtime_fer.training.config import DataSource, TrainConfig, load_train_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Inner:
    width: int = 3
    mode: Literal["fast", "slow"] = "fast"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError("width must be >= 1")


@dataclass
class Outer:
    name: str = "x"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    items: list[Inner] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    table: dict[str, list[int]] = field(default_factory=dict)
    path: str | None = None


def test_nested_dataclasses_are_built() -> None:
    cfg = from_dict(
        Outer,
        {
            "name": "n",
            "flag": True,
            "inner": {"width": 5, "mode": "slow", "scale": 2},
            "maybe": {"width": 7},
            "items": [{"width": 1}, {}],
            "sizes": [1, 2],
            "table": {"a": [1], 3: [2, 3]},
        },
    )
    assert cfg.inner == Inner(5, "slow", 2.0) and isinstance(cfg.inner.scale, float)
    assert cfg.maybe == Inner(7) and cfg.items == [Inner(1), Inner()]
    assert cfg.sizes == [1, 2] and cfg.table == {"a": [1], "3": [2, 3]} and cfg.path is None
    assert from_dict(Outer, None) == Outer() and from_dict(Outer, {"maybe": None}).maybe is None
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, match",
    [
        ({"nmae": "x"}, r"where: unknown key\(s\) 'nmae'; allowed: flag, inner, items, maybe, name, path, sizes, table"),
        ({"inner": {"widht": 2}}, r"where\.inner: unknown key\(s\) 'widht'; allowed: mode, scale, width"),
        ({"items": [{}, {"wdth": 1}]}, r"where\.items\[1\]: unknown key\(s\) 'wdth'"),
        ({"maybe": {"zzz": 1}}, r"where\.maybe: unknown key\(s\) 'zzz'"),
        ({"name": 5}, r"where\.name: expected a string, got 5"),
        ({"flag": "yes please"}, r"where\.flag: expected true/false"),
        ({"inner": {"width": 2.5}}, r"where\.inner\.width: expected an integer, got 2\.5"),
        ({"inner": {"width": True}}, r"where\.inner\.width: expected an integer, got True"),
        ({"inner": {"scale": "big"}}, r"where\.inner\.scale: expected a number"),
        ({"inner": {"scale": False}}, r"where\.inner\.scale: expected a number"),
        ({"inner": {"mode": "medium"}}, r"where\.inner\.mode: must be one of 'fast', 'slow', got 'medium'"),
        ({"inner": 3}, r"where\.inner: expected a mapping, got int"),
        ({"sizes": 3}, r"where\.sizes: expected a list, got int"),
        ({"sizes": [1, "2"]}, r"where\.sizes\[1\]: expected an integer"),
        ({"table": [1]}, r"where\.table: expected a mapping, got list"),
        ({"table": {"a": ["x"]}}, r"where\.table\.a\[0\]: expected an integer"),
        ({"path": 3}, r"where\.path: expected a string"),
        ({"inner": {"width": 0}}, r"where\.inner: width must be >= 1"),
    ],
)
def test_strictness(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        from_dict(Outer, data, where="where")
    assert isinstance(err.value, FerError) and err.value.exit_code == 2


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="config: expected a mapping, got list"):
        from_dict(Outer, [1, 2])
    with pytest.raises(TypeError):
        from_dict(dict, {})


def test_load_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path)  # a folder
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n  family: x\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping at the top level, got list"):
        load_yaml(listing)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="got int"):
        load_yaml(scalar)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(ConfigError):
        load_yaml(binary)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_yaml(empty) == {}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_train_config_from_yaml(tmp_path: Path) -> None:
    cfg = load_train_config(
        _write(
            tmp_path,
            """
data:
  sources:
    - {path: /data/a, licence: "research only", name: a}
    - path: /data/b
  validation_fraction: 0.2
landmarker: {pad_fraction: 0.3}
window: {length: 6, hop: 3}
model:
  family: torch
  emotions: [Angry, happiness, surprised]
  landmark_subsets: {Happy: [1, 2, 3]}
  randomized: {hidden: [64, 32], activation: relu}
  torch: {epochs: 2}
""",
        )
    )
    assert cfg.data.sources == [DataSource("/data/a", "research only", "a"), DataSource("/data/b")]
    assert cfg.data.validation_fraction == 0.2 and cfg.landmarker.pad_fraction == 0.3
    assert cfg.window.length == 6 and cfg.window.hop == 3
    assert cfg.model.family == "torch" and cfg.model.emotions == ["anger", "happy", "surprise"]
    assert cfg.model.landmark_subsets == {"happy": [1, 2, 3]}
    assert cfg.model.randomized.hidden == [64, 32] and cfg.model.randomized.activation == "relu"
    assert cfg.model.torch.epochs == 2
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("data: {sources: [{path: x}]}\nmodel: {randomized: {hiden: [3]}}\n", r"train\.yaml\.model\.randomized: unknown key\(s\) 'hiden'"),
        ("data: {sources: [{path: x, licence: 3}]}\n", r"train\.yaml\.data\.sources\[0\]\.licence: expected a string"),
        ("data: {sources: [{path: x}]}\nmodel: {family: xgboost}\n", r"train\.yaml\.model\.family: must be one of 'randomized', 'torch'"),
        ("data: {sources: [{path: x}]}\nmodel: {randomized: {weight_dtype: int8}}\n", r"weight_dtype: must be one of 'float16', 'float32'"),
        ("data: {sources: [{path: x}]}\nwindow: {length: 0}\n", r"train\.yaml\.window: window length must be >= 1"),
        ("data: {sources: [{path: x}], validation_fraction: 0.6, calibration_fraction: 0.5}\n", r"train\.yaml\.data: validation_fraction \+ calibration_fraction"),
        ("data: {sources: [{path: x}]}\nmodel: {emotions: [happy, hapy]}\n", r"train\.yaml\.model: unknown emotion label 'hapy'"),
        ("data: {sources: [{path: x}]}\nmodel: {pooling: [median]}\n", r"train\.yaml\.model: unknown pooling 'median'"),
        ("data: {sources: [{path: x}]}\nmodel: {speech_subspace: {rank: 8, ranks: {suprise: 4}}}\n", r"train\.yaml\.model\.speech_subspace: unknown emotion label 'suprise'"),
        ("data: {sources: [{path: x}]}\nmodel: {speech_subspace: {ranks: {surprise: four}}}\n", r"train\.yaml\.model\.speech_subspace\.ranks\.surprise: expected an integer, got 'four'"),
        ("data: {sources: [{path: x}]}\nlandmarker: {delegate: tpu}\n", r"train\.yaml\.landmarker\.delegate: must be one of 'cpu', 'gpu'"),
        ("data: {sources: []}\n", r"data\.sources lists no dataset folder"),
        ("", r"data\.sources lists no dataset folder"),
        ("- just\n- a list\n", r"must hold a mapping"),
    ],
    ids=["unknown-nested-key", "wrong-type", "literal", "literal-nested", "post-init", "fractions", "unknown-emotion", "pooling", "speech-rank-emotion", "speech-rank-type", "delegate", "no-sources", "empty", "list"],
)
def test_train_config_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_train_config(_write(tmp_path, text))


def test_shipped_training_config_loads() -> None:
    cfg = load_train_config(PROJECT_ROOT / "configs" / "train_default.yaml")
    assert cfg.data.sources and all(s.licence != "unknown" for s in cfg.data.sources)
    assert set(cfg.model.emotions) <= set(EMOTIONS)


def test_the_recipe_pruning_config_follows_the_shipped_recipe() -> None:
    """configs/prune_shipped_recipe.yaml is the shipped training recipe without its subsets and with
    four windows per photo: any other difference would re-prune another recipe."""
    from realtime_fer.training.prune_config import load_prune_config

    train = to_dict(load_train_config(PROJECT_ROOT / "configs" / "train_default.yaml"))
    prune = to_dict(load_prune_config(PROJECT_ROOT / "configs" / "prune_shipped_recipe.yaml"))
    assert prune["model"]["landmark_subsets"] == {} and prune["data"]["motion"]["copies"] == 4
    for part in ("data", "model", "window", "landmarker"):
        a, b = dict(train[part]), dict(prune[part])
        if part == "data":
            a["motion"], b["motion"] = {**a["motion"], "copies": None}, {**b["motion"], "copies": None}
        if part == "model":
            a.pop("landmark_subsets"), b.pop("landmark_subsets")
        assert a == b, part


# -- labels -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, label",
    [
        ("anger", "anger"), ("Angry", "anger"), ("MAD", "anger"), ("ang", "anger"),
        ("contemptuous", "contempt"), ("Disgusted", "disgust"), ("dis", "disgust"),
        ("fearful", "fear"), ("afraid", "fear"), ("scared", "fear"),
        ("happiness", "happy"), ("Joy", "happy"), ("hap", "happy"), (" happy\n", "happy"),
        ("calm", "neutral"), ("NEU", "neutral"),
        ("sadness", "sad"), ("sa", "sad"),
        ("surprised", "surprise"), ("su", "surprise"), ("sur_prise", "surprise"), ("Sur-prised", "surprise"),
    ],
)
def test_canonical_label_synonyms(name: str, label: str) -> None:
    assert canonical_label(name) == label
    assert is_known_label(name)


def test_canonical_labels_map_to_themselves() -> None:
    assert EMOTIONS == ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert [canonical_label(e) for e in EMOTIONS] == list(EMOTIONS)


@pytest.mark.parametrize("name", ["happyish", "", "unknown", "love", "0"])
def test_unknown_label(name: str) -> None:
    assert not is_known_label(name)
    with pytest.raises(DataError) as err:
        canonical_label(name)
    msg = str(err.value)
    assert f"unknown emotion label {name!r}" in msg
    assert ", ".join(EMOTIONS) in msg and "synonyms" in msg
