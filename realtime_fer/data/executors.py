"""Where :func:`~realtime_fer.data.extract.extract_dataset` runs its per-batch landmark work.

Two executors run the same work units (lists of samples) and hand every sample's result to
the same callback, in this process, which writes the cache; so the cache and everything built
on it do not depend on where the landmarks were computed:

- :class:`LocalExecutor`: this process (``workers=0``) or a ``spawn`` pool of ``workers``
  processes, one IMAGE-mode detector each (the default, unchanged behaviour).
- :class:`DaskExecutor`: the tasks of a Dask ``distributed`` cluster
  (``realtime-fer extract DATA --scheduler tcp://HOST:PORT``), one detector per Dask worker
  process (:func:`realtime_fer.data._worker.remote_batch`). Workers read the paths the client
  sees (shared storage) or, with :attr:`DaskOptions.send_files`, get the files' bytes from the
  client. Needs the ``distributed`` extra (``pip install "realtime-fer[distributed]"``).

An executor given to :func:`use_executor` is used by every extraction inside the ``with``
block that is not given one (``evaluate --leave-one-actor-out`` trains and scores folds
through several layers that each extract).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import re
import time
import uuid
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from realtime_fer.data import _worker
from realtime_fer.data.layouts import SampleRef
from realtime_fer.errors import FerError

log = logging.getLogger(__name__)

#: A work unit: (cache key, sample) pairs extracted together.
Unit = list[tuple[str, SampleRef]]
#: Called once per sample with its cache key, its reference and ``(status, value)``.
OnResult = Callable[[str, SampleRef, tuple[str, Any]], None]

#: ``tcp://host:port`` (also ``tls://``, ``ws://``, ``wss://``; an IPv6 host in brackets).
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


class Executor(Protocol):
    """Runs work units and reports every sample's result."""

    def parallelism(self) -> int:
        """How many units can run at once (sizes the units)."""
        ...

    def run(self, units: list[Unit], config: _worker.WorkerConfig, on_result: OnResult) -> None:
        """Run ``units``; call ``on_result`` in this thread for each sample as it finishes.

        Raises:
            FerError: the workers failed (the results reported before stay reported).
        """
        ...


class LocalExecutor:
    """This process (``workers == 0``) or a ``spawn`` process pool of ``workers`` processes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def parallelism(self) -> int:
        return max(1, self.workers)

    def run(self, units: list[Unit], config: _worker.WorkerConfig, on_result: OnResult) -> None:
        if self.workers == 0:
            try:
                for unit in units:
                    for (key, ref), res in zip(unit, _worker.run_batch([r for _, r in unit], config)):
                        on_result(key, ref, res)
            finally:
                _worker.close_detectors()
            return
        import multiprocessing

        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(units)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker.init_worker,
            initargs=(config,),
        )
        futures: dict[Future, Unit] = {}
        try:
            for unit in units:
                futures[pool.submit(_worker.process_batch, [r for _, r in unit])] = unit
            for fut in as_completed(futures):
                unit = futures[fut]
                try:
                    results = fut.result()
                except BrokenProcessPool:
                    raise FerError(
                        "a landmark worker process died unexpectedly (native crash or out of memory); "
                        "the samples finished so far are cached, so a rerun resumes; rerun with "
                        "`realtime-fer --debug extract --workers 0 ...` to see the error in this process"
                    ) from None
                for (key, ref), res in zip(unit, results):
                    on_result(key, ref, res)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


@dataclass
class DaskOptions:
    """How to reach and use a Dask cluster."""

    address: str
    """The scheduler, ``tcp://HOST:PORT``."""
    connect_timeout_s: float = 10.0
    """How long to wait for the scheduler to answer, and for a first worker to be there."""
    send_files: bool = False
    """Send each sample's bytes to the workers (storage not shared); default: workers read the
    client's paths, resolved to absolute paths."""
    no_worker_timeout_s: float = 30.0
    """Give up when the cluster has had no worker for this long during a run."""
    in_flight_per_thread: int = 4
    """Units submitted ahead per worker thread (bounds the client's memory with ``send_files``)."""

    def __post_init__(self) -> None:
        if not _ADDRESS.match(self.address or ""):
            raise FerError(f"bad Dask scheduler address {self.address!r}: expected tcp://HOST:PORT")
        if not int(self.address.rsplit(":", 1)[1]) <= 65535:
            raise FerError(f"bad Dask scheduler address {self.address!r}: port out of range")
        for name in ("connect_timeout_s", "no_worker_timeout_s"):
            if not getattr(self, name) > 0:
                raise FerError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.in_flight_per_thread < 1:
            raise FerError(f"in_flight_per_thread must be >= 1, got {self.in_flight_per_thread}")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise FerError('--scheduler needs Dask: pip install "realtime-fer[distributed]" (dask and distributed)') from None
    return distributed


class DaskExecutor:
    """Runs the work units as tasks of a Dask cluster; use as a context manager (connects on
    entry, disconnects on exit; the cluster itself is left running).

    Raises (on entry):
        FerError: Dask is not installed, the address is malformed, the scheduler does not answer
            within :attr:`DaskOptions.connect_timeout_s`, or it has no worker by then.
    """

    def __init__(self, options: DaskOptions) -> None:
        self.options = options
        self._client: Any = None
        self._quiet = _QuietDaskLogs()

    def __enter__(self) -> "DaskExecutor":
        distributed = _import_distributed()
        self._quiet.__enter__()
        try:
            return self._connect(distributed)
        except BaseException:
            self._quiet.__exit__()
            raise

    def _connect(self, distributed: Any) -> "DaskExecutor":
        o = self.options
        try:
            client = distributed.Client(o.address, timeout=f"{o.connect_timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise FerError(f"cannot reach the Dask scheduler at {o.address} within {o.connect_timeout_s:g} s ({_brief(exc)})") from None
        except ValueError as exc:
            raise FerError(f"bad Dask scheduler address {o.address!r}: {exc}") from None
        try:
            client.wait_for_workers(1, timeout=o.connect_timeout_s)
        except (OSError, TimeoutError):
            client.close()
            raise FerError(f"the Dask scheduler at {o.address} has no worker (waited {o.connect_timeout_s:g} s); start some with `dask worker {o.address}`") from None
        self._client = client
        log.info("connected to the Dask scheduler at %s: %d worker thread(s)", o.address, self.parallelism())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close(timeout=5)
                self._client = None
        finally:
            self._quiet.__exit__()

    def _threads(self) -> int:
        try:
            return int(sum(self._client.nthreads().values()))
        except (OSError, TimeoutError) as exc:
            raise FerError(f"lost the Dask scheduler at {self.options.address} ({_brief(exc)}); the samples finished so far are cached, so a rerun resumes") from None

    def parallelism(self) -> int:
        if self._client is None:
            raise RuntimeError("DaskExecutor is used outside its `with` block")
        return max(1, self._threads())

    def run(self, units: list[Unit], config: _worker.WorkerConfig, on_result: OnResult) -> None:
        if self._client is None:
            raise RuntimeError("DaskExecutor is used outside its `with` block")
        distributed = _import_distributed()
        o = self.options
        client = self._client
        # The client keeps fd 2; native logging on workers stays theirs (no fd redirection there).
        config = dataclasses.replace(config, quiet_native=False)
        expected = _worker.environment(config.options)
        run_id = uuid.uuid4().hex[:12]
        todo = iter(enumerate(units))
        in_flight: dict[Any, Unit] = {}
        cap = o.in_flight_per_thread * self.parallelism()

        def submit_more() -> None:
            while len(in_flight) < cap:
                nxt = next(todo, None)
                if nxt is None:
                    return
                i, unit = nxt
                items = [self._payload(ref) for _, ref in unit]
                fut = client.submit(_worker.remote_batch, items, config, expected, key=f"fer-extract-{run_id}-{i}", pure=False)
                in_flight[fut] = unit

        finished = distributed.as_completed(loop=client.loop)
        no_worker_since: float | None = None
        last_check = time.monotonic()
        try:
            submit_more()
            for fut in in_flight:
                finished.add(fut)
            while in_flight:
                done = finished.next_batch(block=False)
                if not done:
                    time.sleep(0.05)
                    if time.monotonic() - last_check < 1.0:
                        continue
                    last_check = time.monotonic()
                    if self._threads() > 0:
                        no_worker_since = None
                    elif no_worker_since is None:
                        no_worker_since = time.monotonic()
                    elif time.monotonic() - no_worker_since > o.no_worker_timeout_s:
                        raise FerError(
                            f"the Dask cluster at {o.address} has had no worker for {o.no_worker_timeout_s:g} s; "
                            "the samples finished so far are cached, so a rerun resumes"
                        )
                    continue
                for fut in done:
                    unit = in_flight.pop(fut)
                    results = self._result(fut, unit)
                    for (key, ref), res in zip(unit, results):
                        on_result(key, ref, res)
                before = set(in_flight)
                submit_more()
                for fut in in_flight:
                    if fut not in before:
                        finished.add(fut)
        finally:
            if in_flight:
                with contextlib.suppress(Exception):
                    client.cancel(list(in_flight))

    def _payload(self, ref: SampleRef) -> tuple[SampleRef, list[bytes] | None]:
        """The sample as a worker gets it: absolute paths, plus the bytes when sending files."""
        absolute = dataclasses.replace(ref, path=Path(ref.path).resolve(), frames=tuple(Path(f).resolve() for f in ref.frames))
        if not self.options.send_files:
            return absolute, None
        blobs = []
        for f in absolute.files():
            try:
                blobs.append(f.read_bytes())
            except OSError as exc:  # hashed a moment ago: the file changed under us
                raise FerError(f"cannot read {f}: {exc.strerror or exc}") from None
        return absolute, blobs

    def _result(self, fut: Any, unit: Unit) -> list[tuple[str, Any]]:
        from distributed.scheduler import KilledWorker

        first = unit[0][1].path
        try:
            return fut.result()
        except KilledWorker:
            raise FerError(
                f"Dask workers died while extracting {first} (and its batch) more often than the scheduler's "
                "allowed-failures; the samples finished so far are cached, so a rerun resumes; "
                "rerun locally with `realtime-fer --debug extract --workers 0 ...` to see the error"
            ) from None
        except _worker.WorkerEnvironmentError as exc:
            raise FerError(f"Dask {exc}") from None
        except ImportError as exc:
            raise FerError(f"a Dask worker cannot import realtime-fer ({exc}); install the same realtime-fer on every worker") from None
        except FerError as exc:  # e.g. the landmarker model is missing on the worker
            raise FerError(f"on a Dask worker: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise FerError(f"lost the Dask scheduler at {self.options.address} ({_brief(exc)}); the samples finished so far are cached, so a rerun resumes") from None
        except CancelledError as exc:
            reason = getattr(exc, "reason", None) or "scheduler restarted or connection lost"
            raise FerError(
                f"the Dask scheduler at {self.options.address} dropped the task of {first} ({reason}); "
                "the samples finished so far are cached, so a rerun resumes"
            ) from None
        except Exception as exc:  # noqa: BLE001 - anything else a worker raised (run_batch itself never raises per sample)
            raise FerError(f"a Dask worker failed on the batch of {first}: {type(exc).__name__}: {exc}") from None


class _QuietDaskLogs:
    """While a client is open, Dask's own loggers (which log tracebacks while reconnecting to a
    lost scheduler) are muted unless this module logs at DEBUG (``-vv``): the command's one
    ``error:`` line says what happened."""

    def __init__(self) -> None:
        self._saved: dict[str, int] = {}

    def __enter__(self) -> None:
        if log.isEnabledFor(logging.DEBUG) or self._saved:
            return
        names = ["distributed", *(n for n in logging.Logger.manager.loggerDict if n.startswith("distributed."))]
        for name in names:
            logger = logging.getLogger(name)
            if name == "distributed" or logger.level != logging.NOTSET:
                self._saved[name] = logger.level
                logger.setLevel(logging.CRITICAL + 1)

    def __exit__(self, *exc: object) -> None:
        for name, level in self._saved.items():
            logging.getLogger(name).setLevel(level)
        self._saved.clear()


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_current: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("realtime_fer_executor", default=None)


def current_executor() -> Executor | None:
    """The executor set by the innermost :func:`use_executor` block, if any."""
    return _current.get()


@contextlib.contextmanager
def use_executor(executor: Executor | None) -> Iterator[Executor | None]:
    """Use ``executor`` for every extraction in the block that is not given one (``None``: the
    local default)."""
    token = _current.set(executor)
    try:
        yield executor
    finally:
        _current.reset(token)


@contextlib.contextmanager
def scheduler_executor(address: str | None, *, connect_timeout_s: float = 10.0, send_files: bool = False) -> Iterator[Executor | None]:
    """For commands: with an ``address``, connect a :class:`DaskExecutor` and make it the
    default of the block (:func:`use_executor`); without one, change nothing (yields ``None``).
    ``connect_timeout_s`` bounds both the wait for the scheduler and for a worker (at the start,
    and when every worker is gone during a run)."""
    if not address:
        if send_files:
            raise FerError("--send-files is used with --scheduler only")
        yield None
        return
    options = DaskOptions(address, connect_timeout_s=connect_timeout_s, send_files=send_files, no_worker_timeout_s=connect_timeout_s)
    with DaskExecutor(options) as ex, use_executor(ex):
        yield ex


__all__ = [
    "DaskExecutor",
    "DaskOptions",
    "Executor",
    "LocalExecutor",
    "current_executor",
    "scheduler_executor",
    "use_executor",
]
