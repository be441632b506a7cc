"""Group-aware splits: all windows of a subject (or of one image) land in the same split."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def group_split(groups: Sequence[str], fractions: Sequence[float], seed: int = 0) -> np.ndarray:
    """Assign each item to a split by its group.

    Args:
        groups: group id of every item (e.g. ``"ckplus48:S005"``).
        fractions: share of groups for splits 1..k; split 0 takes the rest.
        seed: the shuffle of the groups.

    Returns:
        (N,) int split index per item.
    """
    uniq, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    assign = np.zeros(len(uniq), np.int64)
    start = 0
    for k, frac in enumerate(fractions, start=1):
        n = int(round(frac * len(uniq)))
        assign[order[start : start + n]] = k
        start += n
    return assign[inverse]


def group_kfold(groups: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """(N,) fold index in [0, k) per item, groups kept together, groups shuffled by ``seed``."""
    uniq, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    if len(uniq) < k:
        raise ValueError(f"{k} folds need at least {k} groups, got {len(uniq)}")
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of_group = np.empty(len(uniq), np.int64)
    fold_of_group[order] = np.arange(len(uniq)) % k
    return fold_of_group[inverse]
