"""Judge a training recipe on every labelled set in ../shared, over seeds.

Trains the recipe once per seed (the trainer's own code) and scores each seed's bundle through
the real path on every labelled video folder (default: each folder of ../shared/data/video whose
clips are all named by their label: today ``mead`` and ``wild``), on all of them together, and
on the held-out photos of the training sources (RAF-DB and CK+ validation). Prints, per set,
clips right, clips with a decision, mean window recall, per-emotion window recall and AUCs,
as mean ± sd over seeds, and writes the JSON report with a Markdown table beside it.

    # the shipped recipe (its pruned landmark subsets kept fixed), seeds 0-2
    python tools/generalisation_report.py --config configs/train_default.yaml \\
        --subsets-from realtime_fer/assets/default_model --seeds 0,1,2 --output runs/report/r05.json
    # a lever: any config key, dotted
    python tools/generalisation_report.py ... --set model.randomized.ridge=0.01
    # the labelled clips in training too, each scored by a model that never saw its person
    python tools/generalisation_report.py ... --clips-in-training 3 --clip-weight 10
    # an existing bundle as it is (one run; photo figures from its manifest)
    python tools/generalisation_report.py --bundle realtime_fer/assets/default_model --output runs/report/shipped.json
    # recipes side by side, one row each, then each paired by seed against the first; A+B joins
    # two reports of one recipe run on different seeds
    python tools/generalisation_report.py --compare runs/report/r05.json runs/report/bsfit.json
    python tools/generalisation_report.py --compare base_s012.json+base_s345.json lever_s012.json+lever_s345.json

Exit status 2 with one ``error:`` line on bad input (missing config or folder, bad override).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_fer.errors import ConfigError, DataError  # noqa: E402
from realtime_fer.data.layouts import discover  # noqa: E402
from realtime_fer.models.bundle import load_bundle  # noqa: E402
from realtime_fer.models.smoothing import SmoothingOptions  # noqa: E402
from realtime_fer.training.clip_folds import load_clip_actors  # noqa: E402
from realtime_fer.training.config import load_train_config  # noqa: E402
from realtime_fer.training.report import bundle_report, clip_table, comparison_table, merge_reports, paired_table, recipe_label, report_tables, run_report, with_overrides  # noqa: E402
from realtime_fer.io_atomic import write_text_atomic  # noqa: E402

log = logging.getLogger("generalisation_report")
VIDEO_ROOT = ROOT.parent / "shared" / "data" / "video"


def labelled_video_dirs(root: Path = VIDEO_ROOT) -> list[Path]:
    """Every folder below ``root`` whose video files are all named by a known label."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            found = discover(d)
        except DataError:
            continue
        if found.samples and not found.skipped:
            out.append(d)
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (dotted key, YAML value), got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs/train_default.yaml"), help="training config of the recipe")
    ap.add_argument("--subsets-from", default=None, help="bundle whose per-emotion landmark subsets the recipe keeps (e.g. the shipped, pruned model)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (dotted, YAML value); repeatable")
    ap.add_argument("--seeds", default="0,1,2,3,4,5", help="comma-separated seeds (random layers and window sampling; default six: three left a lever's gain inside the seeds' spread, docs/video.md)")
    ap.add_argument("--video", nargs="+", default=None, help="labelled video folders (default: every label-named folder of ../shared/data/video)")
    ap.add_argument("--bundle", default=None, help="score this bundle as it is instead of training ('default': the shipped model)")
    ap.add_argument("--live", action="store_true", help="score the clips through the live recognizer (what `realtime-fer analyze` publishes: the runtime landmarker, tracking, partial windows) instead of `evaluate`'s cached largest face")
    ap.add_argument("--num-faces", type=int, default=None, help="with --live: faces the landmarker looks for (default: the runtime default)")
    ap.add_argument("--smoothing-tau", type=float, default=None, help="smoothing time constant in seconds (default: the stream's)")
    ap.add_argument("--clips-in-training", type=int, default=None, metavar="FOLDS", help="train on the labelled clips too: their people split into FOLDS folds, each fold's clips scored by a model trained on the other folds' (evaluate path only)")
    ap.add_argument("--clip-weight", type=int, default=1, help="with --clips-in-training: each training clip window counts this many times (default 1)")
    ap.add_argument("--clip-actors", default=str(ROOT / "configs/clip_actors.yaml"), help="with --clips-in-training: YAML map '<folder>/<file name>: person' (default configs/clip_actors.yaml; an unnamed clip is its own person)")
    ap.add_argument("--name", default=None, help="recipe name written in the report")
    ap.add_argument("--keep-bundles", default=None, help="folder to keep each seed's bundle in (seed<N>/)")
    ap.add_argument("--output", default="runs/report/report.json")
    ap.add_argument("--compare", nargs="+", default=None, metavar="REPORT", help="print one comparison row per report JSON (A+B joins reports of one recipe on different seeds), then the per-seed differences from the first (no training), and exit")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("realtime_fer.data.extract", "realtime_fer.data.layouts", "realtime_fer.models.scorer", "realtime_fer.models.bundle_cache"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.compare:
            reports = []
            for item in args.compare:
                parts = []
                for path in item.split("+"):
                    try:
                        parts.append(json.loads(Path(path).read_text()))
                    except (OSError, json.JSONDecodeError) as exc:
                        raise DataError(f"cannot read report {path}: {exc}") from None
                try:
                    reports.append(merge_reports(parts) if len(parts) > 1 else parts[0])
                except ValueError as exc:
                    raise DataError(f"cannot join {item}: {exc}") from None
            print(comparison_table(reports))
            if len(reports) > 1:
                print()
                print(f"Paired by seed, each against the first ({recipe_label(reports[0])}), all video:")
                print()
                print(paired_table(reports[0], reports[1:]))
                print()
                print("Clip by clip, and over another draw of as many clips:")
                print()
                print(clip_table(reports[0], reports[1:]))
            return 0
        video = [Path(v) for v in args.video] if args.video else labelled_video_dirs()
        missing = [str(v) for v in video if not v.is_dir()]
        if missing:
            raise DataError(f"no such video folder: {', '.join(missing)}")
        if not video:
            log.warning("no labelled video folder found; only the photo sets are scored")
        smoothing = SmoothingOptions(time_constant_s=args.smoothing_tau) if args.smoothing_tau is not None else None
        t0 = time.perf_counter()
        if args.bundle:
            bundle = None if args.bundle == "default" else args.bundle
            recipe = {"name": args.name or f"bundle {args.bundle}", "bundle": args.bundle, **({"live": True, "num_faces": args.num_faces} if args.live else {})}
            report = bundle_report(bundle, video, cache_dir=".fer_cache", smoothing=smoothing, recipe=recipe, live=args.live, num_faces=args.num_faces)
        else:
            overrides = parse_overrides(args.set)
            config = with_overrides(load_train_config(args.config), overrides) if overrides else load_train_config(args.config)
            subsets = None
            if args.subsets_from:
                b = load_bundle(None if args.subsets_from == "default" else args.subsets_from)
                subsets = {e: list(entry.landmarks) for e, entry in b.emotions.items()}
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            if not seeds:
                raise ConfigError("--seeds lists no seed")
            if args.clips_in_training is not None and args.clip_weight < 1:
                raise ConfigError(f"--clip-weight must be >= 1, got {args.clip_weight}")
            recipe = {"name": args.name or Path(args.config).stem, "config": args.config, "overrides": overrides, "subsets_from": args.subsets_from, **({"live": True, "num_faces": args.num_faces} if args.live else {}),
                      **({"clips_in_training": {"folds": args.clips_in_training, "clip_weight": args.clip_weight, "actors": args.clip_actors}} if args.clips_in_training else {})}
            actors = load_clip_actors(args.clip_actors) if args.clips_in_training else None

            def done(run: dict[str, Any]) -> None:
                v = run["sets"].get("video") or next((s for k, s in run["sets"].items() if not k.startswith("photos.")), {})
                raf = run["sets"].get("photos.rafdb", {})
                log.info("seed %s: video %s/%s clips, mean window recall %s; RAF-DB AUC %s", run["seed"], v.get("clips_right"), v.get("n_clips"),
                         None if v.get("mean_window_recall") is None else round(v["mean_window_recall"], 3),
                         {k[4:]: round(x, 3) for k, x in raf.items() if k.startswith("auc.")})

            report = run_report(config, seeds, video, subsets=subsets, smoothing=smoothing, recipe=recipe, on_run=done, bundles_dir=args.keep_bundles, live=args.live, num_faces=args.num_faces,
                                clip_folds=args.clips_in_training, clip_weight=args.clip_weight, clip_actors=actors)
        report["seconds"] = round(time.perf_counter() - t0, 1)
        table = report_tables(report)
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(report, indent=2))
        write_text_atomic(out.with_suffix(".md"), f"Recipe: {json.dumps(report['recipe'])}; seeds {report['seeds'] or '-'}\n\n{table}\n")
        print(table)
        print(f"\nwritten {out} and {out.with_suffix('.md')} ({report['seconds']} s)")
        return 0
    except (ConfigError, DataError, FileNotFoundError, ValueError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
