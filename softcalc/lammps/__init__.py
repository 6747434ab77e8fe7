"""LAMMPS bridge: ``pair_style softcalc`` runs a softening-corrected uMLIP inside LAMMPS.

- :func:`plugin_path` builds (once, cached) and locates the plugin ``softcalcplugin.so``;
- :func:`open_lammps` gives a ``lammps.lammps`` instance with the plugin loaded;
- :class:`PairBridge` is what the C++ pair style calls every step.

In a LAMMPS input (``units metal``)::

    plugin load /path/to/softcalcplugin.so     # or export LAMMPS_PLUGIN_PATH=/path/to
    pair_style softcalc chgnet correction chgnet_si.json
    pair_coeff * * Si
"""

from softcalc.lammps.bridge import PairBridge, lammps_virial
from softcalc.lammps.build import PluginBuildError, plugin_path
from softcalc.lammps.runtime import executable, load_mpi, open_lammps, plugin_environment

__all__ = [
    "PairBridge",
    "PluginBuildError",
    "executable",
    "lammps_virial",
    "load_mpi",
    "open_lammps",
    "plugin_environment",
    "plugin_path",
]
