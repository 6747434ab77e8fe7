"""Calibration: :mod:`~softcalc.calibration.pipeline` (``softcalc.calibrate``) runs its steps, frames,
registered methods, verdict, properties and the forgetting check, each in its own module."""
