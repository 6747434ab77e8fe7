"""The MD driver: ASE integrators on a (corrected) uMLIP, with HDF5 output that survives a kill."""

from __future__ import annotations

import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from softcalc.errors import InvalidStructureError
from softcalc.md.ensembles import EnsembleSettings, integrator_state, make_dynamics, restore_integrator_state
from softcalc.md.errors import MDInstabilityError, MDSettingsError, TrajectoryFileError
from softcalc.md.progress import MDProgress, ns_per_day
from softcalc.md.safety import StabilityLimits, check_distances, check_forces
from softcalc.md.trajectory import VELOCITY_UNIT, Checkpoint, TrajectoryWriter, check_output

#: Settings that must not change when a run is resumed.
_RESUME_KEYS = ("ensemble", "thermostat", "timestep_fs", "temperature_K", "pressure_GPa", "every")


@dataclass
class MDResult:
    """Summary of one :func:`run_md` call.

    Attributes:
        atoms: the final structure (velocities set, calculator attached).
        step: MD steps done in total (including those before a resume).
        steps_run: steps done by this call.
        frames: committed frames in the trajectory (0 without a file).
        wall_s: wall time of this call's steps in s.
        atom_steps_per_s, ns_per_day: throughput of this call.
        traj: the trajectory path or None.
    """

    atoms: Atoms
    step: int
    steps_run: int
    frames: int
    wall_s: float
    atom_steps_per_s: float
    ns_per_day: float
    traj: Path | None


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _model_metadata(calc: Calculator) -> dict[str, Any]:
    info = getattr(calc, "info", None)
    correction = getattr(calc, "correction", None)
    return {
        "calculator": repr(calc),
        "model": info.name if info is not None else type(calc).__name__,
        "model_family": info.family if info is not None else None,
        "weights_sha256": info.weights_sha256 if info is not None else None,
        "correction": correction.to_dict() if correction is not None else None,
        "device": info.device if info is not None else None,
    }


def _frame(atoms: Atoms, step: int, timestep_fs: float, forces: bool, stress: bool) -> dict[str, np.ndarray]:
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


def _check_resumable(writer: TrajectoryWriter, atoms: Atoms, wanted: dict[str, Any]) -> None:
    stored = writer.attrs
    diffs = [f"{k}: file has {stored.get(k)!r}, run asks {wanted[k]!r}" for k in _RESUME_KEYS
             if stored.get(k) != wanted[k]]
    if int(stored.get("n_atoms", -1)) != len(atoms):
        diffs.append(f"n_atoms: file has {stored.get('n_atoms')}, structure has {len(atoms)}")
    if diffs:
        writer.close()
        raise TrajectoryFileError(
            f"cannot resume {writer.path} with different settings ({'; '.join(diffs)}). "
            "Fix: resume with the original settings, or write a new file."
        )


def run_md(
    atoms: Atoms,
    calculator: Calculator,
    *,
    ensemble: str = "nve",
    thermostat: str | None = None,
    temperature_K: float = 300.0,
    pressure_GPa: float = 0.0,
    timestep_fs: float = 1.0,
    steps: int = 1000,
    traj: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    every: int = 10,
    flush_every: int = 10,
    forces: bool = False,
    stress: bool = True,
    seed: int | None = None,
    tdamp_fs: float | None = None,
    pdamp_fs: float | None = None,
    friction_per_fs: float = 0.01,
    init_velocities: bool = True,
    limits: StabilityLimits | None = None,
    progress: bool = True,
    command: str | None = None,
) -> MDResult:
    """Run molecular dynamics of ``atoms`` with ``calculator`` (e.g. :class:`softcalc.SoftCorrectedCalc`).

    Args:
        ensemble, thermostat: ``"nve"``; ``"nvt"`` with langevin | nose-hoover | bussi | berendsen;
            ``"npt"`` with nose-hoover (MTK) | berendsen (see :data:`softcalc.md.ensembles.THERMOSTATS`).
        temperature_K: target temperature in K, also used for Maxwell-Boltzmann initial velocities
            (drawn when ``init_velocities`` and the atoms have no momenta).
        pressure_GPa: external pressure in GPa (NPT).
        timestep_fs: time step in fs. steps: total MD steps of the run (a resumed run continues to it).
        traj: HDF5 trajectory path (None: no file). Frames every ``every`` steps (``steps`` must be a
            multiple), committed to disk every ``flush_every`` frames together with a restart checkpoint.
        resume: continue ``traj`` from its last committed frame (state, integrator variables, RNG);
            starts anew when the file does not exist yet. overwrite: replace an existing ``traj``
            (without it, an existing file is an error unless resuming).
        forces: also store forces. stress: store the stress of periodic cells (softcalc calculators
            compute it with the forces, so it costs nothing extra; NaN when off).
        seed: seed of the numpy random generator (velocities, stochastic thermostats).
        tdamp_fs, pdamp_fs: thermostat and barostat time constants in fs.
        friction_per_fs: Langevin friction in 1/fs.
        limits: when to stop a blown-up run (:class:`MDInstabilityError`; the file stays valid).
        progress: show a tqdm bar with atom-steps/s and ns/day. command: command line stored in the file.

    Returns:
        An :class:`MDResult`.
    """
    if every < 1 or flush_every < 1:
        raise MDSettingsError("every and flush_every must be at least 1")
    if steps < 0 or steps % every:
        raise MDSettingsError(f"steps ({steps}) must be a non-negative multiple of every ({every})")
    settings = EnsembleSettings(ensemble, thermostat, timestep_fs, temperature_K, pressure_GPa, tdamp_fs,
                                pdamp_fs, friction_per_fs)
    limits = limits or StabilityLimits()
    atoms = atoms.copy()
    atoms.calc = calculator
    wanted = {**settings.as_attributes(), "every": every}
    writer: TrajectoryWriter | None = None
    checkpoint: Checkpoint | None = None
    if traj is not None and resume and Path(traj).is_file():
        writer, checkpoint = TrajectoryWriter.resume(traj)
        _check_resumable(writer, atoms, wanted)
        check_output(traj, (steps - checkpoint.step) // every, len(atoms), writer.has_forces)
        atoms.set_cell(checkpoint.cell, scale_atoms=False)
        atoms.set_positions(checkpoint.positions)
        atoms.set_momenta(checkpoint.momenta)
        rng = np.random.default_rng()
        rng.bit_generator.state = checkpoint.rng_state
    else:
        seed = int(np.random.SeedSequence().entropy) if seed is None else seed
        rng = np.random.default_rng(seed)
        if init_velocities and settings.temperature_K > 0 and not atoms.get_momenta().any():
            MaxwellBoltzmannDistribution(atoms, temperature_K=settings.temperature_K, rng=rng)
            Stationary(atoms)
        if traj is not None:
            if Path(traj).exists() and not overwrite:
                raise TrajectoryFileError(
                    f"{traj} exists. Fix: --resume to continue it, --overwrite to replace it, or a new path."
                )
            check_output(traj, steps // every + 1, len(atoms), forces)
            meta = {
                **_model_metadata(calculator), **wanted, "seed": str(seed), "flush_every": flush_every,
                "n_atoms": len(atoms), "formula": atoms.get_chemical_formula(),
                "command": command if command is not None else " ".join(sys.argv),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": {p: _package_version(p) for p in ("softcalc", "ase", "torch", "numpy", "h5py")},
            }
            writer = TrajectoryWriter.create(traj, atoms, meta, forces=forces, chunk_frames=flush_every)
    dyn = make_dynamics(atoms, settings, rng)
    if checkpoint is not None:
        restore_integrator_state(dyn, checkpoint.integrator)
    start = checkpoint.step if checkpoint is not None else 0
    store_forces = writer.has_forces if writer is not None else False

    def record(step: int) -> None:
        check_distances(atoms, step, limits)
        if writer is None:
            return
        cp = Checkpoint(step, atoms.get_positions(), atoms.get_momenta(), np.array(atoms.cell),
                        integrator_state(dyn), rng.bit_generator.state)
        writer.append(_frame(atoms, step, timestep_fs, store_forces, stress), cp)
        if writer.n_pending >= flush_every:
            writer.commit()

    bar: MDProgress | None = None
    step = start
    try:
        if checkpoint is None:
            check_forces(atoms.get_forces(), atoms.get_potential_energy(), 0, limits)
            record(0)
            if writer is not None:
                writer.commit()
        bar = MDProgress(steps, start, len(atoms), timestep_fs, enabled=progress)
        while step < steps:
            dyn.step()
            step += 1
            check_forces(atoms.get_forces(), atoms.get_potential_energy(), step, limits)
            bar.update()
            if step % every == 0:
                record(step)
    except (MDInstabilityError, InvalidStructureError) as exc:
        if writer is not None:
            writer.close(status=f"unstable at step {step}: {exc}")
        raise MDInstabilityError(
            f"{exc} The trajectory {traj} keeps the frames before the failure." if traj else str(exc)
        ) from exc
    except BaseException:
        if writer is not None:
            with suppress(TrajectoryFileError):  # keep the original error when the disk is the problem
                writer.close(status=f"interrupted at step {step}")
        raise
    finally:
        if bar is not None:
            bar.close()
    frames = 0
    if writer is not None:
        writer.close(status="complete")
        frames = writer.n_committed
    assert bar is not None
    sps = bar.steps_per_second
    return MDResult(atoms, step, bar.steps, frames, bar.elapsed, sps * len(atoms),
                    ns_per_day(sps, timestep_fs), Path(traj) if traj is not None else None)
