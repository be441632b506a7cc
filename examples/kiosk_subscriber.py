"""Example: a kiosk or robot reacting to the emotions a running recognizer publishes.

Run a recognizer (``realtime-fer run --source 0``), then::

    python examples/kiosk_subscriber.py --connect tcp://127.0.0.1:5556 --stream cam0

What it shows:

* subscribing to one stream's faces and status (``fer.<stream>.face.`` / ``fer.<stream>.status.``);
* reacting to a change of ``top`` only after it has held for ``--debounce`` seconds, so a
  single noisy frame does not make the kiosk flicker between reactions;
* forgetting a face on ``face_lost`` and handling ``source_lost`` / ``recovered`` / ``ended``
  (here: log lines; a kiosk would switch to a standby screen);
* noticing when the recognizer itself goes silent (no message at all for ``--silence`` s).

Replace :meth:`Kiosk.react` with what your device should do (play a sound, change a screen,
move a robot's head). Only ``realtime_fer.publish`` is needed on the kiosk; docs/messages.md
shows how to decode the messages with plain ``pyzmq`` + ``msgpack`` instead.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field

from realtime_fer.publish import MessageError, Prediction, Status, Subscriber, faces_prefix, status_topic

log = logging.getLogger("kiosk")


@dataclass
class FaceState:
    """What the kiosk believes about one face."""

    shown: str | None = None
    """The emotion the kiosk is currently reacting to."""
    candidate: str | None = None
    """A different emotion seen recently, waiting to last ``debounce`` seconds."""
    since: float = 0.0
    """When ``candidate`` was first seen (seconds, monotonic)."""


@dataclass
class Kiosk:
    """Debounced reactions to ``top`` changes, per face."""

    debounce_s: float = 0.8
    min_probability: float = 0.5
    """Ignore a ``top`` emotion whose probability is below this (``neutral`` always counts)."""
    faces: dict[int, FaceState] = field(default_factory=dict)

    def on_prediction(self, msg: Prediction, now: float) -> None:
        top = msg.top
        if top != "neutral" and msg.probabilities.get(top, 0.0) < self.min_probability:
            return
        state = self.faces.setdefault(msg.face, FaceState())
        if top == state.shown:
            state.candidate = None
            return
        if top != state.candidate:
            state.candidate, state.since = top, now
            return
        if now - state.since >= self.debounce_s:
            previous, state.shown, state.candidate = state.shown, top, None
            self.react(msg.face, previous, top, msg)

    def on_status(self, msg: Status) -> bool:
        """Handle a status event; False when the kiosk should stop."""
        if msg.event == "face_lost" and msg.face is not None:
            self.faces.pop(msg.face, None)
            log.info("face %s left", msg.face)
        elif msg.event == "no_face":
            self.faces.clear()
        elif msg.event in ("source_lost", "reconnecting"):
            log.warning("camera problem (%s): %s -- showing the standby screen", msg.event, msg.detail)
            self.faces.clear()
        elif msg.event == "recovered":
            log.info("camera back: %s", msg.detail)
        elif msg.event == "started":
            log.info("recognizer started (%s)", msg.detail or msg.stream)
        elif msg.event == "ended":
            log.info("recognizer ended: %s (frames %d, dropped %d)", msg.detail, msg.frames, msg.dropped)
            return False
        return True

    def react(self, face: int, previous: str | None, emotion: str, msg: Prediction) -> None:
        """The kiosk's reaction; replace with real behaviour."""
        p = msg.probabilities.get(emotion)
        level = f" (p={p:.2f})" if p is not None else ""
        log.info("face %d: %s -> %s%s", face, previous or "-", emotion, level)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect", default="tcp://127.0.0.1:5556", help="recognizer endpoint")
    parser.add_argument("--stream", default="cam0", help="stream id of the recognizer (--stream-id)")
    parser.add_argument("--debounce", type=float, default=0.8, help="seconds a new emotion must hold before reacting")
    parser.add_argument("--min-prob", type=float, default=0.5, help="ignore weaker top emotions")
    parser.add_argument("--silence", type=float, default=5.0, help="warn after this many seconds without any message")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until ended/Ctrl-C)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    kiosk = Kiosk(debounce_s=args.debounce, min_probability=args.min_prob)
    topics = [faces_prefix(args.stream), status_topic(args.stream)]
    start = time.monotonic()
    last_message = start
    warned_silent = False
    with Subscriber(args.connect, topics=topics) as sub:
        log.info("listening on %s for %s", args.connect, ", ".join(topics))
        try:
            while args.duration is None or time.monotonic() - start < args.duration:
                try:
                    msg = sub.recv(timeout=0.5)
                except MessageError as exc:  # e.g. a newer schema version: skip, keep running
                    log.warning("ignoring a message: %s", exc)
                    continue
                now = time.monotonic()
                if msg is None:
                    if now - last_message > args.silence and not warned_silent:
                        log.warning("no message for %.0f s: is the recognizer running on %s?", now - last_message, args.connect)
                        warned_silent = True
                        kiosk.faces.clear()
                    continue
                last_message, warned_silent = now, False
                if isinstance(msg, Prediction):
                    kiosk.on_prediction(msg, now)
                elif isinstance(msg, Status) and not kiosk.on_status(msg):
                    break
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
