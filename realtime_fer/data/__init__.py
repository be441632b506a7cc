"""Datasets: finding labelled samples in a folder (:mod:`~realtime_fer.data.layouts`) and
extracting their face landmarks into a content cache (:mod:`~realtime_fer.data.extract`)."""

from realtime_fer.data.extract import ExtractedSample, ExtractionResult, default_options, extract_dataset
from realtime_fer.data.layouts import Discovery, SampleRef, discover

__all__ = [
    "Discovery",
    "ExtractedSample",
    "ExtractionResult",
    "SampleRef",
    "default_options",
    "discover",
    "extract_dataset",
]
