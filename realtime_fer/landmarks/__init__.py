"""Stage 2 of the pipeline: MediaPipe face landmarks and their pose/scale normalisation."""

from realtime_fer.landmarks.detector import (
    NUM_LANDMARKS,
    NUM_MESH_LANDMARKS,
    FaceLandmarkDetector,
    FaceLandmarks,
    LandmarkerOptions,
)
from realtime_fer.landmarks.model_file import find_model_file

__all__ = [
    "NUM_LANDMARKS",
    "NUM_MESH_LANDMARKS",
    "FaceLandmarkDetector",
    "FaceLandmarks",
    "LandmarkerOptions",
    "find_model_file",
]
