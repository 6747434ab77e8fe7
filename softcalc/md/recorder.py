"""Saving MD frames: an observer of the ASE integrator that feeds a :class:`TrajectoryWriter`."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.md import MolecularDynamics

from softcalc.md.ensembles import integrator_state
from softcalc.md.trajectory import VELOCITY_UNIT, Checkpoint, TrajectoryWriter


def frame_row(
    atoms: Atoms, step: int, timestep_fs: float, forces: bool, stress: bool
) -> dict[str, np.ndarray]:
    """One trajectory row of ``atoms`` at MD step ``step`` (units in :mod:`softcalc.md.trajectory`).

    The stress is NaN unless ``stress`` is set, the cell is 3D periodic and the calculator gives it.
    """
    sigma = np.full(6, np.nan)
    if stress and atoms.pbc.all():
        try:
            sigma = atoms.get_stress()
        except PropertyNotImplementedError:
            pass
    row = {
        "positions": atoms.get_positions(),
        "velocities": atoms.get_velocities() * VELOCITY_UNIT,
        "cell": np.array(atoms.cell),
        "stress": sigma,
        "step": np.int64(step),
        "time": np.float64(step * timestep_fs),
        "potential_energy": np.float64(atoms.get_potential_energy()),
        "kinetic_energy": np.float64(atoms.get_kinetic_energy()),
        "temperature": np.float64(atoms.get_temperature()),
    }
    if forces:
        row["forces"] = atoms.get_forces()
    return row


class FrameRecorder:
    """Observer saving the current frame and the exact state to continue from it (every saved frame).

    Frames go to ``writer`` with a :class:`Checkpoint` (positions, momenta, cell, integrator variables,
    the state of ``rng``) and are committed every ``flush_every`` frames; a new file's first frame is
    committed at once, so a run can be resumed from its start. Steps before ``first_step`` are
    skipped: a run resumed from step 0 is shown that step again by ASE, and the file already has it.

    Args:
        dyn: the integrator; rng: the generator its stochastic thermostat draws from.
        writer: the open trajectory; timestep_fs: the time step in fs.
        stress: store the stress (periodic cells); flush_every: frames per commit.
        first_step: the first MD step to save (0 for a new file, past the checkpoint when resuming).
    """

    def __init__(
        self,
        dyn: MolecularDynamics,
        rng: np.random.Generator,
        writer: TrajectoryWriter,
        *,
        timestep_fs: float,
        stress: bool,
        flush_every: int,
        first_step: int,
    ) -> None:
        self.dyn = dyn
        self.rng = rng
        self.writer = writer
        self.forces = writer.has_forces
        self.timestep_fs = timestep_fs
        self.stress = stress
        self.flush_every = flush_every
        self.first_step = first_step

    def __call__(self) -> None:
        step, atoms = self.dyn.nsteps, self.dyn.atoms
        if step < self.first_step:
            return
        checkpoint = Checkpoint(step, atoms.get_positions(), atoms.get_momenta(), np.array(atoms.cell),
                                integrator_state(self.dyn), self.rng.bit_generator.state)
        row = frame_row(atoms, step, self.timestep_fs, self.forces, self.stress)
        self.writer.append(row, checkpoint)
        if self.writer.n_committed == 0 or self.writer.n_pending >= self.flush_every:
            self.writer.commit()
