#!/usr/bin/env python3
"""Build ``realtime_fer/assets/face_regions.json``: a readable region name for each of the 468
face-mesh landmarks, and the mesh's edges for drawing.

    python tools/build_face_regions.py

Run once at build time (it needs MediaPipe for the index sets; the runtime only reads the JSON).

**Left and right are the person's own**, as in MediaPipe's ``LEFT_EYE``/``LEFT_EYEBROW`` sets:
"left mouth corner" is the subject's left mouth corner (landmark 291), which is on the *image's
right* in an unmirrored camera image and at +x in normalised coordinates.

How names are derived:

1. **Feature contours** come from MediaPipe's connection sets (``FaceLandmarksConnections``):
   lips (corners 61/291 outer, 78/308 inner; the lip contours and every landmark inside the
   outer contour are "upper"/"lower" lip by the side of the corner-to-corner line; the middle third of the mouth width is "upper lip"/"lower lip", the outer thirds
   "left upper lip" etc.), eyes (corners; upper/lower eyelid by the corner line), eyebrows
   (inner/mid/outer thirds along the brow), nose (bridge, tip, base on the midline; the alar
   outline is "left nostril").
2. **Every other landmark** gets a zone name from its position on the reference face
   (``assets/reference_face.npy``, y down) relative to those features: above the brows
   "forehead"/"left forehead"/"left temple", around the eyes "between the brows", "nose bridge",
   eyelids, "left under-eye", then "left side of nose", "left cheek", "above the upper lip",
   "left nasolabial fold", "below the left mouth corner", "below the lower lip", "chin",
   "left jaw".
3. Names are computed for the midline and the person's left half and copied to the right half
   through the mirror map (``assets/mirror_index.npy``), so ``name[mirror[i]]`` is always
   ``name[i]`` with left and right swapped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "realtime_fer" / "assets"

#: coarse area of every region name, checked in this order (the first key found in the name wins,
#: so "above the upper lip" is around the mouth, not the mouth)
AREAS = (
    ("around mouth", ("above the upper lip", "below the lower lip", "nasolabial fold", "below the left mouth corner", "below the right mouth corner")),
    ("mouth", ("mouth corner", "upper lip", "lower lip")),
    ("eyes", ("eyelid", "eye inner corner", "eye outer corner", "under-eye")),
    ("brows", ("brow",)),
    ("nose", ("nose", "nostril")),
    ("forehead", ("forehead", "temple")),
    ("cheeks", ("cheek",)),
    ("chin and jaw", ("chin", "jaw")),
)


def _indices(connections: list) -> list[int]:
    return sorted({int(c.start) for c in connections} | {int(c.end) for c in connections})


def _area(name: str) -> str:
    for area, keys in AREAS:
        if any(k in name for k in keys):
            return area
    raise ValueError(f"no area for region {name!r}")


def build() -> dict:
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    ref = np.load(ASSETS / "reference_face.npy").astype(np.float64)
    mirror = np.load(ASSETS / "mirror_index.npy").astype(np.int64)
    n = len(ref)
    midline = np.nonzero(mirror == np.arange(n))[0]
    # signed distance from the (slightly tilted) midline: > 0 on the person's left
    fit = np.polyfit(ref[midline, 1], ref[midline, 0], 1)
    s = ref[:, 0] - np.polyval(fit, ref[:, 1])
    y = ref[:, 1]
    if s[263] <= 0 or s[291] <= 0:
        raise RuntimeError("expected the person's left (landmarks 263, 291) at +x of the reference face")

    lips = set(_indices(C.FACE_LANDMARKS_LIPS))
    eye = set(_indices(C.FACE_LANDMARKS_LEFT_EYE))
    brow = set(_indices(C.FACE_LANDMARKS_LEFT_EYEBROW))
    nose = set(_indices(C.FACE_LANDMARKS_NOSE))
    oval = set(_indices(C.FACE_LANDMARKS_FACE_OVAL))

    def side_of_line(i: int, a: int, b: int) -> float:
        """< 0: above the line through landmarks a and b (y grows downwards)."""
        t = (ref[i, 0] - ref[a, 0]) / (ref[b, 0] - ref[a, 0])
        return y[i] - (y[a] + t * (y[b] - y[a]))

    brow_s = np.array([s[i] for i in brow])
    brow_in, brow_out = brow_s.min(), brow_s.max()
    brow_top = min(y[i] for i in brow)
    brow_bottom = max(y[i] for i in brow)
    eye_in, eye_out = min(s[i] for i in eye), max(s[i] for i in eye)
    eye_top, eye_bottom = min(y[i] for i in eye), max(y[i] for i in eye)
    nose_half = max(s[i] for i in nose)
    tip_y, base_y = y[4], y[2]
    lips_top, lips_bottom = min(y[i] for i in lips), max(y[i] for i in lips)
    mouth_half = s[291]
    corner_y = y[291]

    outer_lip = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
    lip_poly = ref[outer_lip, :2]

    def inside_lips(i: int) -> bool:
        """Ray casting: is landmark i inside the outer lip contour (2-D, frontal view)?"""
        px, py = ref[i, 0], ref[i, 1]
        inside = False
        for (x1, y1), (x2, y2) in zip(lip_poly, np.roll(lip_poly, -1, axis=0)):
            if (y1 > py) != (y2 > py) and px < x1 + (py - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    def brow_third(i: int) -> str:
        t = (s[i] - brow_in) / (brow_out - brow_in)
        return "inner brow" if t < 1 / 3 else "mid brow" if t < 2 / 3 else "outer brow"

    def left_name(i: int) -> str:
        """Name of a landmark on the midline or the person's left half, without the side word
        for midline-only names and with '<side>' for sided ones."""
        if i in (61, 291, 78, 308):
            return "<side> mouth corner"
        if i in lips or inside_lips(i):
            upper = side_of_line(i, 78, 308) < 0 if i in (13, 312, 311, 310, 415, 82, 81, 80, 191) else side_of_line(i, 61, 291) < 0
            part = "upper lip" if upper else "lower lip"
            return part if s[i] < mouth_half / 3 else f"<side> {part}"
        if i in eye:
            if i in (263, 33):
                return "<side> eye outer corner"
            if i in (362, 133):
                return "<side> eye inner corner"
            return "<side> upper eyelid" if side_of_line(i, 362, 263) < 0 else "<side> lower eyelid"
        if i in brow:
            return f"<side> {brow_third(i)}"
        if i in nose:
            if s[i] < 0.02 or i in (168, 6, 197, 195, 5, 4, 1, 19, 94, 2):
                if y[i] < tip_y - 0.15:
                    return "nose bridge"
                return "nose tip" if y[i] <= tip_y + 0.12 else "nose base"
            return "<side> nostril"
        # zones for every other landmark
        if y[i] < brow_top:
            if s[i] < (brow_in + brow_out) / 2:
                return "forehead"
            return "<side> forehead" if s[i] < brow_out else "<side> temple"
        if y[i] <= brow_bottom:
            if s[i] < brow_in:
                return "between the brows"
            return f"<side> {brow_third(i)}" if s[i] <= brow_out + 0.05 else "<side> temple"
        if y[i] < eye_top:
            if s[i] < eye_in:
                return "between the brows" if y[i] < y[168] else "nose bridge"
            return "<side> upper eyelid" if s[i] <= eye_out + 0.05 else "<side> temple"
        if y[i] <= eye_bottom + 0.08:
            if s[i] < eye_in:
                return "nose bridge"
            if s[i] <= eye_out + 0.08:
                return "<side> upper eyelid" if side_of_line(i, 362, 263) < 0 else "<side> lower eyelid"
            return "<side> temple" if s[i] > eye_out + 0.25 else "<side> eye outer corner"
        if y[i] <= base_y:
            if s[i] < nose_half * 0.85 and y[i] < tip_y - 0.15:
                return "nose bridge" if s[i] < 0.1 else "<side> side of nose"
            if s[i] < nose_half:
                return "<side> side of nose" if y[i] < tip_y + 0.05 else "<side> nostril"
            if s[i] <= eye_out and y[i] < eye_bottom + 0.3:
                return "<side> under-eye"
            return "<side> cheek"
        if y[i] < lips_top:
            if s[i] < mouth_half * 0.8:
                return "above the upper lip"
            return "<side> nasolabial fold" if s[i] < mouth_half + 0.35 else "<side> cheek"
        if y[i] <= lips_bottom + 0.05:
            if s[i] < mouth_half * 0.8:
                return "below the lower lip" if y[i] > corner_y else "above the upper lip"
            if s[i] < mouth_half + 0.2:
                if y[i] < corner_y - 0.1:
                    return "<side> nasolabial fold"
                return "<side> mouth corner" if y[i] < corner_y + 0.1 else "below the <side> mouth corner"
            return "<side> cheek" if y[i] < corner_y else "<side> jaw"
        if s[i] < mouth_half * 0.8:
            return "below the lower lip" if y[i] < lips_bottom + 0.2 else "chin"
        if s[i] < mouth_half + 0.2 and y[i] < lips_bottom + 0.25:
            return "below the <side> mouth corner"
        return "chin" if s[i] < mouth_half + 0.1 else "<side> jaw"

    names: list[str | None] = [None] * n
    for i in range(n):
        if mirror[i] == i:
            names[i] = left_name(i).replace("<side> ", "").replace("<side>", "")
        elif s[i] > 0:
            raw = left_name(i)
            names[i] = raw.replace("<side>", "left")
            names[mirror[i]] = raw.replace("<side>", "right")
    if any(v is None for v in names):
        raise RuntimeError("some landmarks got no name (mirror map and midline disagree)")
    for i in oval:  # the outline never belongs to the inner features
        if names[i] is None:
            raise RuntimeError(f"oval landmark {i} unnamed")
    edges = sorted({tuple(sorted((int(c.start), int(c.end)))) for c in C.FACE_LANDMARKS_TESSELATION})
    contours = sorted({tuple(sorted((int(c.start), int(c.end)))) for c in C.FACE_LANDMARKS_CONTOURS})
    side = ["centre" if mirror[i] == i else ("left" if s[i] > 0 else "right") for i in range(n)]
    return {
        "version": 1,
        "convention": "left/right are the person's own (MediaPipe LEFT_EYE is the person's left eye): "
        "on the image's right in an unmirrored camera image, +x in normalised coordinates",
        "built_by": "tools/build_face_regions.py (MediaPipe FaceLandmarksConnections + reference_face.npy + mirror_index.npy)",
        "names": names,
        "areas": [_area(nm) for nm in names],
        "sides": side,
        "edges": [list(e) for e in edges],
        "contours": [list(e) for e in contours],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=str(ASSETS / "face_regions.json"))
    args = ap.parse_args()
    table = build()
    text = json.dumps({k: v for k, v in table.items() if k not in ("edges", "contours")}, indent=1)
    # keep the long edge lists on one line each so the file stays small and diffable
    text = text[:-2] + ',\n "edges": ' + json.dumps(table["edges"], separators=(",", ":")) + ',\n "contours": ' + json.dumps(table["contours"], separators=(",", ":")) + "\n}\n"
    Path(args.output).write_text(text, encoding="utf-8")
    counts: dict[str, int] = {}
    for nm in table["names"]:
        counts[nm] = counts.get(nm, 0) + 1
    for nm, c in sorted(counts.items()):
        print(f"{c:4d}  {nm}")
    print(f"{len(counts)} regions -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
