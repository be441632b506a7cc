"""Where the recognizer's messages go: a ZeroMQ publisher, a JSON-lines file, or memory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from realtime_fer.errors import FerError
from realtime_fer.publish.publisher import Publisher
from realtime_fer.publish.schema import Message, to_json_line

log = logging.getLogger(__name__)


class MessageSink(Protocol):
    """Receives every message the recognizer produces, in order, from one thread."""

    def send(self, message: Message) -> None: ...

    def close(self) -> None: ...


class PublisherSink:
    """Publishes on a :class:`~realtime_fer.publish.Publisher` (non-blocking; a slow or absent
    subscriber loses messages instead of slowing the pipeline)."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def send(self, message: Message) -> None:
        self.publisher.publish(message)

    def close(self) -> None:
        self.publisher.close()


class JsonlSink:
    """Writes each message as one JSON object per line (the form ``listen --json`` prints)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise FerError(f"output folder does not exist: {self.path.parent}")
        try:
            self._fh = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise FerError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.lines = 0

    def send(self, message: Message) -> None:
        self._fh.write(to_json_line(message))
        self._fh.write("\n")
        self.lines += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
            log.info("wrote %d messages to %s", self.lines, self.path)


class ListSink:
    """Keeps the messages in a list (tests, embedding)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass
