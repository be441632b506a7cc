"""The bridge loop: ZeroMQ messages in, ROS4HRI messages out, whatever sends them.

:class:`Ros4hriBridge` reads our messages from a :class:`~realtime_fer.publish.Subscriber`, maps
them (:class:`~realtime_fer.bridges.ros4hri.mapping.Ros4hriMapper`) and hands every
:class:`~realtime_fer.bridges.ros4hri.mapping.RosMessage` to a ``send`` callable: the rclpy node
publishes it (:mod:`.node`); the tests serialise it with rosbags. ``/humans/faces/tracked`` is
sent when the set of tracked faces changes and again every ``tracked_period_s`` so that a ROS
node started later learns it (REP-155: the list "at any given time").
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from realtime_fer.bridges.ros4hri.mapping import TRACKED_TOPIC, Ros4hriMapper, RosMessage
from realtime_fer.publish import MessageError, Subscriber

log = logging.getLogger(__name__)


class Ros4hriBridge:
    """Subscriber -> mapper -> ``send``.

    Args:
        subscriber: an open subscriber on our stream (its topics choose the streams bridged).
        mapper: the mapping (and the tracked-faces state).
        send: called with every message to publish, in order.
        on_removed: called with the ids of faces no longer tracked (the node retires their
            topics), after their last messages were sent.
        tracked_period_s: resend ``/humans/faces/tracked`` at least this often.
    """

    def __init__(
        self,
        subscriber: Subscriber,
        mapper: Ros4hriMapper,
        send: Callable[[RosMessage], None],
        *,
        on_removed: Callable[[list[str]], None] | None = None,
        tracked_period_s: float = 1.0,
    ) -> None:
        if not tracked_period_s > 0:
            raise ValueError("tracked_period_s must be > 0")
        self.subscriber = subscriber
        self.mapper = mapper
        self.send = send
        self.on_removed = on_removed
        self.tracked_period_s = tracked_period_s
        self.received = 0
        """Our messages received and mapped."""
        self.sent = 0
        """ROS messages handed to ``send``."""
        self.rejected = 0
        """Malformed messages skipped."""
        self._tracked_sent_at = -float("inf")

    def step(self, timeout: float = 0.1) -> bool:
        """Handle at most one of our messages (waiting up to ``timeout`` s) and resend the
        tracked list when it is due; returns whether a message was handled."""
        try:
            msg = self.subscriber.recv(timeout=timeout)
        except MessageError as exc:
            self.rejected += 1
            log.warning("skipped a malformed message: %s", exc)
            msg = None
        handled = msg is not None
        if msg is not None:
            self.received += 1
            mapped = self.mapper.map(msg)
            for ros_msg in mapped.messages:
                self._send(ros_msg)
            if mapped.removed and self.on_removed is not None:
                self.on_removed(mapped.removed)
        if time.monotonic() - self._tracked_sent_at >= self.tracked_period_s:
            self._send(self.mapper.tracked_message())
        return handled

    def run(self, keep_going: Callable[[], bool], timeout: float = 0.1) -> None:
        """:meth:`step` while ``keep_going()`` is true."""
        while keep_going():
            self.step(timeout)

    def _send(self, msg: RosMessage) -> None:
        if msg.topic == TRACKED_TOPIC:
            self._tracked_sent_at = time.monotonic()
        self.send(msg)
        self.sent += 1
