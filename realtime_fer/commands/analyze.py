"""``realtime-fer analyze SRC --output out.jsonl``: offline recognition into a JSON-lines file.

Every frame of a video file is processed (nothing is dropped), and the file receives the same
messages a live run publishes, predictions and status, one JSON object per line in the order
they were produced (decode them with ``realtime_fer.publish.message_from_dict``).

The file appears only when complete: the lines go to a hidden temporary file beside it
(``.out.jsonl.<random>.tmp``), renamed to ``out.jsonl`` at the end. A file source interrupted by
SIGINT/SIGTERM (or failing part-way) keeps the lines written so far in ``out.jsonl.partial``
and exits non-zero with one ``error:`` line that says so; ``out.jsonl`` is then not written
(a previous one is left as it was). A write error (a full disk) removes the temporary file:
nothing that looks complete is left. For a live source (camera, stream URL), which runs until
stopped, a signal is the normal end and the file is complete.
"""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_runtime_arguments
from realtime_fer.errors import FerError

#: Exit status of an interrupted analyze (as for Ctrl-C: 128 + SIGINT).
INTERRUPTED_EXIT = 130


class AnalyzeInterrupted(FerError):
    """A signal stopped ``analyze`` before the end of its file source."""

    exit_code = INTERRUPTED_EXIT


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC", help="video file or image (or a camera index / stream URL: runs until stopped)")
    p.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="OUT.jsonl",
        help="JSON-lines file to write; it appears only when complete (written to a temporary file, renamed at the end). "
        "If a file source is interrupted (SIGINT/SIGTERM) or fails part-way, the messages so far are kept in OUT.jsonl.partial "
        "and the exit status is non-zero",
    )
    add_runtime_arguments(p)


def run(args: argparse.Namespace) -> int:
    from realtime_fer.commands._runtime import StopOnSignals, runtime_config
    from realtime_fer.pipeline.recognizer import open_recognizer
    from realtime_fer.pipeline.sinks import JsonlSink

    config = runtime_config(args)
    with StopOnSignals() as signals:
        from realtime_fer.models.bundle import load_bundle

        bundle = load_bundle(config.model)
        sink = JsonlSink(args.output, commit_on_close=False)  # committed below, only when complete
        try:
            recognizer = open_recognizer(args.source, config, [sink], bundle=bundle)
        except BaseException:
            sink.abort()
            raise
        signals.attach(recognizer)
        try:
            summary = recognizer.run()
        except KeyboardInterrupt:  # a second signal
            raise _interrupted(sink, recognizer.frames) from None
        except BaseException as exc:
            if sink.error is not None:  # the sink's own write failed (e.g. a full disk)
                raise _write_failed(sink, sink.error) from None
            err = _failed(sink, exc)
            if err is exc:
                raise
            raise err from exc
        if signals.requested and not recognizer.source.is_live:
            raise _interrupted(sink, summary.frames)
        try:
            sink.commit()
        except OSError as exc:
            raise _write_failed(sink, exc) from None
    print("summary: " + "\n         ".join(summary.lines()), flush=True)
    announced = recognizer.source.frame_count
    if announced and recognizer.source.kind == "file" and summary.frames < announced:
        print(f"skipped: the file announces {announced} frames; {summary.frames} could be decoded, {announced - summary.frames} could not (corrupt or truncated file)", flush=True)
    print(f"wrote {sink.lines} messages to {args.output}", flush=True)
    return 0


def _interrupted(sink, frames: int) -> AnalyzeInterrupted:  # noqa: ANN001 - JsonlSink, imported lazily
    """Keep what was written as ``.partial``; the error that says so."""
    kept = sink.abort(keep_partial=True)
    where = f"the {sink.lines} messages so far are in {kept}" if kept else "no message was written"
    return AnalyzeInterrupted(f"interrupted after {frames} frames: {where}; {sink.path} was not written")


def _write_failed(sink, exc: OSError) -> BaseException:  # noqa: ANN001
    """Remove the incomplete file; the error that says why (a device target: the OSError itself)."""
    sink.abort()
    if not sink.atomic:
        return exc
    from realtime_fer.pipeline.sinks import OutputError

    return OutputError(f"cannot write {sink.path}: {exc.strerror or exc}; the incomplete output was removed, nothing was written")


def _failed(sink, exc: BaseException) -> BaseException:  # noqa: ANN001
    """Any other failure part-way: keep the lines so far as ``.partial`` and say so."""
    kept = sink.abort(keep_partial=True)
    if kept is None:
        return exc
    what = str(exc) if isinstance(exc, FerError) else f"unexpected {type(exc).__name__}: {exc}"
    err = FerError(f"{what}; the {sink.lines} messages written before the failure are in {kept}, {sink.path} was not written")
    err.exit_code = getattr(exc, "exit_code", 1)
    return err
