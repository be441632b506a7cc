#!/usr/bin/env python3
"""How readable are the explanations the stream publishes? Issue 22's own measure, on the
messages a user receives.

Each labelled clip goes through the real ``realtime-fer analyze CLIP -o OUT.jsonl`` (every
frame, the runtime defaults, the model given); for every prediction with a ``top`` emotion
the published explanation of that emotion is read back and measured:

* **top5/sum**: the sum of the top 5 |weights| of ``attributions[top]["top"]`` over
  ``|attributions[top]["sum"]|`` (1 or less: the list is the evidence; far above 1: large
  weights that cancel). Issue 22's target: median at most 2 on every MEAD clip;
* **FACS in the top 3**: the share of predictions whose first 3 items name a region or
  blendshape where FACS places the predicted emotion (``realtime_fer.explain.plausibility``);
  ``facs_label`` is the same against the clip's own label.

Per clip it prints the number of predictions, the tops they published, the medians and the
shares; ``--output`` writes them as JSON (atomically). A clip that cannot be analysed (no face,
corrupt file) is listed with the reason and the others are still measured.

    python tools/stream_explanations.py                                   # the MEAD clips, shipped model
    python tools/stream_explanations.py --model runs/b/seed0 --output runs/stream.json
    python tools/stream_explanations.py ../shared/data/video/wild/*.mp4 --keep-jsonl runs/jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime_fer.data.layouts import discover  # noqa: E402
from realtime_fer.errors import DataError  # noqa: E402
from realtime_fer.explain.plausibility import facs_items  # noqa: E402
from realtime_fer.io_atomic import write_text_atomic  # noqa: E402

log = logging.getLogger("stream_explanations")
MEAD = ROOT.parent / "shared" / "data" / "video" / "mead"
TOP_K = 5
FACS_K = 3


def _name(item: dict[str, Any]) -> str | None:
    return item.get("region") or item.get("blendshape") or item.get("landmark")


def measure_messages(lines: Iterable[str], label: str | None = None) -> dict[str, Any]:
    """The measures of one clip's JSON-lines messages (see the module docstring).

    ``label`` is the clip's true emotion (for ``facs_label``); predictions with no ``top`` or
    no explanation of it are counted in ``tops`` but not measured."""
    ratios, facs_top, facs_label, tops = [], [], [], Counter()
    for line in lines:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg.get("type") != "prediction":
            continue
        top = msg.get("top")
        tops[top or "none"] += 1
        expl = (msg.get("attributions") or {}).get(top) if top else None
        if not expl or not expl.get("top"):
            continue
        weights = [abs(float(i["weight"])) for i in expl["top"][:TOP_K]]
        total = abs(float(expl.get("sum", 0.0)))
        ratios.append(sum(weights) / total if total > 0 else float("inf"))
        first = [_name(i) for i in expl["top"][:FACS_K]]
        facs_top.append(any(n in facs_items(top) for n in first))
        if label is not None and facs_items(label):
            facs_label.append(any(n in facs_items(label) for n in first))
    finite = [r for r in ratios if np.isfinite(r)]
    return {
        "predictions": int(sum(tops.values())),
        "tops": dict(tops.most_common()),
        "explained": len(ratios),
        "top5_over_sum_median": float(np.median(finite)) if finite else None,
        "top5_over_sum_p90": float(np.percentile(finite, 90)) if finite else None,
        "facs_top3": float(np.mean(facs_top)) if facs_top else None,
        "facs_label_top3": float(np.mean(facs_label)) if facs_label else None,
    }


def analyze_clip(clip: Path, model: str | None, out: Path, timeout: float) -> str | None:
    """Run ``realtime-fer analyze`` on ``clip`` into ``out``; ``None`` or the reason it failed."""
    cmd = [sys.executable, "-m", "realtime_fer", "analyze", str(clip), "--output", str(out)]
    if model:
        cmd += ["--model", model]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"analyze took more than {timeout:.0f} s"
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
        return f"analyze exited {done.returncode}: {lines[-1] if lines else 'no message'}"
    return None


def clips_of(paths: list[str]) -> list[tuple[Path, str | None]]:
    """(clip, label) for each path; a folder gives its labelled clips; a file's label is read
    from its name where it names an emotion."""
    out: list[tuple[Path, str | None]] = []
    labels_in: dict[Path, dict[str, str]] = {}  # folder -> file name -> label, discovered once per folder
    for p in map(Path, paths):
        if p.is_dir():
            out += [(s.path, s.label) for s in discover(p).samples if s.kind == "video"]
            continue
        if p.parent not in labels_in:
            try:
                labels_in[p.parent] = {s.path.name: s.label for s in discover(p.parent).samples}
            except DataError:
                labels_in[p.parent] = {}
        out.append((p, labels_in[p.parent].get(p.name)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", nargs="*", help=f"clips or folders of labelled clips (default: {MEAD})")
    p.add_argument("--model", help="model bundle folder (default: the shipped model)")
    p.add_argument("--output", help="write the measures as JSON here")
    p.add_argument("--keep-jsonl", metavar="DIR", help="keep each clip's analyze output in DIR")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per clip (default %(default)s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    paths = args.clips or [str(MEAD)]
    missing = [c for c in paths if not Path(c).exists()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        clips = clips_of(paths)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not clips:
        print(f"error: no video clip in {', '.join(paths)}", file=sys.stderr)
        return 2
    if args.model and not Path(args.model).is_dir():
        print(f"error: model bundle folder not found: {args.model}", file=sys.stderr)
        return 2

    keep = Path(args.keep_jsonl) if args.keep_jsonl else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip, label in clips:
            out = (keep or Path(tmp)) / f"{clip.stem}.jsonl"
            log.info("analyze %s", clip)
            failed = analyze_clip(clip, args.model, out, args.timeout)
            if failed:
                results[str(clip)] = {"label": label, "error": failed}
                continue
            with out.open() as fh:
                results[str(clip)] = {"label": label, **measure_messages(fh, label)}

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    print(f"{'clip':28s} {'label':9s} {'preds':>5s} {'top5/sum':>8s} {'p90':>6s} {'FACS top3':>9s} {'(label)':>7s}  tops")
    for clip, r in results.items():
        name = Path(clip).stem[:28]
        if "error" in r:
            print(f"{name:28s} {str(r['label']):9s} error: {r['error']}")
            continue
        tops = ", ".join(f"{k} {v}" for k, v in r["tops"].items())
        print(f"{name:28s} {str(r['label']):9s} {r['predictions']:5d} {fmt(r['top5_over_sum_median']):>8s} {fmt(r['top5_over_sum_p90']):>6s} "
              f"{fmt(r['facs_top3']):>9s} {fmt(r['facs_label_top3']):>7s}  {tops}")
    if args.output:
        write_text_atomic(Path(args.output), json.dumps({"model": args.model or "default", "clips": results}, indent=1))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
