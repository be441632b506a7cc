"""The generalisation report: a training recipe judged on every labelled set, over seeds.

A recipe (a training config, optionally with fixed per-emotion landmark subsets and overrides)
is trained once per seed; every seed's bundle is then scored through the real path
(:func:`realtime_fer.training.evaluate.evaluate`: landmark cache, normalisation, windows,
onnxruntime, smoothing, the published ``top``) on each labelled video folder, and its held-out
photos (the training config's validation split, per source: RAF-DB validation, CK+ validation)
give AUCs and balanced accuracies. Figures are then summarised over seeds as mean, standard
deviation (``ddof=1``), minimum and maximum.

A seed sets both the random layers (``model.randomized.seed``) and the window / motion sampling
(``seed``): the spread then covers everything that is drawn at random in a recipe.

Report schema (JSON)::

    {"recipe": {...}, "seeds": [0, 1, 2],
     "runs": [{"seed": 0, "sets": {"<set>": {<figures>}}}],
     "summary": {"<set>": {"<figure>": {"mean", "sd", "min", "max", "values"}}}}

Video sets (one per folder, plus ``video`` = all folders together) have ``clips_right``,
``n_clips``, ``clips_decided`` (clips with at least one published decision),
``mean_window_recall`` and ``recall.<emotion>``; photo sets (``photos.<source>``) have
``auc.<emotion>``, ``balanced.<emotion>`` and ``accuracy`` (the decision rule on windows).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.config_io import from_dict, to_dict
from realtime_fer.data.extract import extract_dataset, with_blendshapes
from realtime_fer.data.layouts import discover
from realtime_fer.errors import ConfigError
from realtime_fer.labels import EMOTIONS
from realtime_fer.models.bundle import load_bundle
from realtime_fer.models.smoothing import SmoothingOptions
from realtime_fer.training.clip_folds import assign_folds, clip_key
from realtime_fer.training.config import TrainConfig
from realtime_fer.training.evaluate import evaluate
from realtime_fer.training.leave_one_out import merge_video, train_with_clips
from realtime_fer.training.trainer import fit_and_validate, prepare, subsets_for, write_trained_bundle

log = logging.getLogger(__name__)

VIDEO_ALL = "video"
"""Name of the set that joins every video folder."""


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """``config`` with dotted keys replaced (``{"model.randomized.ridge": 0.01}``), validated
    as the YAML loader validates.

    Raises:
        ConfigError: a key names no field, or a value has the wrong type.
    """
    data = to_dict(config)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            if node.get(p) is None:  # an optional section left out (e.g. ``landmarker``)
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ConfigError(f"overrides: {key}: {p} is a value, not a section")
        node[parts[-1]] = value
    return from_dict(TrainConfig, data, where="overrides")


def seeded(config: TrainConfig, seed: int) -> TrainConfig:
    """The recipe at ``seed``: random layers and window/motion sampling both drawn from it."""
    model = dataclasses.replace(config.model, randomized=dataclasses.replace(config.model.randomized, seed=seed))
    return dataclasses.replace(config, model=model, seed=seed)


def video_figures(video: dict[str, Any] | None) -> dict[str, Any]:
    """The report's figures of one ``video`` section of :func:`evaluate` (``None``: no clip)."""
    if not video:
        return {"n_clips": 0, "clips_right": 0, "clips_decided": 0, "mean_window_recall": None}
    out: dict[str, Any] = {
        "n_clips": int(video["n_clips"]),
        "clips_right": int(video["clips_right"]),
        "clips_decided": int(video["n_clips_scored"]),
        "mean_window_recall": video["mean_window_recall"],
    }
    for e, r in video["window_recall"].items():
        out[f"recall.{e}"] = float(r)
    out["clips"] = {Path(k).name: {"label": c["label"], "vote": c["vote"], "windows": c["windows"]} for k, c in video["clips"].items()}
    return out


def joined_video(sets: dict[str, dict[str, Any]], videos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All video folders as one set: clips counted together, window recall per emotion over
    every clip of that emotion (windows pooled), and the mean over the emotions present."""
    hits: dict[str, float] = {}
    total: dict[str, int] = {}
    for video in videos.values():
        if not video:
            continue
        for c in video["clips"].values():
            n = int(c["windows"])
            total[c["label"]] = total.get(c["label"], 0) + n
            hits[c["label"]] = hits.get(c["label"], 0.0) + c["share"].get(c["label"], 0.0) * n
    recall = {e: hits[e] / total[e] for e in EMOTIONS if total.get(e)}
    out: dict[str, Any] = {
        "n_clips": sum(s["n_clips"] for s in sets.values()),
        "clips_right": sum(s["clips_right"] for s in sets.values()),
        "clips_decided": sum(s["clips_decided"] for s in sets.values()),
        "mean_window_recall": float(np.mean(list(recall.values()))) if recall else None,
    }
    out.update({f"recall.{e}": r for e, r in recall.items()})
    return out


def photo_figures(by_source: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``photos.<source>`` sets from a fit's (or a manifest's) validation metrics per source."""
    out: dict[str, dict[str, Any]] = {}
    for source, m in by_source.items():
        figs: dict[str, Any] = {}
        for e, em in m["emotions"].items():
            if em.get("auc") is not None:
                figs[f"auc.{e}"] = float(em["auc"])
            if em.get("balanced_accuracy") is not None and em.get("n_pos"):
                figs[f"balanced.{e}"] = float(em["balanced_accuracy"])
        if m.get("overall", {}).get("accuracy") is not None:
            figs["accuracy"] = float(m["overall"]["accuracy"])
        out[f"photos.{source}"] = figs
    return out


def manifest_by_source(bundle: Any) -> dict[str, dict[str, Any]]:
    """The per-source validation metrics a bundle's manifest recorded at training time."""
    out: dict[str, dict[str, Any]] = {}
    entries = bundle.manifest.get("emotions", {})
    for e in bundle.emotions:
        for source, em in entries.get(e, {}).get("metrics", {}).get("validation_by_source", {}).items():
            out.setdefault(source, {"emotions": {}})["emotions"][e] = em
    return out


def live_video(bundle_dir: str | Path | None, data_dir: str | Path, *, num_faces: int | None = None, smoothing: SmoothingOptions | None = None) -> dict[str, Any]:
    """A ``video`` section (as :func:`evaluate`'s) from the live recognizer itself, as
    ``realtime-fer analyze`` runs it: every clip of ``data_dir`` through capture, the VIDEO-mode
    landmarker (the runtime defaults, ``num_faces`` when given), tracking, the selector's
    windows in seconds (partial ones included), onnxruntime and smoothing; a clip's windows are
    its published predictions (every face's), its vote the most frequent published ``top``. A
    clip that cannot be decoded is listed in ``failed`` with the reason."""
    from realtime_fer.data.layouts import discover
    from realtime_fer.errors import FerError
    from realtime_fer.pipeline.config import RuntimeConfig
    from realtime_fer.pipeline.recognizer import open_recognizer
    from realtime_fer.pipeline.sinks import ListSink
    from realtime_fer.publish import Prediction
    from realtime_fer.training.video_protocol import video_protocol

    bundle = load_bundle(bundle_dir)
    cfg = RuntimeConfig(model=str(bundle.path), pin_threads=False)
    cfg.explain = dataclasses.replace(cfg.explain, enabled=False)
    if num_faces is not None:
        cfg.landmarker = dataclasses.replace(cfg.landmarker, num_faces=int(num_faces))
    if smoothing is not None:
        cfg.smoothing = smoothing
    refs = discover(data_dir).samples
    failed: list[dict[str, str]] = []
    published: list[str] = []
    clip_rows: dict[int, np.ndarray] = {}
    for i, ref in enumerate(refs):
        sink = ListSink()
        try:
            open_recognizer(str(ref.path), cfg, [sink], bundle=bundle).run()
        except FerError as exc:
            failed.append({"path": str(ref.path), "reason": str(exc)})
            continue
        tops = [m.top for m in sink.messages if isinstance(m, Prediction) and m.top]
        clip_rows[i] = np.arange(len(published), len(published) + len(tops))
        published += tops
    section = video_protocol(refs, clip_rows, np.array(published, dtype=object).astype(str), list(bundle.emotions), cfg.smoothing)
    if section is None:  # no clip could be read
        section = {"clips": {}, "window_recall": {}, "mean_window_recall": None, "clips_right": 0, "n_clips": 0, "n_clips_scored": 0, "no_windows": []}
    section["failed"] = failed
    return section


def score_bundle(bundle_dir: str | Path | None, video_dirs: Sequence[str | Path], *, cache_dir: str | Path, smoothing: SmoothingOptions | None = None, by_source: dict[str, dict[str, Any]] | None = None, live: bool = False, num_faces: int | None = None) -> dict[str, dict[str, Any]]:
    """Every set's figures for one bundle: each video folder through :func:`evaluate` (``live``:
    through the live recognizer, :func:`live_video`), the joined video set, and the photo sets
    of ``by_source`` (default: the bundle's manifest)."""
    sets: dict[str, dict[str, Any]] = {}
    videos: dict[str, dict[str, Any]] = {}
    for d in video_dirs:
        name = Path(d).name
        if live:
            video = live_video(bundle_dir, d, num_faces=num_faces, smoothing=smoothing)
            failed = video["failed"]
        else:
            res = evaluate(d, bundle_dir, cache_dir=cache_dir, progress=False, smoothing=smoothing)
            video, failed = res["video"], res["data"]["failed"]
        videos[name] = video
        sets[name] = video_figures(video)
        if failed:
            sets[name]["failed"] = failed
    if len(video_dirs) > 1:
        sets[VIDEO_ALL] = joined_video(sets, videos)
    sets.update(photo_figures(by_source if by_source is not None else manifest_by_source(load_bundle(bundle_dir))))
    return sets


def train_and_score(config: TrainConfig, seed: int, video_dirs: Sequence[str | Path], *, subsets: dict[str, list[int]] | None = None, smoothing: SmoothingOptions | None = None, keep_bundle: str | Path | None = None, progress: bool = False, live: bool = False, num_faces: int | None = None) -> dict[str, Any]:
    """Train the recipe at ``seed`` (the trainer's own ``prepare`` and ``fit_and_validate``),
    write its bundle (to ``keep_bundle``, else a temporary folder) and score it."""
    cfg = seeded(config, seed)
    prep = prepare(cfg, progress=progress)
    fit = fit_and_validate(cfg, prep, subsets_for(cfg, prep.emotions, subsets))
    with tempfile.TemporaryDirectory(prefix="fer_report_") as tmp:
        out = Path(keep_bundle) if keep_bundle else Path(tmp) / "bundle"
        write_trained_bundle(out, cfg, prep, fit, cfg.model.family)
        sets = score_bundle(out, video_dirs, cache_dir=cfg.data.cache_dir, smoothing=smoothing, by_source=fit.by_source, live=live, num_faces=num_faces)
    return {"seed": seed, "sets": sets, "fit_seconds": round(fit.fit_seconds, 2), "windows_seconds": round(prep.seconds, 2)}


def train_and_score_folds(config: TrainConfig, seed: int, video_dirs: Sequence[str | Path], *, folds: int, clip_weight: int = 1, actors: dict[str, str] | None = None, subsets: dict[str, list[int]] | None = None, smoothing: SmoothingOptions | None = None, keep_bundle: str | Path | None = None) -> dict[str, Any]:
    """The recipe at ``seed`` trained with labelled clips too, each clip scored out of fold.

    The clips of ``video_dirs`` are split by person (``actors``, see
    :mod:`realtime_fer.training.clip_folds`) into ``folds`` folds; per fold the recipe is trained
    on its sources plus every other fold's clips (each of their windows counted ``clip_weight``
    times) and scores the fold's own clips. Each folder's sections are merged over the folds
    (every clip scored once, by a model that never saw its person); the photo figures are the
    folds' means. ``keep_bundle``: folder to keep the folds' bundles in (``fold<K>/``)."""
    cfg = seeded(config, seed)
    refs = {Path(d).name: discover(d) for d in video_dirs}
    every = [r for found in refs.values() for r in found.samples]
    parts = assign_folds(every, actors or {}, folds)
    options = with_blendshapes(None, cfg.model.blendshapes)
    extracted: dict[Path, Any] = {}
    failed: dict[str, list[dict[str, Any]]] = {}
    for name, found in refs.items():
        res = extract_dataset(found, cfg.data.cache_dir, options, workers=cfg.data.workers or None, progress=False)
        extracted.update({s.ref.path: s for s in res.samples})
        failed[name] = [{"path": p, "reason": r} for p, r in res.failed]  # listed, never trained on or scored
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name in refs}
    photo_runs: list[dict[str, dict[str, Any]]] = []
    fit_s = 0.0
    with tempfile.TemporaryDirectory(prefix="fer_report_") as tmp:
        for k, held in enumerate(parts):
            held_paths = {r.path for r in held}
            train = [s for path, s in extracted.items() if path not in held_paths]
            log.info("seed %s fold %d: training with %d clips, scoring %d", seed, k, len(train), len(held))
            out = Path(keep_bundle) / f"fold{k}" if keep_bundle else Path(tmp) / f"fold{k}"
            meta = {"clips_in_training": {"fold": k, "held_out": sorted(clip_key(r) for r in held), "clip_weight": clip_weight}}
            fit = train_with_clips(cfg, train, out, meta, weight=clip_weight, subsets=subsets)
            fit_s += fit.fit_seconds
            for name, found in refs.items():
                mine = [r for r in found.samples if r.path in held_paths and r.path in extracted]
                if not mine:
                    continue
                res = evaluate(dataclasses.replace(found, samples=mine), out, cache_dir=cfg.data.cache_dir, progress=False, smoothing=smoothing)
                if res.get("video"):
                    sections[name].append(res["video"])
            photo_runs.append(photo_figures(fit.by_source))
    sets: dict[str, dict[str, Any]] = {}
    videos: dict[str, dict[str, Any]] = {}
    for name, secs in sections.items():
        videos[name] = merge_video(secs) if secs else {}
        sets[name] = video_figures(videos[name] or None)
        if failed[name]:
            sets[name]["failed"] = failed[name]
    if len(video_dirs) > 1:
        sets[VIDEO_ALL] = joined_video(sets, videos)
    for pset in dict.fromkeys(p for run in photo_runs for p in run):
        keys = dict.fromkeys(f for run in photo_runs for f in run.get(pset, {}))
        sets[pset] = {f: float(np.mean([run[pset][f] for run in photo_runs if f in run.get(pset, {})])) for f in keys}
    return {"seed": seed, "sets": sets, "fit_seconds": round(fit_s, 2),
            "folds": [sorted(clip_key(r) for r in part) for part in parts]}


def summarise_runs(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean, sd (ddof=1; 0 for one run), min, max and the values of every numeric figure of
    every set over the runs (a figure missing from a run is left out of its statistics)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    names = list(dict.fromkeys(s for r in runs for s in r["sets"]))
    for s in names:
        keys = list(dict.fromkeys(k for r in runs for k, v in r["sets"].get(s, {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)))
        out[s] = {}
        for k in keys:
            vals = [float(r["sets"][s][k]) for r in runs if isinstance(r["sets"].get(s, {}).get(k), (int, float))]
            a = np.asarray(vals)
            out[s][k] = {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "min": float(a.min()), "max": float(a.max()), "values": vals}
    return out


def run_report(config: TrainConfig, seeds: Sequence[int], video_dirs: Sequence[str | Path], *, subsets: dict[str, list[int]] | None = None, smoothing: SmoothingOptions | None = None, recipe: dict[str, Any] | None = None, on_run: Callable[[dict[str, Any]], None] | None = None, bundles_dir: str | Path | None = None, live: bool = False, num_faces: int | None = None, clip_folds: int | None = None, clip_weight: int = 1, clip_actors: dict[str, str] | None = None) -> dict[str, Any]:
    """Train and score the recipe at every seed; returns the report (see the module docstring).
    ``on_run`` is called with each seed's run as it finishes; ``bundles_dir`` keeps each seed's
    bundle as ``<bundles_dir>/seed<N>``; ``live``/``num_faces``: see :func:`score_bundle`.
    ``clip_folds``: the labelled clips join training, scored out of fold by person
    (:func:`train_and_score_folds`, with ``clip_weight`` and ``clip_actors``; not with ``live``).

    Raises:
        ConfigError: ``clip_folds`` with ``live``."""
    if clip_folds and live:
        raise ConfigError("clips in training are scored through evaluate only, not --live")
    runs = []
    for seed in seeds:
        keep = Path(bundles_dir) / f"seed{seed}" if bundles_dir else None
        if clip_folds:
            run = train_and_score_folds(config, int(seed), video_dirs, folds=clip_folds, clip_weight=clip_weight, actors=clip_actors, subsets=subsets, smoothing=smoothing, keep_bundle=keep)
        else:
            run = train_and_score(config, int(seed), video_dirs, subsets=subsets, smoothing=smoothing, keep_bundle=keep, live=live, num_faces=num_faces)
        runs.append(run)
        if on_run:
            on_run(run)
    return {"recipe": recipe or {}, "seeds": [int(s) for s in seeds], "video": [str(d) for d in video_dirs], "path": "live" if live else "evaluate", "runs": runs, "summary": summarise_runs(runs)}


def bundle_report(bundle_dir: str | Path | None, video_dirs: Sequence[str | Path], *, cache_dir: str | Path, smoothing: SmoothingOptions | None = None, recipe: dict[str, Any] | None = None, live: bool = False, num_faces: int | None = None) -> dict[str, Any]:
    """The report of one existing bundle (one run, no seeds; photo sets from its manifest)."""
    run = {"seed": None, "sets": score_bundle(bundle_dir, video_dirs, cache_dir=cache_dir, smoothing=smoothing, live=live, num_faces=num_faces)}
    return {"recipe": recipe or {"bundle": str(bundle_dir or "shipped default")}, "seeds": [], "video": [str(d) for d in video_dirs], "path": "live" if live else "evaluate", "runs": [run], "summary": summarise_runs([run])}


def _cell(stat: dict[str, Any] | None, digits: int, count: bool = False) -> str:
    if stat is None:
        return "–"
    if len(stat["values"]) == 1:
        return f"{stat['mean']:.0f}" if count else f"{stat['mean']:.{digits}f}"
    if count:
        return f"{stat['mean']:.1f} ± {stat['sd']:.1f} ({stat['min']:.0f}-{stat['max']:.0f})"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def report_tables(report: dict[str, Any]) -> str:
    """The report as Markdown: one table for the video sets, one for the photo sets (mean ±
    sd over seeds; counts with their range)."""
    summary = report["summary"]
    lines: list[str] = []
    vsets = [s for s in summary if not s.startswith("photos.")]
    if vsets:
        emos = [e for e in EMOTIONS if any(f"recall.{e}" in summary[s] for s in vsets)]
        lines.append("| video set | clips right | of | clips decided | mean window recall | " + " | ".join(emos) + " |")
        lines.append("|---" * (5 + len(emos)) + "|")
        for s in vsets:
            f = summary[s]
            n = f.get("n_clips", {}).get("max", 0)
            row = [s, _cell(f.get("clips_right"), 0, True), f"{n:.0f}", _cell(f.get("clips_decided"), 0, True), _cell(f.get("mean_window_recall"), 3)]
            row += [_cell(f.get(f"recall.{e}"), 2) for e in emos]
            lines.append("| " + " | ".join(row) + " |")
    psets = [s for s in summary if s.startswith("photos.")]
    if psets:
        emos = [e for e in EMOTIONS if any(f"auc.{e}" in summary[s] for s in psets)]
        lines.append("")
        lines.append("| photo set (validation) | accuracy | " + " | ".join(f"AUC {e}" for e in emos) + " | balanced happy | balanced surprise |")
        lines.append("|---" * (4 + len(emos)) + "|")
        for s in psets:
            f = summary[s]
            row = [s[len("photos."):], _cell(f.get("accuracy"), 3)] + [_cell(f.get(f"auc.{e}"), 3) for e in emos]
            row += [_cell(f.get("balanced.happy"), 3), _cell(f.get("balanced.surprise"), 3)]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def recipe_label(report: dict[str, Any]) -> str:
    """A report's recipe name, with its ``--set`` overrides when it has any (so that rows of the
    same config tell apart)."""
    recipe = report.get("recipe", {})
    name = str(recipe.get("name", "?"))
    over = recipe.get("overrides") or {}
    if over:
        shown = ", ".join(f"{k}={v}" for k, v in over.items())
        name += f" ({shown if len(shown) <= 80 else shown[:77] + '...'})"
    return name


def comparison_table(reports: Sequence[dict[str, Any]], emotions: Sequence[str] = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")) -> str:
    """One Markdown row per report: its name, the video sets' clips right and mean window
    recall (mean ± sd over seeds), RAF-DB validation AUCs and CK+ happy/surprise AUC (means)."""
    vnames = list(dict.fromkeys(s for r in reports for s in r["summary"] if not s.startswith("photos.") and s != VIDEO_ALL))
    head = ["recipe", "seeds", "all video: clips right", "all video: mean window recall"] + [f"{v}: clips, recall" for v in vnames]
    head += ["RAF-DB AUC " + "/".join(e[:3] for e in emotions), "CK+ AUC happy/surprise"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in reports:
        s = r["summary"]
        seeds = ",".join(map(str, r["seeds"])) or "-"
        row = [recipe_label(r), seeds]
        allv = s.get(VIDEO_ALL) or (s.get(vnames[0]) if vnames else None) or {}
        n_all = allv.get("n_clips", {}).get("max", 0)
        row += [_cell(allv.get("clips_right"), 0, True) + f" of {n_all:.0f}", _cell(allv.get("mean_window_recall"), 3)]
        for v in vnames:
            f = s.get(v, {})
            row.append(f"{_cell(f.get('clips_right'), 0, True)} of {f.get('n_clips', {}).get('max', 0):.0f}, {_cell(f.get('mean_window_recall'), 3)}")
        raf, ck = s.get("photos.rafdb", {}), s.get("photos.ckplus48", {})
        row.append("/".join(f"{raf[f'auc.{e}']['mean']:.3f}"[1:] if f"auc.{e}" in raf else "–" for e in emotions))
        row.append("/".join(f"{ck[f'auc.{e}']['mean']:.3f}" if f"auc.{e}" in ck else "–" for e in ("happy", "surprise")))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from several of the same recipe run on different seeds (e.g. seeds 0-2 and
    3-5): their runs together, summarised again. The first report's recipe and path are kept.

    Raises:
        ValueError: no report, the same seed twice, or reports of different paths.
    """
    if not reports:
        raise ValueError("no report to merge")
    runs = [run for r in reports for run in r["runs"]]
    seeds = [int(run["seed"]) for run in runs if "seed" in run]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the reports share seeds: {sorted(seeds)}")
    if len({r.get("path") for r in reports}) > 1:
        raise ValueError("cannot merge reports of the evaluate and live paths")
    first = reports[0]
    return {**first, "seeds": seeds, "runs": runs, "summary": summarise_runs(runs)}


def _all_video(run: dict[str, Any]) -> dict[str, Any]:
    sets = run["sets"]
    return sets.get(VIDEO_ALL) or next((v for k, v in sets.items() if not k.startswith("photos.")), {})


def paired_table(reference: dict[str, Any], others: Sequence[dict[str, Any]]) -> str:
    """Markdown rows of each report's per-seed differences from ``reference`` on all video, on
    the seeds both ran (a lever and its baseline trained with the same seed share their random
    layers and sampling, so the per-seed difference is sharper than comparing two means)."""
    ref = {int(r["seed"]): _all_video(r) for r in reference["runs"] if "seed" in r}
    head = ["recipe", "paired seeds", "clips right: difference, mean ± sd", "better / same / worse seeds", "mean window recall: difference, mean ± sd", "better / worse seeds"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for rep in others:
        d_clips, d_recall = [], []
        for run in rep["runs"]:
            seed = int(run.get("seed", -1))
            if seed not in ref:
                continue
            a, b = ref[seed], _all_video(run)
            if "clips_right" in a and "clips_right" in b:
                d_clips.append(float(b["clips_right"]) - float(a["clips_right"]))
            if a.get("mean_window_recall") is not None and b.get("mean_window_recall") is not None:
                d_recall.append(float(b["mean_window_recall"]) - float(a["mean_window_recall"]))
        name = recipe_label(rep)
        if not d_clips:
            lines.append(f"| {name} | none | – | – | – | – |")
            continue
        c, r = np.asarray(d_clips), np.asarray(d_recall)
        sd = lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
        lines.append(
            f"| {name} | {len(c)} | {c.mean():+.2f} ± {sd(c):.2f} | {(c > 0).sum()} / {(c == 0).sum()} / {(c < 0).sum()} | "
            + (f"{r.mean():+.3f} ± {sd(r):.3f} | {(r > 0).sum()} / {(r < 0).sum()} |" if len(r) else "– | – |")
        )
    return "\n".join(lines)


def _clip_right(run: dict[str, Any]) -> dict[str, bool]:
    """``folder/clip`` -> whether the clip's vote was its label, for every clip of every video
    folder of one seed's run (the ``video`` union is skipped: it repeats the folders' clips)."""
    out: dict[str, bool] = {}
    for name, figs in run["sets"].items():
        if name == VIDEO_ALL or name.startswith("photos.") or not isinstance(figs, dict):
            continue
        for clip, c in (figs.get("clips") or {}).items():
            out[f"{name}/{clip}"] = c.get("vote") is not None and c.get("vote") == c.get("label")
    return out


def clip_table(reference: dict[str, Any], others: Sequence[dict[str, Any]], *, resamples: int = 5000, seed: int = 0) -> str:
    """Markdown rows of how each report's clips-right difference from ``reference`` (on the
    seeds both ran) is made up, clip by clip, and how far it would carry to another draw of as
    many clips: per clip, the share of paired seeds it was right in minus the reference's; the
    difference in clips right is their sum, and its 90 % interval is a bootstrap over the clips
    (resampled with replacement). The seeds' spread says how much a recipe's result moves with
    its random draws; this interval says how much it would move with the clips. Clips that
    changed are listed as ``name: reference -> report`` in seeds right."""
    ref_runs = {int(r["seed"]): _clip_right(r) for r in reference["runs"] if "seed" in r}
    head = ["recipe", "paired seeds", "clips right: difference", "90 % interval over clips (bootstrap)", "clips that changed (seeds right: reference -> recipe)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    rng = np.random.default_rng(seed)
    for rep in others:
        pairs = [(ref_runs[int(r["seed"])], _clip_right(r)) for r in rep["runs"] if int(r.get("seed", -1)) in ref_runs]
        clips = sorted(set.intersection(*(set(a) & set(b) for a, b in pairs))) if pairs else []
        name = recipe_label(rep)
        if not clips:
            lines.append(f"| {name} | none | – | – | – |")
            continue
        a = np.array([[p[0][c] for c in clips] for p in pairs], float)
        b = np.array([[p[1][c] for c in clips] for p in pairs], float)
        d = b.mean(axis=0) - a.mean(axis=0)
        boot = d[rng.integers(0, len(d), size=(resamples, len(d)))].sum(axis=1)
        lo, hi = np.percentile(boot, [5, 95])
        changed = ", ".join(f"{c}: {int(a[:, i].sum())} -> {int(b[:, i].sum())}" for i, c in enumerate(clips) if d[i] != 0) or "none"
        total = round(float(d.sum()), 9) + 0.0  # no "-0.00"
        lines.append(f"| {name} | {len(pairs)} | {total:+.2f} of {len(clips)} | {lo + 0.0:+.2f} to {hi + 0.0:+.2f} | {changed} |")
    return "\n".join(lines)
