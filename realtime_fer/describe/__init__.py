"""Descriptions of a face derived from what the pipeline already computed, beside the emotion
decision (docs/describe.md):

* :mod:`.action_units`: approximate FACS action-unit intensities from MediaPipe's blendshapes;
* :mod:`.affect`: valence and arousal from the emotion probabilities, with circumplex
  coordinates of the emotion words from published norms.

Both are pure functions of one face's numbers (no state, no I/O) and cost a few microseconds a
face, so the recognizer publishes them with every prediction.
"""

from realtime_fer.describe.action_units import ACTION_UNITS, NO_COUNTERPART, ActionUnit, action_units
from realtime_fer.describe.affect import CIRCUMPLEX, Circumplex, valence_arousal

__all__ = ["ACTION_UNITS", "CIRCUMPLEX", "NO_COUNTERPART", "ActionUnit", "Circumplex", "action_units", "valence_arousal"]
