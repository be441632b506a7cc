"""Errors of the publishing stage (user-facing, so :class:`~realtime_fer.errors.FerError`)."""

from __future__ import annotations

from realtime_fer.errors import FerError


class PublishError(FerError):
    """A ZeroMQ endpoint cannot be bound or connected (bad address, port in use)."""


class MessageError(FerError, ValueError):
    """A message payload is malformed, of an unknown type, or of an unsupported schema version."""
