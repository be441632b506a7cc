"""Capture stage: open a camera, stream, video file or image and read it in a thread.

* :func:`open_source` / :class:`Source` (:mod:`.sources`): what ``--source`` names, opened and
  validated; :class:`~realtime_fer.errors.SourceError` when it cannot be.
* :class:`CaptureThread` (:mod:`.reader`): frames into a bounded queue; newest-wins for live
  sources, every frame for files; reconnects lost streams with backoff.
* :class:`Frame`, :class:`CaptureEvent` (:mod:`.frame`): what the consumer receives.
* :class:`CaptureOptions` (:mod:`.options`): the ``capture`` config section.
"""

from realtime_fer.capture.frame import CaptureEvent, CaptureEventKind, Frame
from realtime_fer.capture.options import CaptureOptions
from realtime_fer.capture.reader import CaptureThread
from realtime_fer.capture.sources import Source, SourceKind, SourceSpec, open_source, parse_source, redact_url

__all__ = [
    "CaptureEvent",
    "CaptureEventKind",
    "CaptureOptions",
    "CaptureThread",
    "Frame",
    "Source",
    "SourceKind",
    "SourceSpec",
    "open_source",
    "parse_source",
    "redact_url",
]
