"""Which CPUs the pipeline's threads run on (Linux).

MediaPipe's Face Landmarker does its work on about one core, and everything else of the pipeline
(the capture thread's decoding, the worker's models, attributions and publishing) needs a
fraction of another. Left to itself, the scheduler moves the landmarker's threads between cores
and time-slices them with ours. Pinning them apart avoids both:

* the **landmarker** (the thread that calls it and the threads MediaPipe starts while it is
  created) runs on the first CPU the process may use;
* the **capture** and **worker** threads run on the others.

Measured on the 2-core VM of ``docs/benchmarks.md``: the bare landmarker loop ran about 10 %
faster pinned to one CPU than free, and the whole pipeline pinned this way ran as fast as the
free bare loop. With fewer than two usable CPUs, on other systems, or with
``pin_threads: false``, nothing is pinned.

Several recognizers in one process (several cameras) each reserve their own landmarker CPU
(:func:`reserve_plan`); when no CPU is left to reserve, a recognizer runs unpinned.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from dataclasses import dataclass
from typing import Collection, Iterator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuPlan:
    """CPU sets for the landmarker and for the other pipeline threads."""

    landmarker: frozenset[int]
    others: frozenset[int]

    def describe(self) -> str:
        return f"landmarker on CPU {_cpus(self.landmarker)}, capture and worker threads on CPU {_cpus(self.others)}"


def describe_plan(plan: CpuPlan | None) -> str:
    """Where the threads run, for logs and reports."""
    return plan.describe() if plan is not None else "threads not pinned"


def _cpus(cpus: Collection[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


@functools.lru_cache(maxsize=1)
def usable_cpus() -> tuple[int, ...]:
    """The CPUs this process may use, read once (before any thread of ours is pinned)."""
    return tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()


usable_cpus()  # at import, from the importing (unpinned) thread


def plan_cpus(enabled: bool = True) -> CpuPlan | None:
    """The CPU plan for this process, or ``None`` (pinning off, unsupported, or < 2 CPUs)."""
    if not enabled:
        return None
    allowed = usable_cpus()
    if len(allowed) < 2:
        return None
    return CpuPlan(frozenset(allowed[:1]), frozenset(allowed[1:]))


def pin_current_thread(cpus: Collection[int] | None) -> bool:
    """Restrict the calling thread (and the threads it starts from now on) to ``cpus``.

    Returns False, with a debug log line, when that is not possible; ``None`` does nothing.
    """
    if cpus is None:
        return False
    try:
        os.sched_setaffinity(0, set(cpus))  # pid 0: the calling thread only
        return True
    except (AttributeError, OSError, ValueError) as exc:
        log.debug("cannot pin the thread to CPUs %s: %s", _cpus(cpus), exc)
        return False


_reserved: set[int] = set()
_reserved_lock = threading.Lock()


def reserve_plan(enabled: bool = True) -> CpuPlan | None:
    """Like :func:`plan_cpus`, but the landmarker CPU is reserved for the caller until
    :func:`release_plan`: the next reservation gets another CPU, or ``None`` when fewer than two
    unreserved CPUs are left (that recognizer then runs unpinned)."""
    if not enabled:
        return None
    with _reserved_lock:
        allowed = usable_cpus()
        free = [c for c in allowed if c not in _reserved]
        if len(free) < 2:
            return None
        landmarker = free[0]
        _reserved.add(landmarker)
        return CpuPlan(frozenset({landmarker}), frozenset(c for c in allowed if c not in _reserved))


def release_plan(plan: CpuPlan | None) -> None:
    """Give a plan's landmarker CPU back (idempotent)."""
    if plan is not None:
        with _reserved_lock:
            _reserved.difference_update(plan.landmarker)


@contextlib.contextmanager
def pinned(cpus: Collection[int] | None) -> Iterator[None]:
    """Run the block with the calling thread pinned to ``cpus``; restore its CPUs after."""
    if cpus is None or not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    pin_current_thread(cpus)
    try:
        yield
    finally:
        pin_current_thread(before)
