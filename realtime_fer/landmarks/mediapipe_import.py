"""Importing MediaPipe's Tasks API without paying for matplotlib.

``mediapipe.tasks.python.vision`` imports its ``drawing_utils``, which imports
``matplotlib.pyplot`` at module level, for plotting helpers this package never calls. That
import is about half of MediaPipe's import time (0.3 s here; more on a busy machine), so a large
share of a cold start. Before MediaPipe is first imported, :func:`import_vision` puts a
stand-in module under the name ``matplotlib.pyplot``: the first attribute asked of it imports
the real pyplot (which then replaces the stand-in in ``sys.modules``) and is answered from it,
as is every later one, so a program that does plot through MediaPipe or imports pyplot itself
gets the real module. Nothing is changed when pyplot is already imported or is not installed.

(:class:`importlib.util.LazyLoader` cannot do this on Python 3.11: the import system reads the
module's ``__spec__``, which loads it at once.)
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

_NAME = "matplotlib.pyplot"


class _DeferredModule(ModuleType):
    """Stands for a module until one of its attributes is asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_fer_real"] = None

    def _load(self) -> ModuleType:
        real = self.__dict__["_fer_real"]
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            self.__dict__["_fer_real"] = real
        return real

    def __getattr__(self, attr: str) -> Any:  # only for attributes the stand-in lacks
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return getattr(self._load(), attr)


def _defer_pyplot() -> None:
    if _NAME in sys.modules or "mediapipe.tasks.python.vision" in sys.modules:
        return
    try:
        if importlib.util.find_spec("matplotlib") is None:  # top level: finds without importing
            return
    except (ImportError, ValueError):
        return
    stand_in = _DeferredModule(_NAME)
    stand_in.__spec__ = None  # the import system sees a finished module
    sys.modules[_NAME] = stand_in
    log.debug("matplotlib.pyplot deferred until first use")


def import_vision() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``(mediapipe, mediapipe.tasks.python, mediapipe.tasks.python.vision)``."""
    _defer_pyplot()
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    return mp, mp_tasks, vision


__all__ = ["import_vision"]
