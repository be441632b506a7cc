"""realtime_fer: real-time, explainable facial emotion recognition.

Pipeline (one subpackage per stage)::

    capture -> landmarks -> features -> models -> explain -> publish

Offline tools (dataset extraction, training, evaluation) live in :mod:`realtime_fer.data`
and :mod:`realtime_fer.training`; the command line is :mod:`realtime_fer.cli`.
"""

from realtime_fer.errors import FerError

__all__ = ["FerError", "__version__"]
__version__ = "0.16.0"
