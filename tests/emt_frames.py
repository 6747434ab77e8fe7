"""Labelled Cu frames from ASE's EMT for property tests: hot frames, strain modes, slabs, a ground state.

"DFT" is EMT; a "model" :class:`ScaledEMT` multiplies EMT's energies and forces by a factor C, so its
surface energies, curvatures and forces are exactly C times DFT's (known answers for property tests).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc111
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

#: softening of the scaled-EMT model: every energy difference and force is C times EMT's
C = 0.8
A_CU = 3.6
#: strain modes written: (mode, kind, Voigt index), strains of each
MODES = ((0, "normal", 0), (1, "normal", 1), (3, "shear", 5))
STRAINS = (-0.02, -0.01, 0.01, 0.02)
#: extxyz keeps 8 decimals of forces; energies are exact enough for 1e-6 relative
TOL = 1e-6


class ScaledEMT(Calculator):
    """EMT with energy and forces multiplied by ``factor``; counts its evaluations."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor, self.calls, self.emt = factor, 0, EMT()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        a = self.atoms.copy()
        a.calc = self.emt
        self.results = {
            "energy": self.factor * a.get_potential_energy(),
            "forces": self.factor * a.get_forces(),
        }


def labelled(atoms: Atoms, calc: Calculator | None, group: str, description: str) -> Atoms:
    """``atoms`` with the "DFT" energy and forces of ``calc`` (None: forces only, all zero) and metadata."""
    atoms = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    atoms.info.update(group=group, description=description)
    if calc is None:
        atoms.arrays["forces"] = np.zeros((len(atoms), 3))
        return atoms
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def strained(atoms: Atoms, voigt: int, strain: float) -> Atoms:
    eps = np.zeros((3, 3))
    i, j = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)][voigt]
    eps[i, j] += strain if i == j else strain / 2
    eps[j, i] = eps[i, j]
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


def rattled(atoms: Atoms, seed: int) -> Atoms:
    out = atoms.copy()
    out.positions += np.random.default_rng(seed).normal(scale=0.05, size=out.positions.shape)
    return out


def cu_frames(calc: Calculator, ground_state: bool = True, surfaces: bool = True) -> list[Atoms]:
    """Two equal halves (calibration, test by file order): hot frames, strain modes, slabs, ground state."""
    cell = bulk("Cu", "fcc", a=A_CU, cubic=True) * (2, 2, 2)
    half: list[list[Atoms]] = [[], []]
    for k in range(4):
        half[k % 2].append(labelled(rattled(cell, k), calc, "AIMD-NVT", f"AIMD NVT at 300 K, frame {k}"))
    for mode, _, voigt in MODES:
        for k, x in enumerate(STRAINS):
            half[k % 2].append(
                labelled(
                    strained(cell, voigt, x), calc, "Elastic", f"Cu 2x2x2 cell, mode {mode}, strain {x}"
                )
            )
    if surfaces:
        for k, slab in enumerate(
            [fcc111("Cu", (2, 2, 4), a=A_CU, vacuum=6.0), fcc100("Cu", (2, 2, 4), a=A_CU, vacuum=7.0)]
        ):
            slab.pbc = True
            half[k].append(labelled(slab, calc, "Surface", f"Cu_surface_{k}"))
    if ground_state:
        half[0].append(labelled(cell, calc, "Elastic", "Ground state crystal"))
        half[1].append(labelled(rattled(cell, 9), calc, "Vacancy", "filler"))
    assert len(half[0]) == len(half[1])
    return half[0] + half[1]
