"""``realtime-fer serve``: the live page for kiosks and demo stands.

Two ways to feed it:

* ``serve --source SRC`` (repeatable, ``ID=SRC`` names a stream) runs the recognizer in this
  process, with frame images and landmarks on, and serves its page. ``--publish EP`` also
  publishes the stream on ZeroMQ for other subscribers (a robot, ``listen``).
* ``serve --connect tcp://HOST:PORT`` (repeatable) draws a recognizer that already runs, here or
  on another machine (``realtime-fer run --publish-frames`` sends the frames; without them the
  page shows the faces on a blank canvas).

Then open ``http://127.0.0.1:8080/`` (``--host``/``--port``). ``--token T`` protects the page
and its WebSocket (open ``/?token=T``); serving beyond loopback without one logs a warning. Ctrl-C
or SIGTERM stops cleanly; ``--duration S`` stops after S seconds.
"""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_curve_client_arguments, add_runtime_arguments, curve_client


def add_arguments(p: argparse.ArgumentParser) -> None:
    feed = p.add_mutually_exclusive_group()
    feed.add_argument(
        "--source",
        metavar="[ID=]SRC",
        action="append",
        help="run the recognizer here on this camera index, URL, video file or image (repeat for several streams)",
    )
    feed.add_argument(
        "--connect",
        metavar="ENDPOINT",
        action="append",
        help="draw a recognizer already running (its --publish endpoint, e.g. tcp://10.0.0.5:5556); repeatable",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the page listens on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080, help="page port (default 8080; 0 lets the OS choose)")
    p.add_argument("--token", help="access token the page URL and WebSocket must carry (?token=...)")
    p.add_argument("--publish", metavar="ENDPOINT", help="with --source: also publish on this ZeroMQ endpoint for other subscribers")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    add_curve_client_arguments(p)  # with --connect
    add_runtime_arguments(p)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os
    import sys
    import threading
    from dataclasses import replace

    from realtime_fer.errors import ConfigError, FerError

    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise FerError("`serve` needs aiohttp: pip install aiohttp (or reinstall realtime-fer)") from None
    from realtime_fer.web.feed import Feed
    from realtime_fer.web.server import PageServer, ServeOptions
    from realtime_fer.web.views import ViewBoard

    log = logging.getLogger("realtime_fer.serve")
    if args.duration is not None and args.duration <= 0:
        raise FerError("--duration must be positive")
    if args.connect and args.publish:
        raise ConfigError("--publish goes with --source (the recognizer started here); with --connect the recognizer publishes itself")
    if (args.curve_server_key or args.curve_key) and not args.connect:
        raise ConfigError("--curve-server-key/--curve-key go with --connect")
    try:
        options = ServeOptions(host=args.host, port=args.port, token=args.token)
    except ValueError as exc:
        raise ConfigError(f"invalid option: {exc}") from None

    runner = None
    runner_thread = None
    outcome: dict[str, object] = {}
    if args.connect:
        endpoints = list(args.connect)
        what = "drawing " + ", ".join(endpoints)
    else:
        from realtime_fer.commands._runtime import runtime_config
        from realtime_fer.commands.run import _streams, open_runner

        if args.source is None:
            args.source = ["0"]
        config = runtime_config(args)
        endpoint = args.publish or f"inproc://realtime-fer-serve-{os.getpid()}"
        # the page draws each frame with its faces' landmarks and drivers
        # (and shows the recognizer's fps every second even while nothing else happens)
        config = replace(
            config,
            frames=replace(config.frames, enabled=True),
            include_landmarks=True,
            publish=replace(config.publish, endpoint=endpoint),
            heartbeat_interval_s=config.heartbeat_interval_s or 1.0,
        )
        runner, bound, what = open_runner(config, _streams(args, config))
        endpoints = [_connectable(bound)]

    board = ViewBoard()
    try:
        feed = Feed(endpoints, board, **curve_client(args))
    except BaseException:
        if runner is not None:
            _close_runner(runner)
        raise
    feed.start()
    if runner is not None:

        def _recognize() -> None:
            try:
                outcome["summary"] = runner.run()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                outcome["error"] = exc

        runner_thread = threading.Thread(target=_recognize, name="fer-serve-recognizer", daemon=True)
        runner_thread.start()
    server = PageServer(board, options)
    try:
        asyncio.run(_serve(server, args.duration, what, args.token, lambda: runner_thread is not None and not runner_thread.is_alive(), log))
    except OSError as exc:
        raise FerError(f"cannot serve on {options.host}:{options.port}: {exc.strerror or exc}") from None
    finally:
        if runner is not None:
            runner.stop()
            if runner_thread is not None:
                runner_thread.join(timeout=30.0)
        feed.close()
    if "error" in outcome:
        exc = outcome["error"]
        if isinstance(exc, FerError):
            raise exc
        raise FerError(f"the recognizer failed: {type(exc).__name__}: {exc}")
    summary = outcome.get("summary")
    if summary is not None:
        print("summary: " + "\n         ".join(summary.lines()), flush=True)  # type: ignore[attr-defined]
    print(f"page: {server.views_sent} views sent to viewers; {server.viewers_dropped} slow viewers disconnected", file=sys.stderr)
    return 0


async def _serve(server, duration, what, token, recognizer_done, log) -> None:  # noqa: ANN001
    """Serve until Ctrl-C, SIGTERM or ``duration``; the page stays up after a file ends."""
    import asyncio
    import signal
    import sys

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            pass
    url = await server.start()
    shown = url + (f"?token={token}" if token else "")
    print(f"{what}; page on {shown} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    announced = False
    try:
        deadline = loop.time() + duration if duration is not None else None
        while not stop.is_set():
            timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - loop.time()))
            try:
                await asyncio.wait_for(stop.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            if deadline is not None and loop.time() >= deadline:
                break
            if recognizer_done() and not announced:
                announced = True
                log.warning("the recognizer has ended; the page stays up with the last frame (Ctrl-C to stop)")
    finally:
        await server.stop()


def _connectable(endpoint: str) -> str:
    """A bound endpoint as a subscriber connects to it (``tcp://0.0.0.0:P`` -> loopback)."""
    for wildcard in ("tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"):
        if endpoint.startswith(wildcard):
            return "tcp://127.0.0.1:" + endpoint[len(wildcard):]
    return endpoint


def _close_runner(runner) -> None:  # noqa: ANN001
    """Release a runner that never ran (its recognizers, and a multi-stream runner's hub)."""
    for rec in getattr(runner, "recognizers", [runner]):
        rec.close()
    hub = getattr(runner, "hub", None)
    if hub is not None:
        hub.close()
