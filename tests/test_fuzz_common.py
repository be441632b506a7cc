"""Shared pieces of the fuzz tests (``tests/test_fuzz_*.py``); holds no tests itself.

* :func:`fuzz` -- hypothesis settings for every fuzzer: derandomized (the same cases on every
  run, so a failure reproduces), no example database written into the repository, no deadline
  (the machine is shared; speed is measured by the benchmarks, not here).
* :func:`tried` -- counts the cases each fuzzer ran; the counts are printed at the end of the
  pytest run ("fuzz cases tried: ...") and, when ``FER_FUZZ_REPORT`` names a file, written
  there as JSON (docs/reliability.md quotes them).
* :func:`assert_clear_error` -- the contract every fuzzer checks: a user-facing error is a
  :class:`~realtime_fer.errors.FerError` with a one-line, non-empty message.
"""

from __future__ import annotations

import collections
import json
import os

import pytest
from hypothesis import HealthCheck, settings

from realtime_fer.errors import FerError

_BASE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)



def fuzz(max_examples: int) -> settings:
    """The fuzzers' settings with ``max_examples`` cases (sized to keep the suite near 2 CPU minutes)."""
    return settings(_BASE, max_examples=max_examples)


_COUNTS: collections.Counter[str] = collections.Counter()
_OUTCOMES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def tried(fuzzer: str, outcome: str = "case") -> None:
    """Count one case of ``fuzzer`` (``outcome``: e.g. ``rejected``, ``accepted``, ``skipped``)."""
    _COUNTS[fuzzer] += 1
    _OUTCOMES[fuzzer][outcome] += 1


def counts() -> dict[str, dict[str, int]]:
    """fuzzer -> {"cases": n, outcome: n, ...} so far in this process."""
    return {name: {"cases": n, **dict(_OUTCOMES[name])} for name, n in sorted(_COUNTS.items())}


def assert_clear_error(exc: BaseException, *fragments: str) -> str:
    """``exc`` is a FerError with a one-line message containing every fragment; returns it."""
    assert isinstance(exc, FerError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.strip(), f"empty message from {type(exc).__name__}"
    assert "\n" not in message, f"multi-line message: {message!r}"
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


class _Reporter:
    """A pytest plugin printing the counts in the terminal summary."""

    def pytest_terminal_summary(self, terminalreporter: object) -> None:
        data = counts()
        if not data:
            return
        tr = terminalreporter
        tr.write_sep("-", "fuzz cases tried")  # type: ignore[attr-defined]
        for name, c in data.items():
            rest = ", ".join(f"{k} {v}" for k, v in c.items() if k != "cases")
            tr.write_line(f"{name}: {c['cases']} cases ({rest})")  # type: ignore[attr-defined]
        path = os.environ.get("FER_FUZZ_REPORT")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)


@pytest.fixture(scope="session", autouse=True)
def fuzz_report(pytestconfig: pytest.Config) -> None:
    """Register the reporter once per session (each fuzz module imports this fixture)."""
    if not pytestconfig.pluginmanager.has_plugin("fer-fuzz-report"):
        pytestconfig.pluginmanager.register(_Reporter(), "fer-fuzz-report")
