"""Group-aware splits: all windows of a subject (or of one image) land in the same split."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np


def group_split(groups: Sequence[str], fractions: Sequence[float], seed: int = 0) -> np.ndarray:
    """Assign each item to a split by its group.

    The assignment of a group depends only on its id and ``seed`` (a hash mapped to [0, 1)),
    not on which other groups exist, so adding a dataset never moves another dataset's
    images between splits, and validation figures stay comparable across training sets.

    Args:
        groups: group id of every item (e.g. ``"ckplus48:S005"``).
        fractions: share of groups for splits 1..k; split 0 takes the rest.
        seed: salt of the hash.

    Returns:
        (N,) int split index per item.
    """
    uniq, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    u = np.array([_unit_hash(f"{seed}:{g}") for g in uniq])
    assign = np.zeros(len(uniq), np.int64)
    edges = np.cumsum([0.0, *fractions])
    for k in range(1, len(edges)):
        assign[(u >= edges[k - 1]) & (u < edges[k])] = k
    return assign[inverse]


def _unit_hash(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def group_kfold(groups: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """(N,) fold index in [0, k) per item, groups kept together, groups shuffled by ``seed``."""
    uniq, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    if len(uniq) < k:
        raise ValueError(f"{k} folds need at least {k} groups, got {len(uniq)}")
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of_group = np.empty(len(uniq), np.int64)
    fold_of_group[order] = np.arange(len(uniq)) % k
    return fold_of_group[inverse]
