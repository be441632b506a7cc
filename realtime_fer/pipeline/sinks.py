"""Where the recognizer's messages go: a ZeroMQ publisher, a JSON-lines file, or memory."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol, TextIO

from realtime_fer.errors import FerError
from realtime_fer.io_atomic import temp_path_for
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


class OutputError(FerError):
    """A results file cannot be written (full disk, permission denied, ...)."""

    exit_code = 1


#: Suffix of the file an interrupted ``analyze`` keeps its messages in (``out.jsonl.partial``).
PARTIAL_SUFFIX = ".partial"


class JsonlSink:
    """Writes each message as one JSON object per line (the form ``listen --json`` prints),
    atomically.

    The lines go to a hidden temporary file in the folder of ``path``
    (``.out.jsonl.<random>.tmp``); :meth:`commit` renames it to ``path`` once the run is
    complete, so ``path`` never holds a half-written file: a reader sees the previous file (or
    none) until the complete new one appears. :meth:`abort` instead removes the temporary file
    or, with ``keep_partial``, renames its complete lines to ``path`` + ``.partial``. A target
    that is not a regular file (``/dev/stdout``, a FIFO) is written directly.

    The first write error (e.g. ``ENOSPC``, a full disk) is raised by :meth:`send`, kept in
    :attr:`error`, and later messages are dropped; :meth:`commit` then refuses to publish the
    file.

    Args:
        path: the file to write.
        commit_on_close: :meth:`close` (which the recognizer calls at the end of every run, also
            an interrupted one) publishes the file, or removes it after a write error. ``False``
            leaves the decision to the caller (``analyze``: :meth:`commit` after a complete run,
            :meth:`abort` otherwise).
    """

    def __init__(self, path: str | Path, *, commit_on_close: bool = True) -> None:
        self.path = Path(path)
        self.commit_on_close = commit_on_close
        if not self.path.parent.is_dir():
            raise FerError(f"output folder does not exist: {self.path.parent}")
        if self.path.is_dir():
            raise FerError(f"cannot write {self.path}: it is a folder")
        self.atomic = not self.path.exists() or self.path.is_file()
        """False for targets that cannot be renamed onto (devices, FIFOs): written directly."""
        self.lines = 0
        """Messages written (complete lines)."""
        self.dropped = 0
        """Messages not written because an earlier write failed."""
        self.error: OSError | None = None
        """The first write error, if any."""
        self._good_bytes = 0  # bytes of complete lines
        self._committed = False
        try:
            if self.atomic:
                fd, tmp = _create_temp(self.path)
                self.temp_path: Path | None = tmp
                self._fh = _open_text(fd)
            else:
                self.temp_path = None
                self._fh = _open_text(self.path)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def send(self, message: Message) -> None:
        if self.error is not None:
            self.dropped += 1
            return
        line = to_json_line(message) + "\n"
        try:
            self._fh.write(line)
        except OSError as exc:
            self._fail(exc)
            raise
        self.lines += 1
        self._good_bytes += len(line.encode("utf-8"))

    def close(self) -> None:
        """Flush and close the file; publish it when ``commit_on_close`` (else see
        :meth:`commit`). Idempotent; a write error is kept in :attr:`error`, not raised."""
        self._close_file()
        if self.commit_on_close:
            if self.error is None:
                self.commit()
            else:
                self.abort()

    def _close_file(self) -> None:
        if self._fh.closed:
            return
        try:
            self._fh.flush()
            if self.atomic:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            self._fail(exc)
        finally:
            try:
                self._fh.close()
            except OSError as exc:
                self._fail(exc)
        log.info("wrote %d messages to %s", self.lines, self.temp_path or self.path)

    def commit(self) -> Path:
        """Close the file and rename it to :attr:`path` (and remove a stale ``.partial``); idempotent.

        Raises:
            OSError: a write failed (the temporary file is removed first; nothing is published).
        """
        self._close_file()
        if self.error is not None:
            self.abort()
            raise self.error
        if self.atomic and self.temp_path is not None and not self._committed:
            os.replace(self.temp_path, self.path)
            self._committed = True
            _fsync_folder(self.path.parent)
            stale = self.partial_path
            if stale.is_file():
                stale.unlink()
        return self.path

    def abort(self, keep_partial: bool = False) -> Path | None:
        """Close and discard the temporary file; with ``keep_partial`` (and no write error),
        keep its complete lines as ``path.partial`` instead. Returns the kept file, if any."""
        self._close_file()
        if not self.atomic or self.temp_path is None or self._committed:
            return None
        tmp, self.temp_path = self.temp_path, None
        if keep_partial and self.error is None and self.lines > 0:
            try:
                os.truncate(tmp, self._good_bytes)  # a line cut by a second signal is dropped
                os.replace(tmp, self.partial_path)
                return self.partial_path
            except OSError as exc:
                log.error("cannot keep the partial results in %s: %s", self.partial_path, exc.strerror or exc)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        return None

    @property
    def partial_path(self) -> Path:
        """Where :meth:`abort` keeps the lines of an interrupted run: ``path`` + ``.partial``."""
        return self.path.with_name(self.path.name + PARTIAL_SUFFIX)

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc
            log.info("writing %s failed: %s", self.path, exc.strerror or exc)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new hidden file ``.<name>.<random>.tmp`` beside ``path``, created exclusively with the
    permissions a plain ``open`` would give (the umask applies, unlike ``tempfile.mkstemp``)."""
    while True:
        tmp = temp_path_for(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _open_text(target: int | Path) -> TextIO:
    """The text stream messages are written to (a test points this at ``/dev/full``)."""
    return open(target, "w", encoding="utf-8")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ListSink:
    """Keeps the messages in a list (tests, embedding)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass
