"""Central finite differences of a calculator's energy: the reference for conservative forces and stress.

F = −∂E/∂R (eV/Å) and σ = (1/V) ∂E/∂ε (eV/Å³, ASE's Voigt order xx yy zz yz xz xy) for any ASE
calculator; each energy is evaluated on a fresh copy of the structure so nothing is cached.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

#: Voigt index -> Cartesian pair, ASE's order
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def energy_of(atoms: Atoms, calc) -> float:
    """Potential energy (eV) of a copy of ``atoms`` with ``calc`` attached."""
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy()


def fd_forces(
    atoms: Atoms, calc, h: float, components: Sequence[tuple[int, int]] | None = None
) -> np.ndarray:
    """−∂E/∂R by central differences with step ``h`` (Å).

    Returns the (N, 3) forces, or with ``components`` the forces on those (atom, axis) pairs only.
    """
    pairs = [(i, k) for i in range(len(atoms)) for k in range(3)] if components is None else components
    out = []
    for i, k in pairs:
        e = []
        for sign in (1, -1):
            a = atoms.copy()
            a.positions[i, k] += sign * h
            e.append(energy_of(a, calc))
        out.append(-(e[0] - e[1]) / (2 * h))
    return np.reshape(out, (len(atoms), 3)) if components is None else np.array(out)


def fd_stress(atoms: Atoms, calc, h: float, voigt: Sequence[int] = range(6)) -> np.ndarray:
    """(1/V) ∂E/∂ε by central differences of symmetric strains of size ``h``, for the Voigt indices given."""
    out = []
    for v in voigt:
        i, j = VOIGT[v]
        unit = np.zeros((3, 3))
        unit[i, j] = unit[j, i] = 1.0 if i == j else 0.5
        e = []
        for sign in (1, -1):
            a = atoms.copy()
            a.set_cell(atoms.cell[:] @ (np.eye(3) + sign * h * unit), scale_atoms=True)
            e.append(energy_of(a, calc))
        out.append((e[0] - e[1]) / (2 * h) / atoms.get_volume())
    return np.array(out)
