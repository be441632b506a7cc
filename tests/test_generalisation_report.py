"""The generalisation report (tools/generalisation_report.py) on real data, and the
blendshape-model fusion it measures: two real clips and a small image set, two seeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_testdata import link, small_video_recipe
from realtime_fer.models.blendshape_fusion import fit_fusion_weights, fixed_fusion_weights, fuse
from realtime_fer.models.network import pool
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.training.report import summarise_runs

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "generalisation_report.py"


def tool(*args: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def setup(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_video_recipe(shared_data, tmp_path_factory, "report", ("happy.mp4", "surprise.mp4"))  # two real clips, named by their label


@pytest.fixture(scope="module")
def fused_report(setup: dict[str, Path]) -> dict:
    out = setup["root"] / "fused" / "report.json"
    proc = tool("--config", setup["config"], "--seeds", "0,1", "--video", setup["clips"], "--set", "model.blendshape_model.enabled=true", "--set", "model.blendshape_model.hidden=[32]",
                "--keep-bundles", setup["root"] / "fused" / "bundles", "--output", out, cwd=setup["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"report": json.loads(out.read_text()), "md": out.with_suffix(".md").read_text(), "stdout": proc.stdout, "bundles": setup["root"] / "fused" / "bundles"}


def test_report_writes_its_table_over_seeds(fused_report: dict) -> None:
    rep = fused_report["report"]
    assert rep["seeds"] == [0, 1] and len(rep["runs"]) == 2
    assert rep["recipe"]["overrides"] == {"model.blendshape_model.enabled": True, "model.blendshape_model.hidden": [32]}
    for run in rep["runs"]:
        clips = run["sets"]["clips"]
        assert clips["n_clips"] == 2 and 0 <= clips["clips_right"] <= 2 and clips["clips_decided"] == 2
        assert set(clips["clips"]) == {"happy.mp4", "surprise.mp4"}
        assert 0.0 <= clips["mean_window_recall"] <= 1.0
        # the photo sets: the config's held-out photos per source, with AUCs in range
        for source in ("photos.rafdb", "photos.ckplus48"):
            aucs = [v for k, v in run["sets"][source].items() if k.startswith("auc.")]
            assert aucs and all(0.0 <= a <= 1.0 for a in aucs)
    # the summary is the mean and spread of the two runs' figures
    s = rep["summary"]["clips"]["mean_window_recall"]
    vals = [r["sets"]["clips"]["mean_window_recall"] for r in rep["runs"]]
    assert s["values"] == vals and s["mean"] == pytest.approx(np.mean(vals)) and s["sd"] == pytest.approx(np.std(vals, ddof=1))
    # the Markdown table names every set and is what the tool printed
    for name in ("| clips |", "| rafdb |", "| ckplus48 |", "mean window recall", "AUC happy"):
        assert name in fused_report["md"]
    assert "| clips |" in fused_report["stdout"]


def test_fused_bundle_scores_as_its_two_models(fused_report: dict, shared_data: Path) -> None:
    """The fused network of each emotion computes w_lm * landmark score + w_bs * blendshape
    score + c: its hidden layer holds both models' units, and the manifest records the weights."""
    from realtime_fer.models.bundle import load_bundle

    b = load_bundle(fused_report["bundles"] / "seed0")
    fusion = b.manifest["training"]["blendshape_fusion"]
    assert set(fusion) == set(b.emotions)
    for e in b.emotions:
        net = b.network(e)
        assert net.layers[0][0].shape[1] == 128 + 32  # the landmark model's 128 units, then the blendshape model's 32
        w = fusion[e]
        assert np.isfinite([w["w_landmarks"], w["w_blendshapes"], w["bias"]]).all()
        # the blendshape units read blendshape columns only
        n_lm_cols = len(net.pooling) * 3 * net.n_landmarks
        assert not net.layers[0][0][:n_lm_cols, 128:].any()


def test_report_scores_a_bundle_as_it_is_and_bad_input_is_one_line(fused_report: dict, setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    proc = tool("--bundle", fused_report["bundles"] / "seed1", "--video", setup["clips"], "--output", out, cwd=setup["root"])
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    seed1 = fused_report["report"]["runs"][1]["sets"]
    # the same bundle through the same path: the same video figures, the photo figures from its manifest
    assert rep["runs"][0]["sets"]["clips"]["mean_window_recall"] == pytest.approx(seed1["clips"]["mean_window_recall"])
    assert rep["runs"][0]["sets"]["photos.rafdb"]["auc.happy"] == pytest.approx(seed1["photos.rafdb"]["auc.happy"])
    # the live recognizer's path (what `analyze` publishes): every clip decided, votes from published tops
    live = tmp_path / "live.json"
    proc = tool("--bundle", fused_report["bundles"] / "seed1", "--video", setup["clips"], "--live", "--output", live, cwd=setup["root"])
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(live.read_text())
    assert rep["path"] == "live" and rep["recipe"]["live"] is True
    clips = rep["runs"][0]["sets"]["clips"]
    assert clips["clips_decided"] == 2 and all(c["windows"] > 10 and c["vote"] for c in clips["clips"].values())
    for args, fragment in (
        (("--video", tmp_path / "nope"), "no such video folder"),
        (("--config", tmp_path / "missing.yaml", "--video", setup["clips"]), "not found"),
        (("--config", setup["config"], "--video", setup["clips"], "--set", "model.blendshape_model.fusion=best"), "blendshape_model"),
        (("--config", setup["config"], "--video", setup["clips"], "--set", "nokey"), "KEY=VALUE"),
    ):
        proc = tool(*args, "--output", tmp_path / "bad.json", cwd=setup["root"], timeout=120)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and fragment in proc.stderr, proc.stderr
        assert not (tmp_path / "bad.json").exists()


def _two_networks(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, t, l, b = 300, 5, 4, 52
    win = rng.normal(size=(n, t, l, 3)).astype(np.float32)
    blend = rng.random((n, t, b)).astype(np.float32)
    y = rng.integers(0, 2, n)
    x = pool(win, ("mean", "std"), blendshapes=blend)
    xb = pool(win[:, :, :0], ("mean", "std"), blendshapes=blend)
    lm = fit_randomized(x, y, {"e": np.array([1])}, RandomizedOptions(hidden=[24]), window_length=t, n_landmarks=l, pooling=("mean", "std"), n_blendshapes=b)["e"]
    # the blendshape model standardised on other rows: its (mean, std) differ from the landmark model's
    bs = fit_randomized(xb[:200], y[:200], {"e": np.array([1])}, RandomizedOptions(hidden=[8], seed=5), window_length=t, n_landmarks=0, pooling=("mean", "std"), n_blendshapes=b)["e"]
    return lm, bs, x, xb, y


def test_fuse_is_exactly_the_weighted_sum_of_log_odds() -> None:
    lm, bs, x, xb, y = _two_networks()
    f = fuse(lm, bs, 0.8, 1.7, -0.3)
    np.testing.assert_allclose(f.score_pooled(x), 0.8 * lm.score_pooled(x) + 1.7 * bs.score_pooled(xb) - 0.3, atol=1e-4)
    assert f.n_landmarks == lm.n_landmarks and f.input_dim == lm.input_dim
    with pytest.raises(ValueError, match="blendshape network"):
        fuse(lm, lm, 1.0, 1.0, 0.0)


def test_half_fusion_keeps_the_first_layer_in_float16() -> None:
    """Two standardisations of the same blendshape columns that differ in the last bit (the
    same statistic summed in another order) must not leave the fused first layer in float32:
    with ``half`` it is rounded to float16 values and exported as ``W1_f16``
    (model 0.10 was first trained with twice-sized ONNX files for this reason)."""
    from dataclasses import replace

    from realtime_fer.models.onnx_export import build_onnx

    lm, bs, x, xb, y = _two_networks()
    rows = np.arange(lm.input_dim - bs.input_dim, lm.input_dim)
    mean, std = np.array(lm.mean, np.float32)[rows], np.array(lm.std, np.float32)[rows]
    std[[1, 2, 21]] = np.nextafter(std[[1, 2, 21]], np.float32(np.inf))  # one ulp apart
    twin = replace(bs, mean=mean, std=std)

    def stored(net) -> set[str]:
        return {i.name for i in build_onnx(net).graph.initializer}

    plain, half = fuse(lm, twin, 0.8, 1.7, -0.3), fuse(lm, twin, 0.8, 1.7, -0.3, half=True)
    assert "W1" in stored(plain)  # the defect: three columns one ulp off keep the whole layer in float32
    w, b = half.layers[0]
    assert np.array_equal(w.astype(np.float16).astype(np.float32), w) and np.array_equal(b.astype(np.float16).astype(np.float32), b)
    assert "W1_f16" in stored(half)  # (a bias of 64 values or fewer is stored as it is)
    np.testing.assert_allclose(half.score_pooled(x), plain.score_pooled(x), atol=1e-3)


def test_fusion_weights_follow_the_informative_model() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random(2000) < 0.2
    informative = truth * 2.0 + rng.normal(size=2000)
    noise = rng.normal(size=2000)
    w_lm, w_bs, _ = fit_fusion_weights(noise, informative, truth)
    assert w_bs > 1.0 and abs(w_lm) < 0.2 * w_bs
    # fixed: the blendshape model's share of the two Platt log-odds
    a = fixed_fusion_weights(noise, informative, truth, 1.0)
    assert a[0] == 0.0 and a[1] > 0
    with pytest.raises(ValueError, match="positive and negative"):
        fit_fusion_weights(noise, informative, np.zeros(2000, bool))


def test_summary_of_runs_is_mean_and_spread() -> None:
    runs = [{"sets": {"a": {"x": 1.0, "n": 2}}}, {"sets": {"a": {"x": 3.0, "n": 2}}}, {"sets": {"a": {"n": 2}}}]
    s = summarise_runs(runs)["a"]
    assert s["x"]["mean"] == 2.0 and s["x"]["sd"] == pytest.approx(np.sqrt(2.0)) and s["x"]["values"] == [1.0, 3.0]
    assert s["n"] == {"mean": 2.0, "sd": 0.0, "min": 2.0, "max": 2.0, "values": [2.0, 2.0, 2.0]}


def test_blendshape_only_source_trains_the_blendshape_model_alone(setup: dict[str, Path]) -> None:
    """A source with role blendshape_model: all its photos are training windows of the
    blendshape model; the landmark models, calibration and validation never see them."""
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.report import with_overrides
    from realtime_fer.training.trainer import fit_and_validate, prepare, default_subsets

    base = load_train_config(setup["config"])
    sources = [{"path": s.path, "name": s.name, "licence": s.licence, "role": "blendshape_model" if s.name == "rafdb" else "all"} for s in base.data.sources]
    cfg = with_overrides(base, {"data.sources": sources, "model.pooling": ["mean", "std"], "model.blendshapes": True, "model.blendshape_model.enabled": True, "model.blendshape_model.hidden": [16]})
    prep = prepare(cfg, progress=False)
    source = np.array([g.split(":", 1)[0] for g in prep.data.groups])
    assert len(prep.blendshape_rows) and set(source[prep.jittered.owner[prep.blendshape_rows]]) == {"rafdb"}
    assert "rafdb" not in set(source[prep.jittered.owner[prep.train_rows]])
    assert "rafdb" not in set(source[prep.plain.owner[prep.val_rows]]) | set(source[prep.plain.owner[prep.cal_rows]])
    fit = fit_and_validate(cfg, prep, default_subsets(cfg, prep.emotions))
    assert set(fit.fusion) == set(prep.emotions) and "rafdb" not in fit.by_source
    with pytest.raises(Exception, match="blendshape_model.enabled"):
        with_overrides(base, {"data.sources": sources})


def test_train_only_source_never_calibrates_or_validates(setup: dict[str, Path]) -> None:
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.report import with_overrides
    from realtime_fer.training.trainer import prepare

    base = load_train_config(setup["config"])
    sources = [{"path": s.path, "name": s.name, "licence": s.licence, "role": "train" if s.name == "rafdb" else "all"} for s in base.data.sources]
    prep = prepare(with_overrides(base, {"data.sources": sources}), progress=False)
    source = np.array([g.split(":", 1)[0] for g in prep.data.groups])
    assert "rafdb" in set(source[prep.jittered.owner[prep.train_rows]])
    assert "rafdb" not in set(source[prep.plain.owner[prep.val_rows]]) | set(source[prep.plain.owner[prep.cal_rows]])
    assert len(prep.blendshape_rows) == 0


def test_union_graph_of_a_fused_network_equals_numpy() -> None:
    """The union graph multiplies a fused blendshape model's units by the blendshape columns
    alone; its probabilities equal the numpy network's."""
    import onnxruntime as ort

    from realtime_fer.models.fused import fuse_networks
    from realtime_fer.models.onnx_export import tail_only_units

    lm, bs, x, xb, y = _two_networks()
    f = fuse(lm, bs, 0.8, 1.7, -0.3)
    assert tail_only_units(f) == bs.layers[0][0].shape[1]
    rng = np.random.default_rng(3)
    win = rng.normal(size=(7, f.window_length, f.n_landmarks, 3)).astype(np.float32)
    blend = rng.random((7, f.window_length, f.n_blendshapes)).astype(np.float32)
    model = fuse_networks({"e": f}, {"e": np.arange(f.n_landmarks)})
    ops = [n.op_type for n in model.graph.node]
    assert "Slice" in ops  # the blendshape units read the blendshape columns only
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"window": win, "blendshapes": blend})[0][:, 0]
    np.testing.assert_allclose(got, f.probability(win, blend), atol=1e-5)


def test_withheld_emotion_is_scored_but_never_the_top() -> None:
    """The shipped model withholds contempt (manifest decision.withheld, from the training
    config): its probability is still computed, it never wins a decision."""
    from realtime_fer.config_io import from_dict
    from realtime_fer.errors import ConfigError
    from realtime_fer.models.bundle import load_bundle
    from realtime_fer.training.config import TrainConfig, load_train_config

    b = load_bundle(None)
    assert "contempt" in b.withheld and "54 CK+" in b.withheld["contempt"]
    assert b.thresholds["contempt"] == float("inf") and b.emotions["contempt"].threshold < 1.0
    probs = {e: np.array([0.99 if e == "contempt" else 0.01]) for e in b.emotions}
    assert b.decide(probs)[0] == "neutral"
    probs["sad"] = np.array([0.9])
    assert b.decide(probs)[0] == "sad"
    cfg = load_train_config(ROOT / "configs" / "train_default.yaml")
    assert set(cfg.model.withheld) == {"contempt"}
    with pytest.raises(ConfigError, match="withheld"):
        from_dict(TrainConfig, {"model": {"emotions": ["happy", "sad"], "withheld": {"anger": "x"}}}, where="c.yaml")


def test_fused_network_attributions_are_complete_and_name_blendshapes() -> None:
    """Integrated Gradients through a fused landmark + blendshape network: the landmark and
    blendshape attributions together sum to output minus baseline output, and the blendshape
    model's evidence shows up in the blendshapes."""
    from realtime_fer.explain.integrated_gradients import IntegratedGradients

    lm, bs, *_ = _two_networks()
    f = fuse(lm, bs, 0.5, 2.0, 0.1)
    rng = np.random.default_rng(4)
    win = rng.normal(size=(3, f.window_length, f.n_landmarks, 3))
    blend = rng.random((3, f.window_length, f.n_blendshapes))
    base = np.zeros((f.window_length, f.n_landmarks, 3))
    res = IntegratedGradients(f).attribute(win, base, n_steps=32, blendshapes=blend, blendshape_baselines=np.full(f.n_blendshapes, 0.1))
    total = res.per_landmark().sum(axis=1) + res.per_blendshape().sum(axis=1)
    np.testing.assert_allclose(total, res.total, rtol=1e-6, atol=1e-8)
    out = f.score(win, blend.astype(np.float32)) - f.score(np.broadcast_to(base, win.shape), np.full_like(blend, 0.1, dtype=np.float32))
    np.testing.assert_allclose(res.total, out, rtol=0.01, atol=1e-3)
    assert np.abs(res.per_blendshape()).sum() > 0


def test_report_lists_a_faceless_and_a_corrupt_clip(shared_data: Path, fused_report: dict, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    link(shared_data / "video" / "mead" / "happy.mp4", clips / "happy.mp4")
    link(shared_data / "video" / "pyfeat" / "no_face.mp4", clips / "sad.mp4")  # no face in any frame
    (clips / "fear.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)  # not a video
    for live in (False, True):
        out = tmp_path / f"r{live}.json"
        proc = tool("--bundle", fused_report["bundles"] / "seed0", "--video", clips, "--output", out, *(["--live"] if live else []), cwd=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        figs = json.loads(out.read_text())["runs"][0]["sets"]["clips"]
        assert figs["clips"]["sad.mp4"]["vote"] is None and figs["clips"]["sad.mp4"]["windows"] == 0
        assert figs["clips"]["happy.mp4"]["windows"] > 0
        assert [Path(f["path"]).name for f in figs["failed"]] == ["fear.mp4"] and figs["failed"][0]["reason"]


def _fake_report(name: str, seeds: list[int], clips: list[int], recall: list[float], **recipe: object) -> dict:
    runs = [{"seed": s, "sets": {"video": {"n_clips": 15, "clips_right": c, "mean_window_recall": r}}} for s, c, r in zip(seeds, clips, recall)]
    return {"recipe": {"name": name, **recipe}, "seeds": seeds, "path": "evaluate", "runs": runs, "summary": summarise_runs(runs)}


def test_reports_of_one_recipe_join_and_levers_pair_by_seed() -> None:
    """``--compare A+B``: a recipe's reports on different seeds join into one; every other
    report is compared seed by seed with the first, on the seeds both ran."""
    from realtime_fer.training.report import comparison_table, merge_reports, paired_table, recipe_label

    base = merge_reports([_fake_report("base", [0, 1, 2], [9, 11, 9], [0.59, 0.62, 0.55]), _fake_report("base", [3, 4, 5], [8, 9, 8], [0.52, 0.55, 0.50])])
    assert base["seeds"] == [0, 1, 2, 3, 4, 5]
    assert base["summary"]["video"]["clips_right"]["mean"] == pytest.approx(9.0)
    lever = _fake_report("lever", [0, 1, 2, 3, 9], [10, 11, 8, 9, 15], [0.60, 0.62, 0.56, 0.50, 0.99], overrides={"data.mirror": True})
    assert recipe_label(lever) == "lever (data.mirror=True)"
    table = paired_table(base, [lever])
    row = table.splitlines()[-1]
    # seeds 0-3 pair (9 has no partner): clips +1, 0, -1, +1; recall +0.01, 0, +0.01, -0.02
    assert "| 4 |" in row and "+0.25 ± 0.96" in row and "2 / 1 / 1" in row and "+0.000 ± 0.014" in row and "2 / 1 |" in row, row
    assert "lever (data.mirror=True)" in comparison_table([base, lever])
    assert "| none |" in paired_table(base, [_fake_report("other", [7], [1], [0.1])])
    with pytest.raises(ValueError, match="share seeds"):
        merge_reports([base, _fake_report("base", [5], [1], [0.1])])


def _clip_run(seed: int, right: dict[str, bool]) -> dict:
    clips = {c: {"label": "happy", "vote": "happy" if ok else "sad", "windows": 10} for c, ok in right.items()}
    return {"seed": seed, "sets": {"mead": {"n_clips": len(clips), "clips_right": sum(right.values()), "clips": clips}}}


def test_clip_table_says_which_clips_changed_and_bootstraps_over_clips() -> None:
    """The clips-right difference is the sum of each clip's change in share of seeds right;
    its interval resamples the clips."""
    from realtime_fer.training.report import clip_table

    names = [f"c{i}.mp4" for i in range(10)]
    base = {"recipe": {"name": "base"}, "runs": [_clip_run(s, {n: i < 5 for i, n in enumerate(names)}) for s in range(4)]}
    # the lever gets c5 right in every seed and c0 in none: no net change
    same = {"recipe": {"name": "same"}, "runs": [_clip_run(s, {n: (0 < i < 6) for i, n in enumerate(names)}) for s in range(4)]}
    # the lever gets c5..c9 right in every seed: +5 whatever clips are drawn... unless none of them is
    better = {"recipe": {"name": "better"}, "runs": [_clip_run(s, {n: True for n in names}) for s in range(4)]}
    unpaired = {"recipe": {"name": "other"}, "runs": [_clip_run(9, {n: True for n in names})]}
    rows = clip_table(base, [same, better, unpaired]).splitlines()[2:]
    assert "| +0.00 of 10 |" in rows[0] and "mead/c0.mp4: 4 -> 0, mead/c5.mp4: 0 -> 4" in rows[0], rows[0]
    assert "| +5.00 of 10 |" in rows[1], rows[1]
    lo, hi = (float(v) for v in rows[1].split("|")[4].split(" to "))
    assert 0 < lo < 5 < hi <= 10
    assert "| none |" in rows[2]


def test_clips_in_training_score_every_clip_by_a_model_that_never_saw_its_person(setup: dict[str, Path], tmp_path: Path) -> None:
    """--clips-in-training: per fold, the other fold's clip joins training (its windows weighted)
    and the fold's own clip is scored; every clip is scored once, the folds are recorded."""
    actors = tmp_path / "actors.yaml"
    actors.write_text("clips/happy.mp4: person-a\nclips/surprise.mp4: person-b\n")
    out = tmp_path / "folds.json"
    bundles = tmp_path / "bundles"
    proc = tool("--config", setup["config"], "--seeds", "0", "--video", setup["clips"], "--clips-in-training", "2", "--clip-weight", "3",
                "--clip-actors", actors, "--keep-bundles", bundles, "--output", out, cwd=setup["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads(out.read_text())
    assert rep["recipe"]["clips_in_training"] == {"folds": 2, "clip_weight": 3, "actors": str(actors)}
    run = rep["runs"][0]
    assert sorted(run["folds"]) == [["clips/happy.mp4"], ["clips/surprise.mp4"]]
    figs = run["sets"]["clips"]
    assert figs["n_clips"] == 2 and set(figs["clips"]) == {"happy.mp4", "surprise.mp4"} and all(c["windows"] > 0 for c in figs["clips"].values())
    assert [k for k in run["sets"]["photos.rafdb"] if k.startswith("auc.")]
    for k, held in enumerate(run["folds"]):
        training = json.loads((bundles / "seed0" / f"fold{k}" / "manifest.json").read_text())["training"]
        assert training["clips_in_training"]["held_out"] == held and training["clips_in_training"]["clip_weight"] == 3
        clips = [s for s in training["sources"] if s["name"] == "clips"]
        assert len(clips) == 1 and clips[0]["n_samples"] == 1  # the other person's clip, never the held-out one
        (other,) = [f for f in run["folds"] if f != held]
        assert list(clips[0]["per_label"]) == [Path(other[0]).stem]
    # a bad fold count is one line and exit 2
    proc = tool("--config", setup["config"], "--seeds", "0", "--video", setup["clips"], "--clips-in-training", "3", "--output", tmp_path / "x.json", cwd=setup["root"])
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == "error: 3 folds but only 2 people in the clips" and "Traceback" not in proc.stderr


def test_extra_training_clips_count_their_weight_and_are_never_offset(setup: dict[str, Path]) -> None:
    from realtime_fer.data.extract import extract_dataset, with_blendshapes
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.report import with_overrides
    from realtime_fer.training.trainer import prepare

    cfg = with_overrides(load_train_config(setup["config"]), {"data.domain_offset.enabled": True, "data.domain_offset.target": [str(setup["clips"])]})
    clip = extract_dataset(setup["clips"], cfg.data.cache_dir, with_blendshapes(None, True), progress=False).samples[:1]
    one = prepare(cfg, progress=False, extra_train=clip, extra_name="clips", extra_weight=1)
    three = prepare(cfg, progress=False, extra_train=clip, extra_name="clips", extra_weight=3)
    owner = len(three.data.samples) - 1  # the clip is the last sample
    n_clip = int(np.sum(one.jittered.owner[one.train_rows] == owner))
    assert n_clip > 0 and int(np.sum(three.jittered.owner[three.train_rows] == owner)) == 3 * n_clip
    assert len(three.train_rows) == len(one.train_rows) + 2 * n_clip
    # the photos' rows are the same, each once; the clip's windows are not moved by the domain offset
    photos = three.train_rows[three.jittered.owner[three.train_rows] != owner]
    assert np.array_equal(np.sort(photos), np.sort(one.train_rows[one.jittered.owner[one.train_rows] != owner])) and len(np.unique(photos)) == len(photos)
    off = prepare(with_overrides(cfg, {"data.domain_offset.enabled": False}), progress=False, extra_train=clip, extra_name="clips")
    mine, theirs = one.jittered.owner == owner, off.jittered.owner == owner
    assert np.array_equal(one.jittered.features[mine], off.jittered.features[theirs])  # the clip: not moved
    assert not np.array_equal(one.jittered.features[~mine], off.jittered.features[~theirs])  # the photos: moved
    with pytest.raises(Exception, match="extra_weight"):
        prepare(cfg, progress=False, extra_train=clip, extra_name="clips", extra_weight=0)


def test_source_weight_repeats_only_its_training_rows(setup: dict[str, Path]) -> None:
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.report import with_overrides
    from realtime_fer.training.trainer import prepare

    base = load_train_config(setup["config"])
    sources = [{"path": s.path, "name": s.name, "licence": s.licence, "weight": 2 if s.name == "rafdb" else 1} for s in base.data.sources]
    one, two = prepare(base, progress=False), prepare(with_overrides(base, {"data.sources": sources}), progress=False)
    source = np.array([g.split(":", 1)[0] for g in one.data.groups])

    def rows(prep, name: str) -> np.ndarray:
        return np.sort(prep.train_rows[source[prep.jittered.owner[prep.train_rows]] == name])

    assert np.array_equal(rows(two, "rafdb"), np.repeat(rows(one, "rafdb"), 2)) and len(rows(one, "rafdb"))
    assert np.array_equal(rows(two, "ckplus48"), rows(one, "ckplus48"))
    assert np.array_equal(two.val_rows, one.val_rows) and np.array_equal(two.cal_rows, one.cal_rows)
    assert [s.get("weight") for s in two.data.sources] == [2 if s["name"] == "rafdb" else None for s in two.data.sources]
    for bad in (0, 1.5, True):
        with pytest.raises(Exception, match="weight must be a whole number|weight: expected an integer"):
            with_overrides(base, {"data.sources": [{**sources[0], "weight": bad}]})
