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

**Several streams in one process** (``realtime-fer run`` with several sources) follow
:func:`plan_streams`: with N streams on C usable CPUs (C >= 2)

* N < C: landmarker *i* alone on CPU *i*; the capture and worker threads of every stream share
  the remaining C - N CPUs (1 stream on 2 CPUs: the single-stream plan above);
* N >= C: the landmarkers are spread round-robin, landmarker *i* on CPU *i* mod C (so no core
  runs two landmarkers while another runs none), and the capture and worker threads may run on
  every CPU: on a machine with fewer cores than cameras each landmarker's core is shared anyway,
  and keeping the light threads off a fixed core lets the scheduler fill the gaps.

Each recognizer takes its plan with :func:`reserve_plan` and gives it back with
:func:`release_plan`. Inside :func:`expect_streams` (``run`` with several sources opens its
streams there) the k-th reservation gets the k-th plan of :func:`plan_streams`. Outside it,
recognizers created one by one (library use) each reserve a landmarker CPU of their own, not
used by another landmarker, while at least one other CPU is left for the remaining threads;
beyond that a recognizer runs unpinned.
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


def plan_streams(n: int, enabled: bool = True, cpus: Collection[int] | None = None) -> list[CpuPlan | None]:
    """The CPU plan of each of ``n`` streams (see the module docs); all ``None`` when pinning is
    off or fewer than two CPUs are usable. ``cpus``: the CPUs to plan over (default
    :func:`usable_cpus`)."""
    if n < 1:
        raise ValueError("plan_streams needs n >= 1")
    allowed = tuple(sorted(cpus)) if cpus is not None else usable_cpus()
    if not enabled or len(allowed) < 2:
        return [None] * n
    c = len(allowed)
    if n < c:
        rest = frozenset(allowed[n:])
        return [CpuPlan(frozenset({allowed[i]}), rest) for i in range(n)]
    every = frozenset(allowed)
    return [CpuPlan(frozenset({allowed[i % c]}), every) for i in range(n)]


_slots: list[CpuPlan | None] = []
"""Reserved plans by stream slot (``None``: a free slot)."""
_expected: int | None = None
"""Streams being opened together (:func:`expect_streams`), else ``None``."""
_reserved_lock = threading.Lock()


@contextlib.contextmanager
def expect_streams(n: int) -> Iterator[None]:
    """Within the block, :func:`reserve_plan` places the streams for ``n`` of them."""
    global _expected
    with _reserved_lock:
        before, _expected = _expected, max(1, n)
    try:
        yield
    finally:
        with _reserved_lock:
            _expected = before


def reserve_plan(enabled: bool = True) -> CpuPlan | None:
    """A CPU plan for one more recognizer, held until :func:`release_plan` (see the module
    docs): inside :func:`expect_streams`, the plan of the next free stream slot; outside, a
    landmarker CPU no other reserved landmarker uses, or ``None`` (unpinned) when fewer than two
    such CPUs are left. The first reservation is :func:`plan_cpus`. ``None`` as well when
    pinning is off or fewer than two CPUs are usable."""
    allowed = usable_cpus()
    if not enabled or len(allowed) < 2:
        return None
    with _reserved_lock:
        slot = next((i for i, p in enumerate(_slots) if p is None), len(_slots))
        if _expected is not None:
            plan: CpuPlan | None = plan_streams(max(_expected, slot + 1))[slot]
        else:
            taken = {c for p in _slots if p is not None for c in p.landmarker}
            free = [c for c in allowed if c not in taken]
            if len(free) < 2:
                return None
            taken.add(free[0])
            plan = CpuPlan(frozenset({free[0]}), frozenset(c for c in allowed if c not in taken))
        if slot == len(_slots):
            _slots.append(plan)
        else:
            _slots[slot] = plan
        return plan


def release_plan(plan: CpuPlan | None) -> None:
    """Give a reserved plan's slot back (a plan not reserved, or ``None``, does nothing)."""
    if plan is None:
        return
    with _reserved_lock:
        index = next((i for i, p in enumerate(_slots) if p is plan), None)
        if index is None:
            index = next((i for i, p in enumerate(_slots) if p == plan), None)
        if index is not None:
            _slots[index] = None
        while _slots and _slots[-1] is None:
            _slots.pop()


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
