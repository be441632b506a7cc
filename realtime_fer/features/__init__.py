"""Stage 3 of the pipeline: normalised landmark windows that the classifiers score."""

from realtime_fer.features.windows import WindowOptions, sliding_windows, still_window

__all__ = ["WindowOptions", "sliding_windows", "still_window"]
