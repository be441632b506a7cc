"""Folds of labelled clips by person, for recipes that train on some of the labelled video.

The generalisation report can add labelled clips to training (``--clips-in-training``) and
still score every clip with a model that never saw its person: the clips' people are split
into folds, each fold's clips are scored by a model trained on the other folds' clips (see
:func:`realtime_fer.training.report.train_and_score_folds`).

Who is in a clip comes from an actors file, a YAML map ``"<folder>/<file name>": person``
(``configs/clip_actors.yaml`` names the people of ``../shared/data/video``); a clip the map
does not name is its own person. Folds are assigned deterministically so that each fold's
emotions are spread over the folds: a fold that held out every clip of an emotion would train
its model without that emotion's video.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from realtime_fer.config_io import load_yaml
from realtime_fer.data.layouts import SampleRef
from realtime_fer.errors import ConfigError

log = logging.getLogger(__name__)


def clip_key(ref: SampleRef) -> str:
    """A clip's key in an actors file: ``"<folder>/<file name>"``, e.g. ``mead/happy.mp4``."""
    return f"{ref.path.parent.name}/{ref.path.name}"


def load_clip_actors(path: str | Path | None) -> dict[str, str]:
    """The actors file ``path`` as ``{clip key: person}`` (empty for ``None``).

    Raises:
        ConfigError: the file is missing, unreadable or not a map of strings.
    """
    if path is None:
        return {}
    table = load_yaml(path)
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in table.items()):
        raise ConfigError(f"{path}: expected a map '<folder>/<file name>: person'")
    return {k: str(v) for k, v in table.items()}


def person_of(ref: SampleRef, actors: dict[str, str]) -> str:
    """The person in clip ``ref``: from ``actors``, else the clip itself (its own person)."""
    return actors.get(clip_key(ref), f"clip:{clip_key(ref)}")


def assign_folds(refs: Sequence[SampleRef], actors: dict[str, str], n_folds: int) -> list[list[SampleRef]]:
    """The clips ``refs`` in ``n_folds`` folds, every person's clips in one fold.

    People are placed one by one (most clips first, then by name) in the fold that holds the
    fewest of their emotions already, then the fewest clips, then the lowest index: the same
    clips always give the same folds, and an emotion's clips spread over as many folds as it
    has people.

    Raises:
        ConfigError: fewer than two folds, or more folds than people.
    """
    people: dict[str, list[SampleRef]] = {}
    for ref in refs:
        people.setdefault(person_of(ref, actors), []).append(ref)
    unnamed = sorted(p for p in people if p.startswith("clip:"))
    if unnamed:
        log.warning("no person named for %d clip(s) (%s); each is taken as its own person", len(unnamed), ", ".join(u[5:] for u in unnamed[:5]))
    if n_folds < 2:
        raise ConfigError(f"clips in training need at least 2 folds, got {n_folds}")
    if n_folds > len(people):
        raise ConfigError(f"{n_folds} folds but only {len(people)} people in the clips")
    folds: list[list[SampleRef]] = [[] for _ in range(n_folds)]
    for person in sorted(people, key=lambda p: (-len(people[p]), p)):
        labels = {r.label for r in people[person]}
        best = min(range(n_folds), key=lambda k: (sum(r.label in labels for r in folds[k]), len(folds[k]), k))
        folds[best].extend(people[person])
    return folds
