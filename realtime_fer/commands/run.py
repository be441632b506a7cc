"""``realtime-fer run --source SRC [--config] [--publish ENDPOINT] [--show] [--model BUNDLE]``.

Live recognition: frames from a camera, stream, video file or image are recognised and the
results published over ZeroMQ (docs/messages.md). Ctrl-C or SIGTERM stops cleanly: the capture
thread is joined, ``ended`` is published, sockets are closed and a summary is printed.

Several sources in one run: repeat ``--source`` (``--source ID=SRC`` names a stream; unnamed
ones are ``cam0``, ``cam1``, ... by position) or list ``streams:`` in the runtime config. All
streams publish on the one endpoint, topics ``fer.<id>.``; a source that cannot be opened gets
an ``ended`` status with ``error: ...`` and the others go on; the command then exits with one
``error:`` line (code 2) after the summary. ``--show`` shows one stream only and is refused with
several (see :mod:`realtime_fer.pipeline.multistream`).
"""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_curve_arguments, add_runtime_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        metavar="[ID=]SRC",
        action="append",
        help="camera index, rtsp:// or http(s):// URL, video file or image (default: camera 0, or the config's streams); "
        "repeat for several streams on one endpoint, ID=SRC names a stream (topics fer.ID.)",
    )
    p.add_argument("--publish", metavar="ENDPOINT", help="ZeroMQ endpoint to bind (default tcp://127.0.0.1:5556)")
    p.add_argument("--encoding", choices=["msgpack", "json"], help="payload encoding (default msgpack)")
    p.add_argument("--show", action="store_true", help="show a window with boxes, landmarks and emotion bars")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--publish-frames",
        action="store_true",
        help="also publish small JPEGs of the frames (topic fer.<stream>.frame.) for `realtime-fer serve --connect` on another machine",
    )
    add_curve_arguments(p)
    add_runtime_arguments(p)


def run(args: argparse.Namespace) -> int:
    import sys

    from realtime_fer.commands._runtime import StopOnSignals, runtime_config
    from realtime_fer.errors import FerError

    if args.duration is not None and args.duration <= 0:
        raise FerError("--duration must be positive")
    config = runtime_config(args)
    streams = _streams(args, config)
    with StopOnSignals() as signals:
        runner, _endpoint, text = open_runner(config, streams)
        print(text + "; Ctrl-C to stop", file=sys.stderr, flush=True)
        signals.attach(runner)
        summary = _run_for(runner, args.duration)
    print("summary: " + "\n         ".join(summary.lines()), flush=True)
    failed = getattr(summary, "failed", None)
    if failed:
        raise FerError(f"{len(failed)} of {len(summary.streams)} streams failed: " + "; ".join(f"{s.id}: {s.error}" for s in failed))
    return 0


def open_runner(config, streams):  # noqa: ANN001, ANN201 - imports stay inside
    """Open the recognizer of one stream, or a multi-stream runner for several, publishing on
    ``config.publish``; returns it, the endpoint its publisher is bound to (the OS-chosen port
    filled in) and a line saying what it does (``run`` and ``serve``).

    One stream uses its own publisher (and ``config.show``'s window); several share one through a
    :class:`~realtime_fer.pipeline.multistream.PublisherHub`, and ``--show`` is refused.
    """
    from realtime_fer.errors import ConfigError
    from realtime_fer.models.bundle import load_bundle
    from realtime_fer.pipeline.recognizer import open_recognizer
    from realtime_fer.pipeline.sinks import PublisherSink
    from realtime_fer.publish.publisher import Publisher

    if len(streams) > 1:
        from realtime_fer.pipeline.multistream import PublisherHub, open_streams

        if config.show:
            raise ConfigError(
                f"--show shows one stream; this run has {len(streams)} ({', '.join(s.id for s in streams)}): "
                "watch them with `realtime-fer listen` or `realtime-fer serve`, or run one `realtime-fer run --show` per source"
            )
        bundle = load_bundle(config.model)
        hub = PublisherHub(Publisher.from_options(config.publish))
        try:
            multi = open_streams(streams, config, hub, bundle=bundle)
        except BaseException:
            hub.close()
            raise
        names = ", ".join(f"{r.stream_id}={r.source.name}" for r in multi.recognizers)
        return multi, hub.endpoint, (
            f"recognizing {len(multi.recognizers)} stream(s) ({names}) -> publishing {config.publish.encoding} on {hub.endpoint} "
            "(topics fer.<stream>.)"
        )
    if streams:  # one stream: its id, source and capture settings, the single-source path
        from realtime_fer.pipeline.multistream import stream_config

        config = stream_config(config, streams[0])
    source = streams[0].source if streams else "0"
    bundle = load_bundle(config.model)
    display = None
    if config.show:
        from realtime_fer.pipeline.display import Display

        display = Display(list(bundle.emotions))
    try:
        publisher = Publisher.from_options(config.publish)
        try:
            recognizer = open_recognizer(source, config, [PublisherSink(publisher)], bundle=bundle, display=display)
        except BaseException:
            publisher.close()
            raise
    except BaseException:
        if display is not None:
            display.close()
        raise
    return recognizer, publisher.endpoint, (
        f"recognizing {recognizer.source.name} -> publishing {config.publish.encoding} on {publisher.endpoint} "
        f"(topics fer.{config.publish.stream_id}.)"
    )


def _run_for(runner, duration: float | None):  # noqa: ANN001, ANN202 - a Recognizer or a MultiRecognizer
    """``runner.run()``, stopped after ``duration`` seconds when one is given; its summary."""
    import threading

    timer = None
    if duration is not None:
        timer = threading.Timer(duration, runner.stop)
        timer.daemon = True
        timer.start()
    try:
        return runner.run()
    finally:
        if timer is not None:
            timer.cancel()


def _streams(args: argparse.Namespace, config):  # noqa: ANN001, ANN202 - imports stay inside
    """The streams of this run: the ``--source`` options, else the config's ``streams``."""
    from realtime_fer.errors import ConfigError
    from realtime_fer.pipeline.multistream import check_unique_ids, streams_from_sources

    if args.source:
        if len(args.source) > 1 and args.stream_id is not None:
            raise ConfigError("--stream-id names a single stream; with several sources name them with --source ID=SRC")
        if config.streams:
            import logging

            logging.getLogger(__name__).info("--source given: the config's %d stream(s) are not used", len(config.streams))
        return streams_from_sources(args.source, config.publish.stream_id)
    if config.streams and args.stream_id is not None:
        raise ConfigError("--stream-id names a single stream; the config's streams have their own ids")
    check_unique_ids(config.streams)
    return list(config.streams)
