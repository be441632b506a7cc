"""Readable region names of the 468 mesh landmarks (realtime_fer.explain.regions): spot checks of
well-known MediaPipe indices, the person's-own left/right convention, consistency with the
mirror map, and the shipped table being what tools/build_face_regions.py builds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.explain.regions import face_regions, region_name, region_names, swap_sides
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.landmarks.normalize import mirror_index, reference_face

ROOT = Path(__file__).resolve().parent.parent


def test_well_known_landmarks() -> None:
    assert region_name(291) == "left mouth corner" and region_name(61) == "right mouth corner"
    assert region_name(308) == "left mouth corner" and region_name(78) == "right mouth corner"
    assert region_name(1) == "nose tip" and region_name(4) == "nose tip"
    assert region_name(13) == "upper lip" and region_name(0) == "upper lip"
    assert region_name(14) == "lower lip" and region_name(17) == "lower lip"
    assert region_name(152) == "chin" and region_name(10) == "forehead"
    assert region_name(168) == "nose bridge"
    assert region_name(334).startswith("left ") and "brow" in region_name(334)
    assert region_name(105).startswith("right ") and "brow" in region_name(105)
    assert region_name(336) == "left inner brow" and region_name(107) == "right inner brow"
    assert region_name(300) == "left outer brow" and region_name(70) == "right outer brow"
    assert region_name(386) == "left upper eyelid" and region_name(374) == "left lower eyelid"
    assert region_name(159) == "right upper eyelid" and region_name(145) == "right lower eyelid"
    assert region_name(263) == "left eye outer corner" and region_name(362) == "left eye inner corner"
    assert region_names([33, 133]) == ["right eye outer corner", "right eye inner corner"]
    assert "cheek" in region_name(50) and "cheek" in region_name(280)
    with pytest.raises(IndexError):
        region_name(468)


def test_left_is_the_persons_own_left_at_plus_x() -> None:
    """The person's left (MediaPipe LEFT_EYE: 263, 362, ...) is at +x of the normalised face,
    i.e. on the image's right of an unmirrored camera image."""
    ref = reference_face()
    regions = face_regions()
    left = np.array([s == "left" for s in regions.sides])
    right = np.array([s == "right" for s in regions.sides])
    assert ref[left, 0].mean() > 0.3 > -0.3 > ref[right, 0].mean()
    for i, name in enumerate(regions.names):  # central regions (upper lip, forehead) span both sides
        if "left" in name.split():
            assert left[i], (i, name)
        if "right" in name.split():
            assert right[i], (i, name)


def test_names_are_consistent_with_the_mirror_map() -> None:
    regions = face_regions()
    mirror = mirror_index()
    assert len(regions.names) == NUM_MESH_LANDMARKS and all(regions.names)
    for i in range(NUM_MESH_LANDMARKS):
        assert regions.names[mirror[i]] == swap_sides(regions.names[i]), i
        if mirror[i] == i:
            assert "left" not in regions.names[i].split() and "right" not in regions.names[i].split(), i
    assert swap_sides("below the left mouth corner") == "below the right mouth corner"


def test_regions_and_areas_cover_the_features() -> None:
    regions = face_regions()
    names = regions.region_names
    assert 30 <= len(names) <= 80
    for expected in ("left inner brow", "right mouth corner", "upper lip", "nose tip", "left upper eyelid", "chin", "left cheek", "forehead"):
        assert expected in names
    mouth = set(regions.area_indices("mouth"))
    assert {0, 13, 14, 17, 61, 291, 78, 308} <= mouth and 1 not in mouth
    assert set(regions.indices("left mouth corner")) >= {291, 308}
    assert regions.edges.shape[1] == 2 and len(regions.edges) > 1000 and regions.edges.max() < NUM_MESH_LANDMARKS
    with pytest.raises(KeyError, match="unknown region"):
        regions.indices("left ear")


def test_shipped_table_is_what_the_build_tool_builds() -> None:
    pytest.importorskip("mediapipe")
    spec = importlib.util.spec_from_file_location("build_face_regions", ROOT / "tools" / "build_face_regions.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)  # type: ignore[union-attr]
    built = tool.build()
    shipped = json.loads((ROOT / "realtime_fer" / "assets" / "face_regions.json").read_text())
    for key in ("names", "areas", "sides", "edges", "contours"):
        assert built[key] == shipped[key], key
