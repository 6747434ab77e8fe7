"""Detect a blown-up simulation: atoms too close, non-finite or huge forces.

The checks are functions; :class:`ForceGuard` and :class:`DistanceGuard` attach them to an ASE
integrator as observers (``dyn.attach(ForceGuard(dyn, limits), interval=1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.md.md import MolecularDynamics
from ase.neighborlist import neighbor_list

from softcalc.md.errors import MDInstabilityError


@dataclass(frozen=True)
class StabilityLimits:
    """Thresholds that stop a run.

    Attributes:
        max_force: largest allowed force on an atom in eV/Å.
        min_distance: smallest allowed interatomic distance in Å (checked at every saved frame).
    """

    max_force: float = 50.0
    min_distance: float = 0.5


def check_forces(forces: np.ndarray, energy: float, step: int, limits: StabilityLimits) -> None:
    """Raise :class:`MDInstabilityError` when the energy or a force is non-finite or too large."""
    if not np.isfinite(energy) or not np.isfinite(forces).all():
        raise MDInstabilityError(f"non-finite energy or forces at step {step}: the simulation blew up.")
    norms = np.linalg.norm(forces, axis=1)
    worst = int(np.argmax(norms))
    if norms[worst] > limits.max_force:
        raise MDInstabilityError(
            f"force of {norms[worst]:.1f} eV/Å on atom {worst} at step {step} exceeds {limits.max_force} "
            "eV/Å: "
            "the simulation is blowing up. Fix: a smaller time step, a relaxed starting structure, or a "
            "higher --max-force if such forces are physical."
        )


def check_distances(atoms: Atoms, step: int, limits: StabilityLimits) -> None:
    """Raise :class:`MDInstabilityError` when two atoms are closer than ``limits.min_distance``."""
    if not np.isfinite(atoms.positions).all():
        raise MDInstabilityError(f"non-finite positions at step {step}: the simulation blew up.")
    i, j, d = neighbor_list("ijd", atoms, limits.min_distance)
    if len(d):
        k = int(np.argmin(d))
        raise MDInstabilityError(
            f"atoms {i[k]} and {j[k]} are {d[k]:.3f} Å apart at step {step} (limit {limits.min_distance} Å): "
            "the simulation blew up. Fix: a smaller time step or a relaxed starting structure."
        )


class ForceGuard:
    """Observer stopping the run when the energy or a force is non-finite or too large (every step)."""

    def __init__(self, dyn: MolecularDynamics, limits: StabilityLimits) -> None:
        self.dyn = dyn
        self.limits = limits

    def __call__(self) -> None:
        atoms = self.dyn.atoms
        check_forces(atoms.get_forces(), atoms.get_potential_energy(), self.dyn.nsteps, self.limits)


class DistanceGuard:
    """Observer stopping the run when two atoms come too close (every saved frame: a neighbour search)."""

    def __init__(self, dyn: MolecularDynamics, limits: StabilityLimits) -> None:
        self.dyn = dyn
        self.limits = limits

    def __call__(self) -> None:
        check_distances(self.dyn.atoms, self.dyn.nsteps, self.limits)
