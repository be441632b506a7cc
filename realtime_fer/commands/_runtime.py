"""Options shared by ``run``, ``analyze``, ``bench`` and ``serve`` (the runtime config and its
overrides), and by the subscribing commands ``listen``, ``bridge`` and ``serve`` (CURVE keys).

Like the command modules, this imports only argparse at module level.
"""

from __future__ import annotations

import argparse


def add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    """``--config`` and the overrides that apply to every runtime command."""
    p.add_argument("--config", metavar="YAML", help="runtime config (default: built-in defaults = configs/runtime_default.yaml)")
    p.add_argument("--model", metavar="BUNDLE", help="model bundle folder (default: the shipped default model)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="onnxruntime device for the emotion models")
    p.add_argument("--num-faces", type=int, metavar="N", help="faces detected and tracked at once")
    p.add_argument("--stream-id", metavar="ID", help="stream id in topics and messages (default cam0)")
    p.add_argument("--landmarker-model", metavar="TASK", help="path to face_landmarker.task")
    p.add_argument("--realtime", action="store_true", help="pace a video file at its own frame rate")


def add_curve_arguments(p: argparse.ArgumentParser) -> None:
    """``--curve-secret`` and ``--curve-clients``: CURVE security of the PUB socket (they
    override ``publish.curve_secret_key`` / ``publish.curve_allowed_clients``)."""
    p.add_argument("--curve-secret", metavar="FILE", help="encrypt with CURVE: the server's secret key file (NAME.key_secret from `realtime-fer keys`)")
    p.add_argument(
        "--curve-clients",
        metavar="PATH",
        help="CURVE allow-list: a folder of client public keys (*.key) or one .key file; only they may subscribe",
    )


def add_curve_client_arguments(p: argparse.ArgumentParser) -> None:
    """``--curve-server-key`` and ``--curve-key``: how a subscriber connects to a CURVE-secured
    publisher (``args.curve_server_key``, ``args.curve_key``; see :func:`curve_client`)."""
    p.add_argument("--curve-server-key", metavar="FILE", help="CURVE: the publisher's public key file (NAME.key from `realtime-fer keys`)")
    p.add_argument(
        "--curve-key",
        metavar="FILE",
        help="CURVE: this client's secret key file (NAME.key_secret), needed when the publisher has an allow-list "
        "(default: a one-off key pair)",
    )


def curve_client(args: argparse.Namespace) -> dict[str, str | None]:
    """The :class:`~realtime_fer.publish.Subscriber` keyword arguments of
    :func:`add_curve_client_arguments`."""
    return {"curve_server_key": args.curve_server_key, "curve_secret_key": args.curve_key}


def runtime_config(args: argparse.Namespace):  # noqa: ANN201 - imports stay inside
    """The :class:`~realtime_fer.pipeline.config.RuntimeConfig` with the command-line overrides."""
    from dataclasses import replace

    from realtime_fer.errors import ConfigError
    from realtime_fer.pipeline.config import load_runtime_config

    config = load_runtime_config(args.config)
    try:
        if args.model is not None:
            config.model = args.model
        if args.device is not None:
            config.device = args.device
        if args.num_faces is not None:
            if config.finder.enabled:  # faces tracked at once; the whole frame keeps its num_faces (see pipeline.config)
                config.finder = replace(config.finder, max_faces=args.num_faces)
                if config.landmarker.num_faces > args.num_faces:
                    config.landmarker = replace(config.landmarker, num_faces=args.num_faces)
            else:
                config.landmarker = replace(config.landmarker, num_faces=args.num_faces)
        if args.landmarker_model is not None:
            config.landmarker = replace(config.landmarker, model_path=args.landmarker_model)
        if args.stream_id is not None:
            config.publish = replace(config.publish, stream_id=args.stream_id)
        if args.realtime:
            config.capture = replace(config.capture, realtime=True)
        if getattr(args, "publish", None) is not None:
            config.publish = replace(config.publish, endpoint=args.publish)
        if getattr(args, "encoding", None) is not None:
            config.publish = replace(config.publish, encoding=args.encoding)
        if getattr(args, "curve_secret", None) is not None:
            config.publish = replace(config.publish, curve_secret_key=args.curve_secret)
        if getattr(args, "curve_clients", None) is not None:
            config.publish = replace(config.publish, curve_allowed_clients=args.curve_clients)
        if getattr(args, "show", False):
            config.show = True
        if getattr(args, "publish_frames", False):
            config.frames = replace(config.frames, enabled=True)
    except ValueError as exc:  # options classes validate in __post_init__
        raise ConfigError(f"invalid option: {exc}") from None
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=config.blas_threads, user_api="blas")
    return config


class StopOnSignals:
    """While active, SIGINT and SIGTERM request a clean stop instead of killing the process.

    A signal that arrives before :meth:`attach` (during start-up) is remembered and stops the
    attached object as soon as it is attached; a second signal raises :class:`KeyboardInterrupt`.
    """

    def __init__(self) -> None:
        self.requested = False
        self.target: object | None = None
        self._previous: dict[int, object] = {}

    def attach(self, target: object) -> None:
        """From now on a signal calls ``target.stop()`` (at once if one already arrived)."""
        self.target = target
        if self.requested:
            target.stop()  # type: ignore[attr-defined]

    def _handle(self, signum: int, _frame: object) -> None:
        import logging
        import signal

        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logging.getLogger("realtime_fer").info("%s received; stopping", signal.Signals(signum).name)
        if self.target is not None:
            self.target.stop()  # type: ignore[attr-defined]

    def __enter__(self) -> "StopOnSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
