"""Pruning configuration (``configs/prune_default.yaml``): a training config plus a ``prune`` section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from realtime_fer.config_io import from_dict, load_yaml
from realtime_fer.errors import ConfigError
from realtime_fer.training.config import TrainConfig


@dataclass
class PruneOptions:
    """Progressive landmark pruning (YAML section ``prune``)."""

    schedule: list[int] = field(default_factory=lambda: [468, 384, 320, 256, 192, 160, 128, 96, 64, 48, 32])
    """Landmark counts, strictly decreasing; the first is the full set the pruning starts from."""
    baseline: Literal["neutral", "others", "zero"] = "others"
    """IG baseline of the relevance (``others``: typical faces of the other emotions, the paper's)."""
    ig_steps: int = 8
    """Quadrature points of the IG path integral (Gauss-Legendre: completeness gaps ~1e-5 at 8)."""
    ig_method: Literal["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"] = "gausslegendre"
    max_samples: int = 200
    """Training windows of each emotion explained per step (evenly spaced)."""
    ranking: Literal["landmark", "region", "spread"] = "landmark"
    """How the relevance ranks landmarks: by each landmark's mean |attribution| (``landmark``);
    through its named region's mean |summed attribution| (``region``: the landmarks of the
    most relevant regions first, by their own relevance within a region); or ``spread``: the
    most relevant landmark of every region (regions by relevance), then the second of each,
    ... (docs/pruning.md)."""
    criterion: Literal["auc", "balanced_accuracy"] = "auc"
    """Validation metric of the curve and of the choice. AUC: it does not depend on a decision
    threshold (chosen on a small calibration split, which makes balanced accuracy jump by
    several points between neighbouring subsets) nor on the class imbalance of one-vs-rest."""
    tolerance: float = 0.005
    """Each emotion keeps the smallest subset whose criterion is within this of its best."""
    max_landmarks: int | None = None
    """A cost budget: each emotion keeps at most this many landmarks (the smallest subset
    within ``tolerance`` of the best at or under it); None: no budget."""
    random_seeds: int = 5
    """Random subsets of each size (the ablation), shared by all emotions."""
    output: str = "runs/prune"
    """Folder for the curves (JSON + PNG), heatmaps and the report."""
    bundle: str = "runs/pruned_model"
    """The pruned bundle to write."""
    time_runs: int = 300
    """onnxruntime runs (batch of one window) per model when measuring the inference time."""

    def __post_init__(self) -> None:
        s = self.schedule
        if not s or any(c < 1 for c in s) or any(b >= a for a, b in zip(s, s[1:])):
            raise ValueError(f"schedule must be strictly decreasing positive landmark counts, got {s}")
        if self.ig_steps < 1 or self.max_samples < 1:
            raise ValueError("ig_steps and max_samples must be >= 1")
        if self.ig_method == "riemann_trapezoid" and self.ig_steps < 2:
            raise ValueError("riemann_trapezoid needs ig_steps >= 2")
        if not 0 <= self.tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        if self.max_landmarks is not None and self.max_landmarks < min(s):
            raise ValueError(f"max_landmarks must be at least the schedule's smallest count ({min(s)}), got {self.max_landmarks}")
        if self.random_seeds < 0 or self.time_runs < 1:
            raise ValueError("random_seeds must be >= 0 and time_runs >= 1")


@dataclass
class PruneConfig(TrainConfig):
    """A training config (data, window, model; ``output`` unused) plus ``prune``."""

    prune: PruneOptions = field(default_factory=PruneOptions)


def load_prune_config(path: str | Path) -> PruneConfig:
    """Load a pruning config (relative paths resolve against the current directory)."""
    cfg = from_dict(PruneConfig, load_yaml(path), where=str(path))
    if not cfg.data.sources:
        raise ConfigError(f"{path}: data.sources lists no dataset folder")
    if "mean" not in cfg.model.pooling:
        raise ConfigError(f"{path}: pruning explains time-pooled features and needs 'mean' in model.pooling, got {cfg.model.pooling}")
    return cfg
