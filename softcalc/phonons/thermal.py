"""Harmonic thermal properties from mesh frequencies, in phonopy's units and formulas.

Per primitive cell (phonopy's normalisation: sums over modes divided by the sum of q-point
weights): Helmholtz free energy F in kJ/mol (zero-point energy included), entropy S and heat
capacity Cv in J/K/mol. Modes at or below ``cutoff_frequency`` (THz) are left out, imaginary modes
always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from softcalc.phonons import kernels
from softcalc.phonons.mesh import Mesh
from softcalc.phonons.units import EV_TO_KJ_MOL, KB_EV, THZ_TO_EV


@dataclass(frozen=True)
class ThermalProperties:
    """Harmonic thermal properties per primitive cell.

    Attributes:
        temperatures: (n_t,) K.
        free_energy: (n_t,) kJ/mol.
        entropy: (n_t,) J/K/mol.
        heat_capacity: (n_t,) J/K/mol (constant volume).
        cutoff_frequency: modes at or below this frequency (THz) were left out.
    """

    temperatures: np.ndarray
    free_energy: np.ndarray
    entropy: np.ndarray
    heat_capacity: np.ndarray
    cutoff_frequency: float


def thermal_properties(
    mesh: Mesh, temperatures: Sequence[float] | np.ndarray, cutoff_frequency: float = 1e-3
) -> ThermalProperties:
    """F, S, Cv at ``temperatures`` (K) from the frequencies of a mesh.

    The default cutoff of 1e-3 THz leaves out the three acoustic modes at Γ, whose computed
    frequencies are numerical noise of either sign (phonopy's own default cutoff is 0).
    """
    temps = np.atleast_1d(np.asarray(temperatures, dtype=float))
    if (temps < 0).any():
        raise ValueError("temperatures must be non-negative (K)")
    weights = np.broadcast_to(mesh.weights[:, None].astype(float), mesh.frequencies.shape)
    keep = mesh.frequencies > cutoff_frequency
    sums = kernels.harmonic_thermal_sums(
        np.ascontiguousarray(mesh.frequencies[keep] * THZ_TO_EV),
        np.ascontiguousarray(weights[keep]),
        temps,
        KB_EV,
    )
    norm = EV_TO_KJ_MOL / float(mesh.weights.sum())
    return ThermalProperties(
        temperatures=temps,
        free_energy=sums[:, 0] * norm,
        entropy=sums[:, 1] * norm * 1000,
        heat_capacity=sums[:, 2] * norm * 1000,
        cutoff_frequency=float(cutoff_frequency),
    )
