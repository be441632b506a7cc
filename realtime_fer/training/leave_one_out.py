"""Leave-one-actor-out on labelled clips, for recipes that train on video.

When labelled video is part of training, the video protocol must not score a clip whose actor
the model has seen. For every actor (group) of the clips, this trains the configured recipe on
its sources **plus the clips of every other actor** (added to the training split whole), writes
that fold's bundle, and scores the held-out actor's clips through the real path
(:func:`realtime_fer.training.evaluate.evaluate`). The folds' ``video`` sections are merged into
one (every clip scored exactly once, by a model that never saw its actor).

Actors come from the clips' names (MEAD ``W009_...``, CREMA-D ``1001_...``, RAVDESS ``...-12``)
or from a groups file, a YAML map ``file name -> actor`` (for folders whose names carry none).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.config_io import load_yaml
from realtime_fer.data.extract import ExtractedSample, extract_dataset, with_blendshapes
from realtime_fer.data.layouts import Discovery, discover
from realtime_fer.errors import ConfigError, DataError
from realtime_fer.features.adaptation import AdaptationOptions
from realtime_fer.models.smoothing import SmoothingOptions
from realtime_fer.training.config import TrainConfig
from realtime_fer.training.evaluate import evaluate
from realtime_fer.training.trainer import FitResult, fit_and_validate, prepare, subsets_for, write_trained_bundle
from realtime_fer.training.video_protocol import summarise

log = logging.getLogger(__name__)


def clip_groups(found: Discovery, groups_file: str | Path | None) -> Discovery:
    """``found`` with each sample's group from ``groups_file`` (file name -> group), when given.

    Raises:
        ConfigError: the file is not a map, or leaves a clip without a group.
    """
    if groups_file is None:
        return found
    table = load_yaml(groups_file)
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in table.items()):
        raise ConfigError(f"{groups_file}: expected a map 'file name: group'")
    missing = [s.path.name for s in found.samples if s.path.name not in table]
    if missing:
        raise ConfigError(f"{groups_file}: no group for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    samples = [dataclasses.replace(s, group=str(table[s.path.name])) for s in found.samples]
    return dataclasses.replace(found, samples=samples)


def merge_video(sections: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``video`` section from the folds' (disjoint clips): clips joined, confusion matrices
    summed, the figures recomputed by :func:`~realtime_fer.training.video_protocol.summarise`."""
    true = list(dict.fromkeys(e for s in sections for e in s["confusion"]["true"]))
    predicted = sections[0]["confusion"]["predicted"]
    win = np.zeros((len(true), len(predicted)), np.int64)
    clip = np.zeros_like(win)
    clips: dict[str, Any] = {}
    for s in sections:
        for i, e in enumerate(s["confusion"]["true"]):
            win[true.index(e)] += np.asarray(s["confusion"]["windows"][i])
            clip[true.index(e)] += np.asarray(s["confusion"]["clips"][i])
        clips.update(s["clips"])
    confusion = {"true": true, "predicted": predicted, "windows": win.tolist(), "clips": clip.tolist()}
    return summarise(clips, confusion, [p for s in sections for p in s["no_windows"]], sections[0]["smoothing"])


def train_with_clips(config: TrainConfig, clips: list[ExtractedSample], out: Path, meta: dict[str, Any], *, weight: int = 1,
                     subsets: dict[str, list[int]] | None = None) -> FitResult:
    """Train ``config``'s recipe on its sources plus the labelled ``clips`` (source ``clips``,
    each window counted ``weight`` times), write the bundle to ``out`` with ``meta`` in its
    training record, and return the fit. ``subsets``: fixed landmark subsets (an emotion
    without one gets the config's default)."""
    prep = prepare(config, progress=False, extra_train=clips, extra_name="clips", extra_weight=weight)
    fit = fit_and_validate(config, prep, subsets_for(config, prep.emotions, subsets))
    write_trained_bundle(out, config, prep, fit, config.model.family, meta)
    return fit


def leave_one_group_out(
    data_dir: str | Path,
    config: TrainConfig,
    *,
    groups_file: str | Path | None = None,
    smoothing: SmoothingOptions | None = None,
    adaptation: AdaptationOptions | None = None,
    device: str = "auto",
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and score one fold per actor of the clips in ``data_dir`` (see the module docstring).

    Returns:
        ``{"video": merged video section, "folds": {actor: {"clips", "video", "bundle_metrics"}}, "config": ...}``

    Raises:
        DataError: fewer than two actors, or no clip.
    """
    found = clip_groups(discover(data_dir), groups_file)
    res = extract_dataset(found, config.data.cache_dir, with_blendshapes(None, config.model.blendshapes), workers=workers, progress=progress)
    clips = [s for s in res.samples if s.ref.kind != "image"]
    actors = sorted({s.ref.group for s in clips})
    if len(actors) < 2:
        raise DataError(f"leave-one-actor-out needs clips of at least two actors in {data_dir}; found {actors or 'none'} (name clips by actor, or pass a groups file)")
    folds: dict[str, Any] = {}
    sections = []
    with tempfile.TemporaryDirectory(prefix="fer_loao_") as tmp:
        for actor in actors:
            held = [s for s in clips if s.ref.group == actor]
            train = [s for s in clips if s.ref.group != actor]
            log.info("fold %s: training with %d clips of %d other actors, scoring %d clips", actor, len(train), len(actors) - 1, len(held))
            bundle = Path(tmp) / f"fold_{len(folds)}"
            fit = train_with_clips(config, train, bundle, {"leave_one_out": {"held_out_actor": actor}})
            fold_found = dataclasses.replace(found, samples=[s.ref for s in held])
            m = evaluate(fold_found, bundle, cache_dir=config.data.cache_dir, device=device, workers=workers, progress=False, smoothing=smoothing, adaptation=adaptation)
            if m.get("video") is None:
                continue
            sections.append(m["video"])
            folds[actor] = {"clips": [str(s.ref.path) for s in held], "video": m["video"], "rafdb_ckplus_validation": {k: v["emotions"] for k, v in fit.by_source.items()}}
    if not sections:
        raise DataError(f"no clip of {data_dir} could be scored")
    return {"video": merge_video(sections), "folds": folds, "actors": actors, "data": {"path": str(data_dir), "layout": res.layout, "failed": [{"path": p, "reason": r} for p, r in res.failed]}}
