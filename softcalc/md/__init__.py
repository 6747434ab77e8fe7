"""Molecular dynamics with (corrected) uMLIPs: driver, HDF5 trajectories, analysis."""

from softcalc.md.ensembles import THERMOSTATS, EnsembleSettings
from softcalc.md.errors import MDInstabilityError, MDSettingsError, TrajectoryFileError
from softcalc.md.run import MDResult, run_md
from softcalc.md.safety import StabilityLimits
from softcalc.md.trajectory import Trajectory, export_extxyz

__all__ = [
    "THERMOSTATS",
    "EnsembleSettings",
    "MDInstabilityError",
    "MDResult",
    "MDSettingsError",
    "StabilityLimits",
    "Trajectory",
    "TrajectoryFileError",
    "export_extxyz",
    "run_md",
]
