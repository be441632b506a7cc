"""The thread that reads a recognizer's ZeroMQ stream into the :class:`~.views.ViewBoard`."""

from __future__ import annotations

import logging
import threading
from typing import Any, Sequence

from realtime_fer.publish.errors import MessageError
from realtime_fer.publish.subscriber import Subscriber
from realtime_fer.web.views import ViewBoard

log = logging.getLogger(__name__)


class Feed:
    """Subscribes to ``endpoints`` and hands every message to ``board``, in a daemon thread.

    Args:
        endpoints: publisher endpoints (a recognizer's ``--publish``; ``inproc://`` for one in
            this process).
        board: where the messages go.
        curve: ``curve_server_key`` / ``curve_secret_key`` for a CURVE publisher.
    """

    def __init__(self, endpoints: Sequence[str], board: ViewBoard, **curve: Any) -> None:
        self.board = board
        # a small receive buffer: the page wants the newest frames, and a backlog would only age
        self._sub = Subscriber(list(endpoints), topics=["fer."], timeout=0.2, rcvhwm=200, **curve)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fer-serve-feed", daemon=True)
        self.rejected = 0
        """Malformed messages refused."""

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._sub.recv()
            except MessageError as exc:
                self.rejected += 1
                if self.rejected <= 5:
                    log.warning("ignored a malformed message: %s", exc)
                continue
            except Exception as exc:  # noqa: BLE001 - the socket closed under us while stopping
                if not self._stop.is_set():
                    log.error("the feed stopped: %s: %s", type(exc).__name__, exc)
                return
            if msg is not None:
                self.board.ingest(msg)

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._sub.close()
