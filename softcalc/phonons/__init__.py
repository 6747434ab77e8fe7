"""Periodic phonons from finite-difference force constants, with phonopy as reference and interop.

Modules: :mod:`~softcalc.phonons.kernels` (Numba), :mod:`~softcalc.phonons.force_constants`,
:mod:`~softcalc.phonons.dynmat`, :mod:`~softcalc.phonons.mesh`, :mod:`~softcalc.phonons.band`,
:mod:`~softcalc.phonons.dos`, :mod:`~softcalc.phonons.thermal`, :mod:`~softcalc.phonons.phonopy_io`,
the :class:`Phonons` facade, and :mod:`~softcalc.phonons.comparison` (a model's phonons against a DFT
force set, what ``softcalc phonons`` runs). Names below are loaded on first use, so that
:mod:`softcalc.hessian` can use the kernels without importing the facade (and phonopy).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Phonons": "facade",
    "DynamicalMatrix": "dynmat",
    "BandStructure": "band",
    "Dos": "dos",
    "Mesh": "mesh",
    "ThermalProperties": "thermal",
    "mesh_qpoints": "mesh",
    "read_phonopy": "phonopy_io",
    "read_force_sets": "phonopy_io",
    "read_force_constants": "phonopy_io",
    "write_force_constants": "phonopy_io",
    "to_phonopy_atoms": "phonopy_io",
    "from_phonopy_atoms": "phonopy_io",
    "fd_force_constants": "force_constants",
    "fit_force_constants": "phonopy_io",
    "acoustic_sum_rule": "force_constants",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"softcalc.phonons.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'softcalc.phonons' has no attribute {name!r}")
