"""A worker thread that runs jobs one at a time, in the order they were submitted.

The recognizer's main thread runs the landmarker; everything after it for frame k (the emotion
models, the attributions, encoding and sending the messages) is submitted here and overlaps the
landmarker's work on frame k+1. onnxruntime, numpy's products and ZeroMQ release the GIL, and
MediaPipe runs its graph on one core, so on a 2-core machine the two halves run side by side.

One consumer keeps the messages in order and lets the explainer's per-track state stay
single-threaded. The queue is bounded: when the worker falls behind, :meth:`OrderedWorker.submit`
blocks, so a live source drops stale frames at the capture instead of building latency here.
An exception raised by a job stops the worker and is raised again by the next
:meth:`~OrderedWorker.submit` or :meth:`~OrderedWorker.close`, so nothing fails silently.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Collection

from realtime_fer.affinity import pin_current_thread

log = logging.getLogger(__name__)

Job = Callable[[], None]
_POLL_S = 0.1


class OrderedWorker:
    """Runs submitted callables in a daemon thread, first in, first out.

    Args:
        name: thread name (shows in logs and debuggers).
        depth: jobs that may wait; :meth:`submit` blocks while the queue is full.
        cpus: CPUs the thread may run on (``None``: any; see :mod:`realtime_fer.affinity`).
    """

    def __init__(self, name: str = "fer-worker", depth: int = 2, cpus: Collection[int] | None = None) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self._cpus = cpus
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        """A job raised; no further job runs."""
        return self._error is not None

    def submit(self, job: Job) -> None:
        """Queue ``job``; blocks while ``depth`` jobs are waiting.

        Raises:
            Exception: the exception an earlier job raised (the worker has stopped).
            RuntimeError: the worker was closed.
        """
        if self._closed:
            raise RuntimeError("the worker is closed")
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(job, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def wait_until_taken(self) -> None:
        """Block until no job is waiting: the worker is idle or running the last job submitted.

        A live recognizer calls it before taking its next frame, so that the frame goes from
        the camera through the landmarker straight to the worker instead of waiting behind
        earlier frames (a host that cannot keep up then processes fewer, fresh frames).

        Raises:
            Exception: the exception an earlier job raised (the worker has stopped).
        """
        q = self._queue
        with q.not_full:  # notified whenever the worker takes a job
            while q._qsize() > 0 and self._error is None and self._thread.is_alive():  # noqa: SLF001 - under the queue's own lock
                q.not_full.wait(_POLL_S)
        self._raise_if_failed()

    def close(self, timeout: float | None = None) -> None:
        """Run every queued job, then stop the thread. Idempotent.

        Raises:
            Exception: the exception a job raised (the jobs queued after it did not run).
            TimeoutError: the queued jobs did not finish within ``timeout`` seconds.
        """
        if not self._closed:
            self._closed = True
            while self._thread.is_alive():
                try:
                    self._queue.put(None, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"worker thread {self._thread.name} did not finish its jobs in {timeout} s")
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        pin_current_thread(self._cpus)
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._error is not None:
                continue  # drain without running: the results after a failure are not valid
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                log.debug("worker job failed", exc_info=True)
                self._error = exc
