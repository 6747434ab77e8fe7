"""Errors raised by molecular dynamics runs and their trajectory files."""

from __future__ import annotations

from softcalc.errors import SoftcalcError


class MDInstabilityError(SoftcalcError, RuntimeError):
    """The simulation blew up (atoms too close, NaN or huge forces); the trajectory file stays valid."""


class MDSettingsError(SoftcalcError, ValueError):
    """Inconsistent MD settings (unknown thermostat, steps not a multiple of the frame interval...)."""


class TrajectoryFileError(SoftcalcError, OSError):
    """A trajectory file cannot be written, resumed or read (bad path, full disk, wrong format)."""


class ResumeMismatchError(TrajectoryFileError):
    """A resume asked for another model, correction, structure or settings than the trajectory records."""


class TrajectoryAnalysisError(SoftcalcError, ValueError):
    """A trajectory too short or otherwise unfit for the analysis asked of it."""

