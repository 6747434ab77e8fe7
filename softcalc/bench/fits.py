"""Calibrations inside the benchmarks: fit a correction or record why it cannot be fitted.

Shared by ``bench softening`` and ``bench properties``: :func:`calibrate_or_skip` runs
:func:`softcalc.calibrate` and turns a :class:`~softcalc.errors.SoftcalcError` (no frames of a
group, no force signal, no energies) into the skip reason the summary records; :func:`per_species_skip`
says why per-species λ_Z are not fitted; :func:`report_fields` is the one place that reads a
calibration report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from softcalc.calibration.pipeline import Calibration, calibrate
from softcalc.data.dataset import ForceDataset
from softcalc.errors import SettingsError, SoftcalcError
from softcalc.model import ModelAdapter, ModelCalculator


def report_fields(cal: Calibration, fields: Sequence[str]) -> dict[str, Any]:
    """The ``fields`` of the calibration report that it has, in the order of ``fields``."""
    report = cal.report.to_dict()
    return {k: report[k] for k in fields if k in report}


def calibrate_or_skip(
    calc: ModelCalculator, data: ForceDataset, test: ForceDataset, n_bootstrap: int, seed: int, **kwargs: Any
) -> Calibration | str:
    """λ fitted by :func:`calibrate` on ``data`` with ``test`` held out, or why it cannot be fitted."""
    try:
        return calibrate(calc, data, test=test, n_bootstrap=n_bootstrap, seed=seed, **kwargs)
    except SettingsError:  # the benchmark's own options are wrong: a bug, not a property of the data
        raise
    except SoftcalcError as exc:  # no frames of the group, no signal, no energies: a recorded skip
        return str(exc)


def per_species_skip(elements: Sequence[str], model: ModelAdapter) -> str | None:
    """Why per-species λ_Z are not fitted on data of ``elements`` with ``model``; None when they can be."""
    if len(elements) < 2:
        return f"single-element data ({elements[0]}): λ_Z = global λ"
    if not model.supports_per_atom_energies:
        return f"{model.info.name} has no per-atom energies"
    return None
