"""``realtime-fer listen``: print the messages a running recognizer publishes.

One line per message: a compact human-readable summary, or with ``--json`` the message itself
as one JSON object per line (the same form ``analyze`` writes).

A publisher secured with CURVE needs ``--curve-server-key SERVER.key`` and, when it has an
allow-list, ``--curve-key CLIENT.key_secret`` (docs/messages.md, *Secure publishing*).
"""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_curve_client_arguments, curve_client

DEFAULT_CONNECT = "tcp://127.0.0.1:5556"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        action="append",
        metavar="ENDPOINT",
        help=f"publisher endpoint, repeatable: one subscriber on several recognizers / hosts (default: {DEFAULT_CONNECT})",
    )
    parser.add_argument(
        "--topic",
        action="append",
        metavar="PREFIX",
        help="topic prefix to subscribe to, repeatable (default: fer. = everything); e.g. fer.cam0.status. or fer.cam0.face.1.",
    )
    parser.add_argument("--json", action="store_true", help="print each message as one JSON line")
    parser.add_argument("--count", type=int, metavar="N", help="exit after N messages")
    parser.add_argument("--timeout", type=float, metavar="S", help="exit when no message arrives for S seconds")
    add_curve_client_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from realtime_fer.publish import MessageError, Subscriber, to_json_line

    if args.count is not None and args.count < 1:
        raise _usage_error("--count must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise _usage_error("--timeout must be positive")
    topics = args.topic or ["fer."]
    received = 0
    curve = curve_client(args)
    endpoints = args.connect or [DEFAULT_CONNECT]
    with Subscriber(endpoints if len(endpoints) > 1 else endpoints[0], topics=topics, timeout=args.timeout, **curve) as sub:
        try:
            while args.count is None or received < args.count:
                try:
                    msg = sub.recv()
                except MessageError as exc:
                    print(f"warning: {exc}", file=sys.stderr, flush=True)
                    continue
                if msg is None:
                    hint = _curve_hint(sub.secured, args.curve_key is not None)
                    where = ", ".join(endpoints)
                    print(f"no message for {args.timeout:g} s on {where}{hint}; stopping", file=sys.stderr)
                    break
                received += 1
                print(to_json_line(msg) if args.json else format_message(msg), flush=True)
        except BrokenPipeError:  # e.g. `realtime-fer listen | head`
            _silence_stdout()
            return 0
    if args.count is not None and received < args.count:
        return 1
    return 0 if received or args.timeout is None else 1


def format_message(msg: object) -> str:
    """A compact one-line summary of a Prediction, Status or FrameImage."""
    import time

    from realtime_fer.publish import FrameImage, Prediction, Status

    if isinstance(msg, Prediction):
        when = _clock(msg.t_capture)
        probs = " ".join(f"{k} {v:.2f}" for k, v in sorted(msg.probabilities.items(), key=lambda kv: -kv[1])[:3])
        x0, y0, x1, y1 = (int(round(v)) for v in msg.bbox)
        latency = f" lat {1000 * (msg.t_publish - msg.t_capture):.1f}ms" if msg.t_publish is not None else ""
        expl = f" attr[{','.join(sorted(msg.attributions))}]" if msg.attributions else ""
        affect = f" | V {msg.valence:+.2f} A {msg.arousal:+.2f}" if msg.valence is not None and msg.arousal is not None else ""
        aus = ""
        if msg.action_units:  # the three strongest, approximate (docs/describe.md)
            strongest = sorted(msg.action_units.items(), key=lambda kv: -kv[1])[:3]
            aus = " | " + " ".join(f"{k} {v:.2f}" for k, v in strongest)
        return f"{when} {msg.stream} #{msg.frame} face {msg.face}: {msg.top.upper():8s} | {probs}{affect}{aus} | box {x0},{y0},{x1},{y1}{latency}{expl}"
    if isinstance(msg, Status):
        face = f" face {msg.face}" if msg.face is not None else ""
        detail = f" - {msg.detail}" if msg.detail else ""
        return f"{_clock(msg.timestamp)} {msg.stream} [{msg.event}]{face} fps {msg.fps:.1f} frames {msg.frames} dropped {msg.dropped}{detail}"
    if isinstance(msg, FrameImage):
        w, h = msg.image_size
        return f"{_clock(msg.t_capture)} {msg.stream} #{msg.frame} frame {w}x{h} jpeg {len(msg.jpeg) / 1024:.1f} kB"
    return f"{time.strftime('%H:%M:%S')} {msg!r}"


def _curve_hint(secured: bool, client_key: bool) -> str:
    """Why a subscriber may see nothing: a CURVE handshake that failed is silent."""
    if not secured:
        return " (if the publisher uses CURVE, pass --curve-server-key)"
    if client_key:
        return " (CURVE: check that --curve-server-key is this publisher's key and that --curve-key is on its allow-list)"
    return " (CURVE: check that --curve-server-key is this publisher's key; if it has an allow-list, pass --curve-key)"


def _clock(t: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"


def _usage_error(message: str) -> Exception:
    from realtime_fer.errors import FerError

    return FerError(message)


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at devnull so the interpreter's final flush is quiet."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
