"""softcalc plugin for matgl: M3GNet (MP-2021.2.8, MatPES) and TensorNet (MatPES) potentials.

Registered under the ``softcalc.models`` entry point as ``matgl = softcalc_matgl:MatglPlugin``.
The M3GNet and TensorNet weights were trained with destination message aggregation, which
matgl 4.x changed; :func:`fix_message_aggregation` detects and repairs it on every loaded model.
"""

from softcalc_matgl._adapter import MatglAdapter
from softcalc_matgl._aggregation import fix_message_aggregation
from softcalc_matgl._plugin import ALIASES, MODELS, MatglPlugin

__all__ = ["ALIASES", "MODELS", "MatglAdapter", "MatglPlugin", "fix_message_aggregation"]
