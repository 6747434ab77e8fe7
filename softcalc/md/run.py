"""The MD driver: ASE integrators on a (corrected) uMLIP, with HDF5 output that survives a kill.

:func:`run_md` builds (or resumes) the run, attaches observers to the ASE integrator (stability
guards from :mod:`softcalc.md.safety`, the :class:`~softcalc.md.recorder.FrameRecorder`, the
:class:`~softcalc.md.progress.MDProgress` bar), runs it, and closes the trajectory.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.md.md import MolecularDynamics
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from softcalc.errors import InvalidStructureError
from softcalc.md.ensembles import EnsembleSettings, make_dynamics, restore_integrator_state
from softcalc.md.errors import MDInstabilityError, MDSettingsError, TrajectoryFileError
from softcalc.md.progress import MDProgress, ns_per_day
from softcalc.md.recorder import FrameRecorder
from softcalc.md.resume import check_resume, fingerprint, model_metadata
from softcalc.md.safety import DistanceGuard, ForceGuard, StabilityLimits
from softcalc.md.trajectory import Checkpoint, TrajectoryWriter, check_output, read_run

#: Values of ``run_md(resume=...)``: True is "require".
RESUME_MODES = (False, True, "require", "if-exists")


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


def _command(command: str | None) -> str:
    return command if command is not None else " ".join(sys.argv)


def _metadata(
    calculator: Calculator, atoms: Atoms, settings: dict[str, Any], command: str | None
) -> dict[str, Any]:
    return {
        **model_metadata(calculator), "fingerprint": fingerprint(calculator, atoms), **settings,
        "n_atoms": len(atoms), "formula": atoms.get_chemical_formula(),
        "command": _command(command),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {p: _package_version(p) for p in ("softcalc", "ase", "torch", "numpy", "h5py")},
    }


def _create(
    traj: str | Path, atoms: Atoms, metadata: dict[str, Any], n_frames: int, forces: bool, overwrite: bool,
    flush_every: int,
) -> TrajectoryWriter:
    """A new trajectory for ``n_frames`` frames, after checking that it may and can be written."""
    if Path(traj).exists() and not overwrite:
        raise TrajectoryFileError(
            f"{traj} exists. Fix: --resume to continue it, --overwrite to replace it, or a new path."
        )
    check_output(traj, n_frames, len(atoms), forces)
    return TrajectoryWriter.create(traj, atoms, metadata, forces=forces, chunk_frames=flush_every)


def _resume_mode(resume: bool | str, traj: str | Path | None, overwrite: bool) -> str | None:
    """``"require"``, ``"if-exists"`` or None (a new run) for ``run_md(resume=...)``."""
    if not resume:
        return None
    if resume not in RESUME_MODES:
        raise MDSettingsError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    if traj is None:
        raise MDSettingsError("resume needs the trajectory to continue (traj)")
    if overwrite:
        raise MDSettingsError(
            "resume and overwrite exclude each other. Fix: --resume to continue the file, or --overwrite "
            "to replace it."
        )
    return "if-exists" if resume == "if-exists" else "require"


def _reopen(
    traj: str | Path, atoms: Atoms, calculator: Calculator, settings: EnsembleSettings,
    wanted: dict[str, Any], steps: int, command: str | None,
) -> tuple[TrajectoryWriter, Checkpoint, np.random.Generator]:
    """Reopen ``traj`` to continue it to ``steps`` after checking that the run matches the file (see
    :func:`softcalc.md.resume.check_resume`; a refused file is left unchanged): its writer, its last
    checkpoint (whose state is put into ``atoms``) and the random generator in the checkpointed state."""
    stored = read_run(traj)
    check_resume(traj, stored, atoms, calculator, wanted, (*settings.used_attributes(), "every"))
    check_output(traj, (steps - stored.checkpoint.step) // wanted["every"], len(atoms), stored.has_forces)
    writer, checkpoint = TrajectoryWriter.resume(traj)
    resumed = json.loads(writer.attrs.get("resumed", "[]"))
    resumed.append({"step": checkpoint.step, "command": _command(command),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    writer.attrs["resumed"] = json.dumps(resumed)
    atoms.set_cell(checkpoint.cell, scale_atoms=False)
    atoms.set_positions(checkpoint.positions)
    atoms.set_momenta(checkpoint.momenta)
    rng = np.random.default_rng()
    rng.bit_generator.state = checkpoint.rng_state
    return writer, checkpoint, rng


@contextmanager
def _closed_on_failure(
    writer: TrajectoryWriter | None, dyn: MolecularDynamics, traj: str | Path | None
) -> Iterator[None]:
    """Record why the run stopped in the trajectory and close it; a blow-up becomes MDInstabilityError."""
    try:
        yield
    except (MDInstabilityError, InvalidStructureError) as exc:
        if writer is not None:
            writer.close(status=f"unstable at step {dyn.nsteps}: {exc}")
        raise MDInstabilityError(
            f"{exc} The trajectory {traj} keeps the frames before the failure." if traj else str(exc)
        ) from exc
    except BaseException:
        if writer is not None:
            with suppress(TrajectoryFileError):  # keep the original error when the disk is the problem
                writer.close(status=f"interrupted at step {dyn.nsteps}")
        raise


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
    resume: bool | Literal["require", "if-exists"] = False,
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
        resume: continue ``traj`` from its last committed frame (state, integrator variables, RNG).
            True or ``"require"``: ``traj`` must exist (a missing file is a :class:`TrajectoryFileError`,
            as ``softcalc md --resume``); ``"if-exists"``: continue it when it exists, else start it
            (``--resume-or-new``, for jobs that restart themselves). The calculator, the structure
            (atomic numbers in order, periodicity, masses; the cell too for NVE and NVT) and the
            ensemble settings must be those the file records, else :class:`ResumeMismatchError`
            names each difference; ``atoms`` gives only the species, the state comes from the file,
            and ``seed``, ``init_velocities`` and ``forces`` are those of the original run.
            overwrite: replace an existing ``traj`` (without it, an existing file is an error unless
            resuming; it cannot be combined with ``resume``).
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
    atoms = atoms.copy()
    atoms.calc = calculator
    wanted = {**settings.as_attributes(), "every": every}
    writer: TrajectoryWriter | None = None
    checkpoint: Checkpoint | None = None
    mode = _resume_mode(resume, traj, overwrite)
    if traj is not None and mode == "require" and not Path(traj).exists():
        raise TrajectoryFileError(
            f"cannot resume {traj}: no such trajectory. Fix: drop --resume to start a new run, or pass "
            '--resume-or-new to start it when it is missing (Python: resume="if-exists").'
        )
    if traj is not None and mode is not None and Path(traj).exists():
        writer, checkpoint, rng = _reopen(traj, atoms, calculator, settings, wanted, steps, command)
    else:
        seed = int(np.random.SeedSequence().entropy) if seed is None else seed
        rng = np.random.default_rng(seed)
        if init_velocities and settings.temperature_K > 0 and not atoms.get_momenta().any():
            MaxwellBoltzmannDistribution(atoms, temperature_K=settings.temperature_K, rng=rng)
            Stationary(atoms)
        if traj is not None:
            run_settings = {**wanted, "seed": str(seed), "flush_every": flush_every}
            meta = _metadata(calculator, atoms, run_settings, command)
            writer = _create(traj, atoms, meta, steps // every + 1, forces, overwrite, flush_every)
    dyn = make_dynamics(atoms, settings, rng)
    if checkpoint is not None:
        restore_integrator_state(dyn, checkpoint.integrator)
        dyn.nsteps = checkpoint.step

    limits = limits or StabilityLimits()
    bar = MDProgress(dyn, steps, len(atoms), timestep_fs, enabled=progress)
    dyn.attach(ForceGuard(dyn, limits), interval=1)
    dyn.attach(DistanceGuard(dyn, limits), interval=every)
    if writer is not None:
        first_step = 0 if checkpoint is None else checkpoint.step + 1
        recorder = FrameRecorder(dyn, rng, writer, timestep_fs=timestep_fs, stress=stress,
                                 flush_every=flush_every, first_step=first_step)
        dyn.attach(recorder, interval=every)
    dyn.attach(bar, interval=1)

    with bar, _closed_on_failure(writer, dyn, traj):
        dyn.run(steps - dyn.nsteps)  # ASE calls the observers on a new run's step 0, then after each step
    frames = 0
    if writer is not None:
        writer.close(status="complete")
        frames = writer.n_committed
    sps = bar.steps_per_second
    return MDResult(atoms, dyn.nsteps, bar.steps, frames, bar.elapsed, sps * len(atoms),
                    ns_per_day(sps, timestep_fs), Path(traj) if traj is not None else None)
