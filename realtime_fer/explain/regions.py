"""Human-readable region names of the 468 face-mesh landmarks ("left inner brow", "right mouth
corner", "upper lip", "nose tip", ...), and the mesh's edges for drawing.

The table ships as ``assets/face_regions.json`` (built once by ``tools/build_face_regions.py``
from MediaPipe's landmark sets and the reference face), so nothing here needs MediaPipe.

**Left and right are the person's own** (as in MediaPipe's ``LEFT_EYE``): the "left mouth corner"
(landmark 291) is on the image's right in an unmirrored camera image and at +x in normalised
coordinates. The names are mirror-consistent: the name of ``mirror_index()[i]`` is the name of
``i`` with left and right swapped.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import numpy as np

from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS


@dataclass(frozen=True)
class FaceRegions:
    """The region table: per landmark a name, a coarse area and a side."""

    names: tuple[str, ...]
    """Region name of each landmark (468)."""
    areas: tuple[str, ...]
    """Coarse area of each landmark: mouth, around mouth, eyes, brows, nose, forehead, cheeks, chin and jaw."""
    sides: tuple[str, ...]
    """``left``, ``right`` (the person's own) or ``centre`` (midline)."""
    edges: np.ndarray
    """(E, 2) landmark pairs of the mesh triangulation."""
    contours: np.ndarray
    """(C, 2) landmark pairs of the feature contours (lips, eyes, brows, face oval)."""

    def indices(self, name: str) -> np.ndarray:
        """Landmarks of region ``name``; raises KeyError for an unknown name."""
        idx = np.array([i for i, n in enumerate(self.names) if n == name], np.int64)
        if not len(idx):
            raise KeyError(f"unknown region {name!r}; known: {', '.join(sorted(set(self.names)))}")
        return idx

    def area_indices(self, area: str) -> np.ndarray:
        """Landmarks of coarse area ``area`` (e.g. ``mouth``)."""
        idx = np.array([i for i, a in enumerate(self.areas) if a == area], np.int64)
        if not len(idx):
            raise KeyError(f"unknown area {area!r}; known: {', '.join(sorted(set(self.areas)))}")
        return idx

    @property
    def region_names(self) -> list[str]:
        """Distinct region names, sorted."""
        return sorted(set(self.names))


@functools.lru_cache(maxsize=1)
def face_regions() -> FaceRegions:
    """The shipped region table (cached)."""
    with resources.files("realtime_fer.assets").joinpath("face_regions.json").open("r", encoding="utf-8") as fh:
        raw = json.load(fh)
    names = tuple(raw["names"])
    if len(names) != NUM_MESH_LANDMARKS:
        raise RuntimeError(f"face_regions.json names {len(names)} landmarks, expected {NUM_MESH_LANDMARKS}")
    return FaceRegions(
        names=names,
        areas=tuple(raw["areas"]),
        sides=tuple(raw["sides"]),
        edges=np.asarray(raw["edges"], np.int64),
        contours=np.asarray(raw["contours"], np.int64),
    )


def region_name(landmark: int) -> str:
    """Region name of one mesh landmark (0..467)."""
    if not 0 <= int(landmark) < NUM_MESH_LANDMARKS:
        raise IndexError(f"landmark index {landmark} is outside the 468-point face mesh")
    return face_regions().names[int(landmark)]


def region_names(landmarks: Sequence[int]) -> list[str]:
    """Region names of several mesh landmarks."""
    return [region_name(i) for i in landmarks]


@dataclass(frozen=True)
class RegionGroups:
    """The named regions of a model's landmark subset, to sum attributions region by region.

    A region's attribution is the sum of the signed attributions of the model's landmarks in
    it (their x, y, z and frames already summed), so the regions' attributions add up to the
    landmarks' and completeness carries over unchanged."""

    names: tuple[str, ...]
    """The distinct regions of the subset, in the order of their first landmark."""
    index: np.ndarray
    """(L,) position in :attr:`names` of each landmark's region."""
    matrix: np.ndarray
    """(L, R) one-hot membership (float32): ``per_landmark @ matrix`` sums per region."""

    def sum(self, per_landmark: np.ndarray) -> np.ndarray:
        """(..., L) per-landmark values -> (..., R) sums per region, in the input's precision."""
        x = np.asarray(per_landmark)
        return x @ self.matrix.astype(x.dtype if x.dtype.kind == "f" else np.float64, copy=False)

    def members(self, region: str) -> np.ndarray:
        """Positions (into the subset) of the landmarks of ``region``."""
        return np.nonzero(self.index == self.names.index(region))[0]


def region_groups(landmarks: Sequence[int]) -> RegionGroups:
    """:class:`RegionGroups` of a landmark subset (mesh indices, in the model's order)."""
    names = region_names(landmarks)
    distinct = tuple(dict.fromkeys(names))
    pos = {n: k for k, n in enumerate(distinct)}
    index = np.array([pos[n] for n in names], np.int64)
    matrix = np.zeros((len(names), len(distinct)), np.float32)
    matrix[np.arange(len(names)), index] = 1.0
    matrix.flags.writeable = False
    index.flags.writeable = False
    return RegionGroups(distinct, index, matrix)


def swap_sides(name: str) -> str:
    """``name`` with the words left and right exchanged (the mirror image's region)."""
    return " ".join({"left": "right", "right": "left"}.get(w, w) for w in name.split(" "))
