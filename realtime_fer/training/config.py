"""Training configuration (``configs/train_default.yaml``), as dataclasses loaded from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from realtime_fer.config_io import from_dict, load_yaml
from realtime_fer.data.motion import MotionOptions
from realtime_fer.errors import ConfigError
from realtime_fer.features.windows import WindowOptions
from realtime_fer.labels import EMOTIONS, canonical_label
from realtime_fer.landmarks.detector import LandmarkerOptions
from realtime_fer.models.blendshape_fusion import BlendshapeModelOptions
from realtime_fer.models.network import POOLINGS
from realtime_fer.training.domain_offset import DomainOffsetOptions
from realtime_fer.training.pseudo_labels import PseudoLabelOptions
from realtime_fer.models.randomized import RandomizedOptions
from realtime_fer.models.identity_subspace import IdentitySubspaceOptions
from realtime_fer.models.rest_normalisation import RestNormalisationOptions
from realtime_fer.models.speech_subspace import SpeechSubspaceOptions
from realtime_fer.models.torch_mlp import TorchOptions


@dataclass
class DataSource:
    """One dataset folder (any layout :func:`realtime_fer.data.layouts.discover` knows)."""

    path: str
    licence: str = "unknown"
    """Licence terms of the original data; copied into the bundle manifest."""
    name: str | None = None
    role: Literal["all", "train", "blendshape_model"] = "all"
    """``all``: split into training, validation and calibration and used by every model;
    ``train``: every sample is a training sample of every model, never a calibration or
    validation one (e.g. clips rendered from the training photos of another source);
    ``blendshape_model``: every sample trains the blendshape model only
    (``model.blendshape_model``), never the landmark models, calibration or validation."""
    weight: int = 1
    """Each training window of this source counts ``weight`` times in the fit (its row
    repeated; a whole number >= 1): a few clips among thousands of photos can then matter."""


@dataclass
class DataOptions:
    sources: list[DataSource] = field(default_factory=list)
    cache_dir: str = ".fer_cache"
    validation_fraction: float = 0.15
    """Share of groups (subjects, or single images) held out for validation metrics."""
    calibration_fraction: float = 0.10
    """Share of groups held out for Platt calibration and threshold choice."""
    split_seed: int = 0
    workers: int = 0
    """Extraction processes; 0 = all cores."""
    max_windows_per_video: int = 60
    mirror: bool = False
    """Train also on every training window's horizontal mirror image (left and right landmarks
    and blendshape categories swapped; calibration and validation windows are not mirrored)."""
    motion: MotionOptions = field(default_factory=MotionOptions)
    """Speech and head-motion augmentation of still faces (``motion.sources``: clips of people
    talking); empty sources: none."""
    domain_offset: DomainOffsetOptions = field(default_factory=DomainOffsetOptions)
    """Move each photo source's face geometry to the video's: a constant offset per landmark
    added to the pooled mean shape of the source's windows (see
    :mod:`realtime_fer.training.domain_offset`); off by default."""
    pseudo_labels: PseudoLabelOptions = field(default_factory=PseudoLabelOptions)
    """Self-training on unlabelled clips of real faces (``pseudo_labels.sources``): a second
    fit with the first fit's confident windows of those clips added to training (see
    :mod:`realtime_fer.training.pseudo_labels`); empty sources: none."""

    def __post_init__(self) -> None:
        if not 0 < self.validation_fraction < 0.9 or not 0 < self.calibration_fraction < 0.9:
            raise ValueError("validation_fraction and calibration_fraction must be in (0, 0.9)")
        if self.validation_fraction + self.calibration_fraction >= 0.9:
            raise ValueError("validation_fraction + calibration_fraction must leave data to train on")


@dataclass
class ModelOptions:
    family: Literal["randomized", "torch"] = "randomized"
    emotions: list[str] = field(default_factory=lambda: list(EMOTIONS))
    """Emotions to train a binary model for (those with too few examples are skipped)."""
    min_positives: int = 30
    pooling: list[str] = field(default_factory=lambda: ["mean"])
    """Temporal pooling of a window: ``mean`` (shape), ``std`` (spread), ``min``/``max``
    (extremes), ``delta`` (last minus first frame); see :func:`realtime_fer.models.network.pool`."""
    landmarks: list[int] | None = None
    """Landmark indices (of the 468-point mesh) for every emotion; default all."""
    landmark_subsets: dict[str, list[int]] = field(default_factory=dict)
    """Per-emotion landmark subsets (from pruning); override ``landmarks``."""
    blendshapes: bool = False
    """The models also read MediaPipe's 52 blendshape scores of each frame (extraction and the
    live landmarker then compute them)."""
    speech_subspace: SpeechSubspaceOptions = field(default_factory=SpeechSubspaceOptions)
    """Directions of real talking motion projected off the pooled ``mean`` shape before
    fitting (see :mod:`realtime_fer.models.speech_subspace`); rank 0: none."""
    identity_subspace: IdentitySubspaceOptions = field(default_factory=IdentitySubspaceOptions)
    """Directions in which resting (neutral) training faces differ, projected off after the
    speech subspace (see :mod:`realtime_fer.models.identity_subspace`); rank 0: none."""
    rest_normalisation: RestNormalisationOptions = field(default_factory=RestNormalisationOptions)
    """Subtract each window's predicted resting face (from its most expression-stable
    landmarks) from its pooled ``mean`` shape, after the projections, folded into the network
    (see :mod:`realtime_fer.models.rest_normalisation`); off by default (issue 18)."""
    shape_components: int = 0
    """Keep only the leading ``shape_components`` principal components of each model's pooled
    ``mean`` shape on its training windows (after the speech projection): the trailing
    directions, where neighbouring landmarks move against each other, are projected off and
    the projection folded into the network like the speech subspace's. 0: none (issue 22:
    attributions that cancel less; docs/faithfulness.md)."""
    symmetric: bool = False
    """Left/right symmetric models (:mod:`realtime_fer.models.symmetric`): with
    ``symmetric_parts: all``, each landmark subset gains its landmarks' mirror partners, and
    each fitted network is averaged with itself on the mirror image (a first layer twice as
    wide), so a face and its mirror image score alike; ``symmetric_parts`` below for the
    blendshapes alone; not combined with the identity subspace, shape components or rest
    normalisation."""
    symmetric_subsets: Literal["closure", "pairs"] = "closure"
    """How ``symmetric`` makes a landmark subset mirror-closed: ``closure`` adds every
    landmark's partner (about 1.5 times the landmarks), ``pairs`` keeps only the landmarks
    whose partner is in the subset too (about half)."""
    symmetric_parts: Literal["all", "blendshapes", "blendshape_sums"] = "all"
    """What ``symmetric`` mirrors: ``all`` (landmarks and blendshapes; subsets made
    mirror-closed), ``blendshapes`` (only the Left/Right blendshape categories are swapped:
    the landmark subsets and speech bases stay as they are; the first layer is still twice as
    wide, so inference and attributions cost twice as much) or ``blendshape_sums`` (each
    Left/Right blendshape pair is read only through its sum: the pairs' differences are
    projected off with the speech subspace and the projection folded into the first layer, at
    no cost)."""
    ignored_blendshapes: list[str] = field(default_factory=list)
    """Blendshape categories no model reads (``gaze``: the eight ``eyeLook*``; or names from
    MediaPipe's list): their pooled columns are projected off and the projection folded into
    the first layer (:mod:`realtime_fer.models.ignored_inputs`); the landmark and the
    blendshape networks alike. Empty (the default): every category is read (``[gaze]`` lost
    clips on the generalisation report: docs/video.md)."""
    blendshape_model: BlendshapeModelOptions = field(default_factory=BlendshapeModelOptions)
    """A blendshape-only network per emotion fused with the landmark model in log-odds space
    (see :mod:`realtime_fer.models.blendshape_fusion`); off by default."""
    withheld: dict[str, str] = field(default_factory=dict)
    """Emotions whose models are trained and published with their probabilities but never
    decided as the ``top``, each with the reason (written into the bundle's manifest)."""
    threshold_criterion: Literal["f1", "balanced_accuracy", "accuracy"] = "f1"
    threshold_bootstrap: int = 0
    """With N > 0, each threshold is the median of the best thresholds of N resamples of the
    calibration windows (``choose_threshold(bootstrap=N)``), not the single best point; 0: off."""
    randomized: RandomizedOptions = field(default_factory=RandomizedOptions)
    torch: TorchOptions = field(default_factory=TorchOptions)

    def __post_init__(self) -> None:
        self.emotions = [canonical_label(e) for e in self.emotions]
        for p in self.pooling:
            if p not in POOLINGS:
                raise ValueError(f"unknown pooling {p!r} ({', '.join(POOLINGS)})")
        self.landmark_subsets = {canonical_label(k): v for k, v in self.landmark_subsets.items()}
        self.withheld = {canonical_label(k): str(v) for k, v in self.withheld.items()}
        if self.shape_components < 0:
            raise ValueError("model.shape_components must be >= 0")
        if isinstance(self.threshold_bootstrap, bool) or not isinstance(self.threshold_bootstrap, int) or self.threshold_bootstrap < 0:
            raise ValueError(f"model.threshold_bootstrap must be an integer >= 0, got {self.threshold_bootstrap!r}")
        if self.symmetric and (self.shape_components or self.identity_subspace.enabled or self.rest_normalisation.enabled):
            raise ValueError("model.symmetric is not combined with shape_components, identity_subspace or rest_normalisation")
        if self.symmetric_subsets not in ("closure", "pairs"):
            raise ValueError("model.symmetric_subsets must be 'closure' or 'pairs'")
        if self.symmetric_parts not in ("all", "blendshapes", "blendshape_sums"):
            raise ValueError("model.symmetric_parts must be 'all', 'blendshapes' or 'blendshape_sums'")
        if self.symmetric and self.symmetric_parts == "all" and set(self.pooling) - {"mean", "delta", "std"}:
            raise ValueError("model.symmetric needs poolings among mean, delta and std (min/max swap under the mirror)")
        if self.ignored_blendshapes:
            from realtime_fer.models.ignored_inputs import blendshape_indices

            self.ignored_blendshapes = [str(n) for n in self.ignored_blendshapes]
            blendshape_indices(self.ignored_blendshapes)  # raises on an unknown name
            if not self.blendshapes:
                raise ValueError("model.ignored_blendshapes needs model.blendshapes: true")
        if set(self.withheld) - set(self.emotions):
            raise ValueError(f"withheld emotions must be among model.emotions: {', '.join(sorted(set(self.withheld) - set(self.emotions)))}")


@dataclass
class TrainConfig:
    data: DataOptions = field(default_factory=DataOptions)
    landmarker: LandmarkerOptions | None = None
    """Landmarker options for extraction; default: the dataset extractor's (25% padding on stills)."""
    window: WindowOptions = field(default_factory=WindowOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    output: str = "runs/model"
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [src.name or src.path for src in self.data.sources if isinstance(src.weight, bool) or not isinstance(src.weight, int) or src.weight < 1]
        if bad:
            raise ValueError(f"data.sources weight must be a whole number >= 1 ({', '.join(map(str, bad))})")
        if any(src.role == "blendshape_model" for src in self.data.sources):
            if not self.model.blendshape_model.enabled:
                raise ValueError("a data source with role blendshape_model needs model.blendshape_model.enabled: true")
            if all(src.role == "blendshape_model" for src in self.data.sources):
                raise ValueError("every data source has role blendshape_model; the landmark models need one with role all")


def load_train_config(path: str | Path) -> TrainConfig:
    """Load a training config; relative data/cache/output paths are resolved against the
    current directory (run from the project root)."""
    cfg = from_dict(TrainConfig, load_yaml(path), where=str(path))
    if not cfg.data.sources:
        raise ConfigError(f"{path}: data.sources lists no dataset folder")
    return cfg
