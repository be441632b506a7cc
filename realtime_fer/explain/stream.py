"""Attributions for the live stream: which face regions and blendshapes drove each decision.

For every scored face, each emotion at or above its threshold (and always the top emotion,
when it is not the ``neutral`` fallback) is explained by Integrated Gradients of its network
(numpy, no torch; the same engine as ``realtime-fer explain``), against a **neutral
baseline**, the first of:

``track``
    the track's own neutral face, once the recognizer has seen it (the last window the bundle
    called neutral) and its neutral blendshapes;
``person``
    the person's **predicted resting face** (:mod:`realtime_fer.explain.resting`), from the
    track's first window on: the resting face that the regression on RAF-DB's neutral faces
    predicts from the landmarks expressions hardly move (face outline, nose bridge, eye
    corners), averaged over the newest frames of the track's windows so far; refitted at the
    track's 1st, 2nd, 4th, ... 64th window and then every 128th. If the bundle does not call that face neutral
    (as a static window), it is moved towards the mean neutral face, to the first of 3/4, 1/2,
    1/4 of the way that it does call neutral. Blendshapes: the dataset's neutral ones;
``dataset``
    the dataset's mean neutral face (``assets/neutral_face.npy``) and neutral blendshapes
    (``person_baseline: false``, a bundle without stable landmarks, or a predicted face that
    is called neutral nowhere on the way).

Once a track has both a neutral window and a ``person`` baseline, each explained emotion is
compared with the one of the two its network scores lower as a still face
(``baseline_choice: lowest``): a window the recognizer called neutral can still hold much of
a held expression (the MEAD actors hold theirs throughout), and against it the attributions
would only explain "a little more than a moment ago" (docs/faithfulness.md).

Each explained emotion becomes an entry of ``Prediction.attributions`` (schema 2)::

    {"top": [{"region": str, "weight": float}           # top-k regions and blendshapes,
             | {"blendshape": str, "weight": float}, ...],  # by decreasing |weight|
     "output": float,            # calibrated logit of the window
     "baseline_output": float,   # calibrated logit of the baseline
     "sum": float,               # sum of ALL attributions (~ output - baseline_output)
     "baseline": "track" | "person" | "dataset",
     "landmarks": [{"landmark": int, "region": str, "weight": float}, ...]}  # detail: landmarks only

A ``region`` is one of the 48 named regions of ``assets/face_regions.json`` (left/right the
person's own); its ``weight`` is the signed attribution of the model's landmarks in it, with
x, y, z and the window's frames summed, in logit units. A ``blendshape`` entry names one of
MediaPipe's categories (e.g. ``browInnerUp``) with its attribution (time summed); its baseline
is the track's neutral blendshapes, else the mean of RAF-DB train's neutral faces. Regions and
blendshapes compete in one ranking, and their weights together add up to ``sum``.

Neighbouring landmarks move together and the networks weigh their coordinates with large
opposite signs, so single landmarks carry large attributions that cancel within a region;
the region sum is the evidence a person can read (docs/faithfulness.md). With ``detail:
landmarks`` the ``top_k`` largest single landmarks are listed too, as in schema 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np

from realtime_fer.explain.baselines import bundle_neutral_blendshapes, bundle_neutral_face
from realtime_fer.explain.integrated_gradients import IntegratedGradients
from realtime_fer.explain.regions import region_groups, region_names
from realtime_fer.explain.resting import RestingFacePredictor
from realtime_fer.models.bundle import FALLBACK, ModelBundle

log = logging.getLogger(__name__)


@dataclass
class StreamExplainOptions:
    """YAML section ``explain`` of the runtime config."""

    enabled: bool = True
    top_k: int = 5
    """Regions and blendshapes listed per explained emotion (and landmarks with ``detail:
    landmarks``)."""
    n_steps: int = 16
    """Quadrature points of the path integral (Gauss-Legendre: exact for polynomials of degree 31)."""
    method: Literal["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"] = "gausslegendre"
    which: Literal["top", "above_threshold"] = "above_threshold"
    """Explain only the top emotion, or every emotion at or above its threshold (always
    including the top one)."""
    track_neutral: bool = True
    """Use a track's own neutral window as its baseline once the recognizer has seen one."""
    baseline_choice: Literal["lowest", "first"] = "lowest"
    """Once a track has both a neutral window and a ``person`` baseline: ``lowest`` compares,
    for each explained emotion, the two as still faces and takes the one that emotion's network
    scores lower (a window the recognizer called neutral can still carry much of the explained
    emotion, and against it the attributions explain only "a little more than a moment ago");
    ``first``: the neutral window, always (before 0.11)."""
    detail: Literal["regions", "landmarks"] = "regions"
    """``landmarks``: also list the ``top_k`` largest single landmarks (under ``landmarks``)."""
    person_baseline: bool = True
    """Until the track's neutral face is known, compare with the person's predicted resting face
    (baseline ``person``) instead of the dataset's mean neutral face."""
    visible_only: bool = True
    """Move each baseline along the directions its network cannot see (the talking-motion
    directions projected off in training) to the face's own position before attributing, so
    their zero-sum weights are not listed (:mod:`realtime_fer.explain.invisible`;
    docs/faithfulness.md). ``output`` and ``baseline_output`` are unchanged."""
    talking_baseline: bool = True
    """With ``visible_only``: the baseline face also *talks* as the window does (the window's
    motion along those directions is added to its frames), so a talking mouth's spread is not
    listed as evidence: the explanation compares the face with the same person at rest,
    talking the same way (docs/faithfulness.md)."""
    person_stable: int = 200
    """The predictors of the resting face: the bundle's landmarks among the mesh's
    ``person_stable`` most stable ones (:mod:`realtime_fer.explain.resting`)."""
    person_ridge: float = 0.01
    """Ridge ``lambda`` of the resting-face regression (relative to the predictors' variance)."""

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.n_steps < 1:
            raise ValueError("top_k and n_steps must be >= 1")
        if self.person_stable < 1 or not self.person_ridge > 0:
            raise ValueError("explain.person_stable must be >= 1 and explain.person_ridge > 0")
        if self.baseline_choice not in ("lowest", "first"):
            raise ValueError(f"explain.baseline_choice must be 'lowest' or 'first', got {self.baseline_choice!r}")
        if self.detail not in ("regions", "landmarks"):
            raise ValueError(f"explain.detail must be 'regions' or 'landmarks', got {self.detail!r}")


class StreamExplainer:
    """Computes the ``attributions`` of live predictions for one bundle.

    Args:
        bundle: the model bundle being run.
        options: what to explain and how.
    """

    def __init__(self, bundle: ModelBundle, options: StreamExplainOptions | None = None) -> None:
        self.options = options or StreamExplainOptions()
        self.bundle = bundle
        self.landmarks = {e: np.asarray(entry.landmarks, np.int64) for e, entry in bundle.emotions.items()}
        # float32: ~3x faster than float64; completeness and the offline engine agree to ~1e-5
        self.engines = {e: IntegratedGradients(bundle.network(e), tolerance=1e-2, dtype="float32", visible_only=self.options.visible_only,
                                                talking_baseline=self.options.talking_baseline) for e in bundle.emotions}
        self.regions = {e: region_names(lms) for e, lms in self.landmarks.items()}
        self.groups = {e: region_groups(lms) for e, lms in self.landmarks.items()}
        # the ranked items of each emotion: its regions, then the blendshapes
        self._labels = {
            e: [{"region": n} for n in g.names] + [{"blendshape": n} for n in (bundle.blendshapes or ())] for e, g in self.groups.items()
        }
        self.thresholds = bundle.thresholds
        offset = bundle.domain_offset[0]  # a bundle trained on faces moved to the video's geometry
        self._dataset_neutral = bundle_neutral_face(bundle)
        self._track_neutral: dict[int, np.ndarray] = {}
        self.blendshape_names = bundle.blendshapes
        self._dataset_neutral_blend = bundle_neutral_blendshapes(bundle) if self.blendshape_names else None
        self._track_neutral_blend: dict[int, np.ndarray] = {}
        """track id -> its (468, 3) neutral face: the modelled landmarks from the track's last
        window called neutral, the others from the dataset's neutral face."""
        self.union = np.unique(np.concatenate(list(self.landmarks.values())))
        """The bundle's landmark union (sorted mesh indices): the landmarks of ``observe``'s ``union``."""
        self.person: RestingFacePredictor | None = None
        if self.options.person_baseline:
            union = self.union
            try:
                self.person = RestingFacePredictor(union, self.options.person_stable, self.options.person_ridge, offset=offset)
            except ValueError as exc:
                log.warning("no person baseline for this bundle (%s); using the dataset's neutral face", exc)
        if self.person is not None:
            # where each predictor is read: (emotion, its positions in that emotion's window, their rows in the predictors)
            # (greedy: the fewest emotions' windows that hold all predictors)
            self._stable_from: list[tuple[str, np.ndarray, np.ndarray]] = []
            left = set(self.person.stable.tolist())
            row_of = {int(m): i for i, m in enumerate(self.person.stable)}
            self._stable_in_union = np.searchsorted(union, self.person.stable)
            while left:
                emotion = max(self.landmarks, key=lambda e: len(left.intersection(self.landmarks[e].tolist())))
                lms = self.landmarks[emotion]
                pos = [j for j, m in enumerate(lms.tolist()) if m in left]
                left -= {int(lms[j]) for j in pos}
                self._stable_from.append((emotion, np.array(pos), np.array([row_of[int(lms[j])] for j in pos])))
        self._person_sum: dict[int, np.ndarray] = {}
        self._person_count: dict[int, int] = {}
        self._person_face: dict[int, np.ndarray | None] = {}
        """track id -> the sum over its windows of their newest frame on the predictors, the
        number of its windows, and its current ``person`` baseline (468, 3) (None: the
        predicted face was called neutral nowhere on the way to the mean neutral face)."""

    # -- baselines ------------------------------------------------------------------------------
    def observe(
        self,
        track_id: int,
        top: str,
        inputs: Mapping[str, np.ndarray],
        row: int,
        blendshapes: np.ndarray | None = None,
        union: np.ndarray | None = None,
    ) -> None:
        """Fold a track's window (row ``row`` of the per-emotion ``inputs``) into its ``person``
        baseline, and remember it as the track's neutral face (with its blendshapes, (N, T, B))
        when it was called neutral. ``union``: the same windows on the bundle's landmark union
        (N, T, L_union, 3), when the caller has them (one read instead of one per emotion)."""
        if self.person is not None:
            self._observe_person(track_id, inputs, row, union)
        if not (self.options.track_neutral and top == FALLBACK):
            return
        if blendshapes is not None and self.blendshape_names:
            self._track_neutral_blend[track_id] = np.asarray(blendshapes[row]).mean(axis=0, dtype=np.float64)
        face = self._track_neutral.get(track_id)
        if face is None:
            face = self._dataset_neutral.copy()
        for emotion, lms in self.landmarks.items():
            face[lms] = np.asarray(inputs[emotion][row]).mean(axis=0, dtype=np.float64)
        self._track_neutral[track_id] = face

    def _observe_person(self, track_id: int, inputs: Mapping[str, np.ndarray], row: int, union: np.ndarray | None) -> None:
        assert self.person is not None
        total = self._person_sum.get(track_id)
        if total is None:
            total = self._person_sum[track_id] = np.zeros((len(self.person.stable), 3), np.float64)
        if union is not None:  # the window's newest frame
            total += union[row, -1, self._stable_in_union]
        else:
            for emotion, pos, rows in self._stable_from:
                total[rows] += inputs[emotion][row, -1, pos]
        seen = self._person_count[track_id] = self._person_count.get(track_id, 0) + 1
        if seen & (seen - 1) == 0 if seen <= 64 else seen % 128 == 0:  # refitted at the 1st, 2nd, 4th, ... 64th window, then every 128th
            self._person_face[track_id] = self._person_baseline(total / seen)

    def _person_baseline(self, stable_face: np.ndarray) -> np.ndarray | None:
        """The predicted resting face (468, 3) of a face's predictors, moved towards the mean
        neutral face until the bundle calls it neutral; None when it never does."""
        assert self.person is not None
        predicted = self.person.predict(stable_face)
        union = self.person.targets
        fractions = (1.0, 0.75, 0.5, 0.25)
        faces = np.repeat(self._dataset_neutral[None], len(fractions), axis=0)
        for k, a in enumerate(fractions):
            faces[k, union] += a * (predicted - self._dataset_neutral[union])
        blends = None if self._dataset_neutral_blend is None else np.repeat(self._dataset_neutral_blend[None], len(fractions), axis=0)
        probs = {emotion: self._still_probability(emotion, faces, blends) for emotion in self.engines}
        called = self.bundle.decide(probs) == FALLBACK
        if not called.any():
            return None
        return faces[int(np.argmax(called))]

    def _still_probability(self, emotion: str, faces: np.ndarray, blends: np.ndarray | None) -> np.ndarray:
        """``emotion``'s calibrated probability (N,) of still faces (N, 468, 3) held with
        blendshapes (N, B) (None for a bundle without them)."""
        net = self.engines[emotion].net
        # a held face: every pooling of a held frame is the same for 2 frames as for T
        x = np.repeat(faces[:, None][:, :, self.landmarks[emotion]], 2, axis=1)
        b = np.repeat(np.asarray(blends)[:, None], 2, axis=1) if net.n_blendshapes else None
        return net.probability(x, b)

    def forget(self, track_id: int) -> None:
        """Drop a lost track's baselines."""
        self._track_neutral.pop(track_id, None)
        self._track_neutral_blend.pop(track_id, None)
        self._person_sum.pop(track_id, None)
        self._person_count.pop(track_id, None)
        self._person_face.pop(track_id, None)

    def baseline(self, track_id: int, emotion: str | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
        """A track's current baseline: its (468, 3) face, its blendshapes (B,) (None for a
        bundle without blendshapes) and which it is (``track``, ``person`` or ``dataset``).
        With ``emotion``, the baseline that emotion is explained against (``baseline_choice``)."""
        return self.baselines([track_id], emotion)[0]

    def baselines(self, track_ids: Sequence[int], emotion: str | None = None) -> list[tuple[np.ndarray, np.ndarray | None, str]]:
        """:meth:`baseline` of several tracks, the ``lowest`` choice scored in one batch."""
        out = []
        both = []  # rows whose track has a neutral window and a person baseline
        for i, t in enumerate(track_ids):
            blend = self._track_neutral_blend.get(t, self._dataset_neutral_blend) if self.blendshape_names else None
            face = self._track_neutral.get(t)
            person = self._person_face.get(t)
            if face is not None:
                out.append((face, blend, "track"))
                if person is not None:
                    both.append(i)
            elif person is not None:
                out.append((person, blend, "person"))
            else:
                out.append((self._dataset_neutral, blend, "dataset"))
        if emotion is None or self.options.baseline_choice != "lowest" or not both or emotion not in self.engines:
            return out
        persons = [self._person_face[track_ids[i]] for i in both]
        faces = np.stack([out[i][0] for i in both] + persons)
        blends = None if self._dataset_neutral_blend is None else np.stack([out[i][1] for i in both] + [self._dataset_neutral_blend] * len(both))
        p = self._still_probability(emotion, faces, blends)
        n = len(both)
        for j, i in enumerate(both):
            if p[n + j] < p[j]:
                out[i] = (persons[j], self._dataset_neutral_blend if self.blendshape_names else None, "person")
        return out

    # -- explanations ---------------------------------------------------------------------------
    def to_explain(self, probabilities: Mapping[str, float], top: str) -> list[str]:
        """The emotions of one face to explain."""
        names = [top] if top != FALLBACK and top in self.engines else []
        if self.options.which == "above_threshold":
            names += [e for e, p in probabilities.items() if e != top and e in self.engines and p >= self.thresholds[e]]
        return names

    def explain(
        self,
        inputs: Mapping[str, np.ndarray],
        track_ids: Sequence[int],
        requests: Sequence[Sequence[str]],
        blendshapes: np.ndarray | None = None,
    ) -> list[dict[str, dict]]:
        """Attributions of a scoring step.

        Args:
            inputs: emotion -> (N, T, L_e, 3) windows of the N scored faces (the model inputs).
            track_ids: the N faces' track ids (for their neutral baselines).
            requests: for each face, the emotions to explain (see :meth:`to_explain`).
            blendshapes: (N, T, B) the faces' blendshape windows, for bundles that read them.

        Returns:
            For each face, emotion -> attribution entry (see the module docstring).
        """
        out: list[dict[str, dict]] = [{} for _ in track_ids]
        for emotion in self.engines:
            rows = [i for i, req in enumerate(requests) if emotion in req]
            if not rows:
                continue
            chosen = self.baselines([track_ids[i] for i in rows], emotion)
            bases = dict(zip(rows, chosen))
            blend_bases = {i: b[1] for i, b in bases.items()} if self.blendshape_names else None
            x = np.asarray(inputs[emotion])[rows]
            lms = self.landmarks[emotion]
            base = np.stack([np.broadcast_to(bases[i][0][lms], x.shape[1:]) for i in rows])
            extra = {}
            if blend_bases is not None:
                xb = np.asarray(blendshapes)[rows]
                extra = {"blendshapes": xb, "blendshape_baselines": np.stack([np.broadcast_to(blend_bases[i], xb.shape[1:]) for i in rows])}
            attr = self.engines[emotion].attribute(x, base, n_steps=self.options.n_steps, method=self.options.method, **extra)
            per_lm = attr.per_landmark()
            per_bs = attr.per_blendshape()
            weights = self.groups[emotion].sum(per_lm)
            if per_bs is not None:
                weights = np.concatenate([weights, per_bs], axis=1)
            k = min(self.options.top_k, weights.shape[1])
            order = np.argsort(-np.abs(weights), axis=1, kind="stable")[:, :k]
            ranked = np.take_along_axis(weights, order, axis=1).tolist()
            labels = self._labels[emotion]
            if self.options.detail == "landmarks":
                lm_order = np.argsort(-np.abs(per_lm), axis=1, kind="stable")[:, : self.options.top_k]
                lm_ranked = np.take_along_axis(per_lm, lm_order, axis=1).tolist()
            totals = attr.total
            for j, i in enumerate(rows):
                entry = {
                    "top": [{**labels[m], "weight": w} for m, w in zip(order[j].tolist(), ranked[j])],
                    "output": float(attr.output[j]),
                    "baseline_output": float(attr.baseline_output[j]),
                    "sum": float(totals[j]),
                    "baseline": bases[i][2],
                }
                if self.options.detail == "landmarks":
                    regions = self.regions[emotion]
                    entry["landmarks"] = [{"landmark": int(lms[m]), "region": regions[m], "weight": w} for m, w in zip(lm_order[j].tolist(), lm_ranked[j])]
                out[i][emotion] = entry
        return out
