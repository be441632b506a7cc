"""Fuzzing the YAML config loaders: random structures, types, unknown keys and bad values.

The runtime, training and pruning loaders must either return a config or raise a
:class:`~realtime_fer.errors.ConfigError` (a FerError) with a one-line message; any other
exception (a TypeError out of a sort, a ValueError out of a date, a RecursionError) is a bug.
Cases: mutations of the shipped configs (a value replaced, a key deleted, an unknown key
added, at any depth), free-form YAML documents, and raw bytes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from realtime_fer.errors import ConfigError, FerError
from realtime_fer.pipeline.config import load_runtime_config
from realtime_fer.training.config import load_train_config
from realtime_fer.training.prune_config import load_prune_config
from test_fuzz_common import fuzz, assert_clear_error, fuzz_report, tried  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
LOADERS: dict[str, tuple[Callable[[Path], Any], Path]] = {
    "runtime": (load_runtime_config, ROOT / "configs" / "runtime_default.yaml"),
    "train": (load_train_config, ROOT / "configs" / "train_default.yaml"),
    "prune": (load_prune_config, ROOT / "configs" / "prune_default.yaml"),
}

# Scalars YAML can produce, including the awkward ones: huge ints, NaN/inf, dates, odd strings.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "~", "../../etc/passwd", "/dev/null", "auto", "cpu", "cuda", "gpu", "tcp", "mean", "happy", "anger", "0", "-1", "1e400", "\x00", "é", "2001-02-30"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-3, 3)), inner, max_size=4)), max_leaves=12)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts/lists of ``data`` (the root is ``()``)."""
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(data: dict, draw: st.DrawFn) -> dict:
    doc = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "delete", "unknown_key"]))
        parent: Any = doc
        for k in path[:-1]:
            parent = parent[k]
        if not path:  # the root: replace it or add a key
            if op == "replace":
                doc = draw(values)
                if not isinstance(doc, dict):
                    return doc  # type: ignore[return-value]
            else:
                doc[draw(st.text(min_size=1, max_size=10))] = draw(values)
            continue
        target = parent[path[-1]]
        if op == "replace":
            parent[path[-1]] = draw(values)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(target, dict):
            target[draw(st.one_of(st.text(min_size=1, max_size=10), st.integers(), st.booleans()))] = draw(values)
        else:
            parent[path[-1]] = draw(values)
    return doc


@st.composite
def documents(draw: st.DrawFn, base: dict) -> str:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "free", "text"]))
    if kind == "mutated":
        return yaml.safe_dump(_mutate(base, draw), allow_unicode=True)
    if kind == "free":
        return yaml.safe_dump(draw(values), allow_unicode=True)
    # raw YAML text, including flow/anchor/tag syntax and deep nesting
    pieces = st.sampled_from(["[", "]", "{", "}", ":", " ", "\n", "- ", "&a ", "*a", "!!python/object:os.system ", "!!binary ", "? ", "'", '"', "#", "2001-02-30", "0x", ".nan", "~", "capture:", "  queue_size: ", "model:", "\t", "%YAML 1.1\n", "---\n"])
    return "".join(draw(st.lists(pieces, max_size=40))) + draw(st.sampled_from([""] * 8 + ["[" * 2000, "a: " + "[" * 300 + "]" * 300]))


def _check(kind: str, text: str | bytes, tmp_path: Path) -> None:
    loader, _ = LOADERS[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        loader(path)
    except FerError as exc:
        assert_clear_error(exc)
        tried(f"config ({kind})", "rejected")
        return
    tried(f"config ({kind})", "accepted")


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_config_loaders_reject_bad_yaml_with_a_config_error(kind: str, tmp_path: Path) -> None:
    base = yaml.safe_load(LOADERS[kind][1].read_text(encoding="utf-8")) or {}

    @fuzz(150)
    @given(documents(base))
    def run(text: str) -> None:
        _check(kind, text, tmp_path)

    run()


@fuzz(150)
@given(data=st.binary(max_size=300), kind=st.sampled_from(sorted(LOADERS)))
def test_config_loaders_reject_random_bytes(data: bytes, kind: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    _check(kind, data, tmp_path_factory.mktemp("cfg", numbered=True))


def test_the_shipped_configs_still_load() -> None:
    """The fuzzers' starting points are valid (else every mutation would be trivially rejected)."""
    for loader, path in LOADERS.values():
        loader(path)


def test_wrong_typed_keys_name_the_key(tmp_path: Path) -> None:
    """A few hand-picked cases the fuzzer also hits, with the message they must give."""
    cases = {
        "capture: {queue_size: .nan}\n": "capture.queue_size",
        "no_face_interval_s: .nan\n": "no_face_interval_s",
        "capture: {open_timeout_s: .inf}\n": "capture.open_timeout_s",
        "1: 2\nfoo: 3\n": "unknown key",
        "when: 2001-02-30\n": "not valid YAML",
        "a: " + "[" * 5000 + "\n": "not valid YAML",
    }
    for text, fragment in cases.items():
        path = tmp_path / "c.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_runtime_config(path)
        assert_clear_error(info.value, fragment)
