"""``realtime-fer analyze SRC --output out.jsonl``: offline recognition into a JSON-lines file.

Every frame of a video file is processed (nothing is dropped), and the file receives the same
messages a live run publishes, predictions and status, one JSON object per line in the order
they were produced (decode them with ``realtime_fer.publish.message_from_dict``).
"""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_runtime_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC", help="video file or image (or a camera index / stream URL: runs until stopped)")
    p.add_argument("--output", "-o", required=True, metavar="OUT.jsonl", help="JSON-lines file to write")
    add_runtime_arguments(p)


def run(args: argparse.Namespace) -> int:
    from realtime_fer.commands._runtime import StopOnSignals, runtime_config
    from realtime_fer.pipeline.recognizer import open_recognizer
    from realtime_fer.pipeline.sinks import JsonlSink

    config = runtime_config(args)
    with StopOnSignals() as signals:
        from realtime_fer.models.bundle import load_bundle

        bundle = load_bundle(config.model)
        sink = JsonlSink(args.output)
        try:
            recognizer = open_recognizer(args.source, config, [sink], bundle=bundle)
        except BaseException:
            sink.close()
            raise
        signals.attach(recognizer)
        summary = recognizer.run()
    print("summary: " + "\n         ".join(summary.lines()), flush=True)
    print(f"wrote {sink.lines} messages to {args.output}", flush=True)
    return 0
