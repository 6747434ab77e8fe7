"""softcalc plugin for MACE (mace-torch): MACE-MP foundation models by name, any ``.model`` file by path.

Registered under the ``softcalc.models`` entry point as ``mace``. mace-torch is imported only when
a model is loaded.
"""

from softcalc_mace._adapter import MaceAdapter
from softcalc_mace._plugin import MacePlugin

__all__ = ["MaceAdapter", "MacePlugin"]
