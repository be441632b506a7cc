"""Error types. Every error a user can cause is a :class:`FerError` with a readable message;
the CLI prints the message and exits non-zero instead of showing a traceback."""

from __future__ import annotations


class FerError(Exception):
    """Base class for all expected, user-facing errors of realtime_fer."""

    exit_code: int = 2


class ConfigError(FerError):
    """A configuration file is missing, unreadable or malformed."""


class ModelFileError(FerError):
    """The MediaPipe Face Landmarker model cannot be found or fails verification."""


class BundleError(FerError):
    """A model bundle is missing, corrupt or does not match what is expected."""


class DataError(FerError):
    """A dataset folder, file or label is missing or unusable."""


class SourceError(FerError):
    """A video source (camera, URL, file) cannot be opened or read."""
