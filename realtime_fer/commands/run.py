"""``realtime-fer run --source SRC [--config] [--publish ENDPOINT] [--show] [--model BUNDLE]``.

Live recognition: frames from a camera, stream, video file or image are recognised and the
results published over ZeroMQ (docs/messages.md). Ctrl-C or SIGTERM stops cleanly: the capture
thread is joined, ``ended`` is published, sockets are closed and a summary is printed.
"""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_curve_arguments, add_runtime_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", metavar="SRC", help="camera index, rtsp:// or http(s):// URL, video file or image (default: camera 0)")
    p.add_argument("--publish", metavar="ENDPOINT", help="ZeroMQ endpoint to bind (default tcp://127.0.0.1:5556)")
    p.add_argument("--encoding", choices=["msgpack", "json"], help="payload encoding (default msgpack)")
    p.add_argument("--show", action="store_true", help="show a window with boxes, landmarks and emotion bars")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    add_curve_arguments(p)
    add_runtime_arguments(p)


def run(args: argparse.Namespace) -> int:
    import sys
    import threading

    from realtime_fer.commands._runtime import StopOnSignals, runtime_config
    from realtime_fer.errors import FerError
    from realtime_fer.models.bundle import load_bundle
    from realtime_fer.pipeline.recognizer import open_recognizer
    from realtime_fer.pipeline.sinks import PublisherSink
    from realtime_fer.publish.publisher import Publisher

    if args.duration is not None and args.duration <= 0:
        raise FerError("--duration must be positive")
    config = runtime_config(args)
    source = args.source if args.source is not None else "0"
    with StopOnSignals() as signals:
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
        print(
            f"recognizing {recognizer.source.name} -> publishing {config.publish.encoding} on {publisher.endpoint} "
            f"(topics fer.{config.publish.stream_id}.); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        signals.attach(recognizer)
        timer = None
        if args.duration is not None:
            timer = threading.Timer(args.duration, recognizer.stop)
            timer.daemon = True
            timer.start()
        summary = recognizer.run()
        if timer is not None:
            timer.cancel()
    print("summary: " + "\n         ".join(summary.lines()), flush=True)
    return 0
