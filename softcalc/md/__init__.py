"""Molecular dynamics with (corrected) uMLIPs: driver, HDF5 trajectories, analysis.

Example::

    from softcalc import SoftCorrectedCalc
    from softcalc.md import Trajectory, run_md
    calc = SoftCorrectedCalc("chgnet", correction="chgnet-si.json")
    run_md(atoms, calc, ensemble="nvt", temperature_K=600, timestep_fs=1, steps=10000, traj="si.h5")
    run_md(atoms, calc, ..., traj="si.h5", resume=True)  # after a kill: continues exactly
    # (a resume with another model, correction, structure or settings than the file records is refused)
    images = Trajectory("si.h5").to_atoms()
    analyze(["si.h5"], "si-report")   # energy conservation, VDOS, MSD, RDF: JSON + PNG
"""

from softcalc.md.analysis import msd, rdf, vacf, vdos
from softcalc.md.compare import compare_vdos, harmonic_dos, trajectory_vdos
from softcalc.md.conservation import energy_conservation
from softcalc.md.ensembles import THERMOSTATS, EnsembleSettings
from softcalc.md.errors import MDInstabilityError, MDSettingsError, ResumeMismatchError, TrajectoryFileError
from softcalc.md.report import analyze
from softcalc.md.run import MDResult, run_md
from softcalc.md.safety import StabilityLimits
from softcalc.md.trajectory import Trajectory, export_extxyz

__all__ = [
    "THERMOSTATS",
    "EnsembleSettings",
    "MDInstabilityError",
    "MDResult",
    "MDSettingsError",
    "ResumeMismatchError",
    "StabilityLimits",
    "Trajectory",
    "TrajectoryFileError",
    "analyze",
    "compare_vdos",
    "energy_conservation",
    "export_extxyz",
    "harmonic_dos",
    "msd",
    "rdf",
    "run_md",
    "trajectory_vdos",
    "vacf",
    "vdos",
]
