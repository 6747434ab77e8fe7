"""Calibrating a softening correction on DFT data, with uncertainty and a held-out check.

:func:`calibrate` runs four steps, each in its own module:

1. split frames (:mod:`softcalc.calibration.frames`): filter, order, fit K frames, hold out the rest
   (held-out frames identical to calibration frames are dropped and counted);
2. fit (:mod:`softcalc.calibration.methods`): a :class:`~softcalc.calibration.methods.CalibrationMethod`
   (global λ on forces, energies or both; per-species λ_Z) fits the correction with a bootstrap
   uncertainty;
3. verdict (:mod:`softcalc.calibration.verdict`): force and energy errors before/after on the held-out
   frames and the reasons, as data, for recommending the correction or not (λ undetermined or outside
   the physical range, held-out frames that are calibration frames, no support, a worse target);
4. provenance (here): the correction records the model, data hashes, settings and the verdict.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.calculators.calculator import Calculator

from softcalc.calibration.finetuning import Auto, AutoFit, FineTune, TunedFit, chosen_kind
from softcalc.calibration.forgetting import forgetting_check, forgetting_reason
from softcalc.calibration.frames import ORDERS, DataLike, FrameFilter, FrameSplit, select_frames, split_frames
from softcalc.calibration.methods import METHODS, TARGETS, CalibrationData, CalibrationMethod, Fit, ScaleFit
from softcalc.calibration.verdict import Reason, Verdict, energy_error_summary, error_summary, judge
from softcalc.correction import Correction
from softcalc.energies import EnergyComparison, energy_deviations
from softcalc.errors import DataError
from softcalc.evaluation import ForceComparison, compare_sets
from softcalc.model import ModelCalculator
from softcalc.registry import load_model
from softcalc.version import __version__

if TYPE_CHECKING:
    from softcalc.finetune.settings import FineTuneSettings

#: every calibration method by name (``calibrate(method=...)``, ``--method``)
ALL_METHODS = ("scale", "per-species", "finetune", "auto")

__all__ = ["ALL_METHODS", "ORDERS", "Calibration", "calibrate", "select_frames"]


@dataclass
class Calibration:
    """A fitted correction and the report that justifies (or rejects) it."""

    correction: Correction
    report: dict[str, Any]

    def save(self, path: str | Path) -> Correction:
        """Write the correction JSON to ``path``; a fine-tuned one with its weights beside it.

        The weights go to ``<path stem>.weights.pt`` (written first, each file atomically), and the JSON
        names that file relative to itself with its sha256. Returns the correction as saved.
        """
        path = Path(path)
        correction = self.correction
        if correction.tuned is not None:
            from softcalc.finetune.weights import save_tuned_weights

            weights = path.with_name(path.name.removesuffix(".json") + ".weights.pt")
            sha = save_tuned_weights(correction.tuned, weights)
            correction = replace(correction, weights={"file": weights.name, "sha256": sha}, tuned=None)
        correction.save(path)
        return replace(correction, path=path, source=f"correction file {path}")


def _energy_errors(
    fitted: Fit, split: FrameSplit, fit: EnergyComparison, held: EnergyComparison | None
) -> dict[str, Any] | None:
    """Errors of energy differences before/after: held-out frames against the calibration means."""
    after_fit = fitted.apply_energies(split.fit, fit)
    if held is None:
        return energy_error_summary(
            energy_deviations(fit), None if after_fit is None else energy_deviations(after_fit)
        )
    after_held = fitted.apply_energies(split.heldout, held)
    before = energy_deviations(held, fit.means())
    after = None
    if after_held is not None and after_fit is not None:
        after = energy_deviations(after_held, after_fit.means())
    return energy_error_summary(before, after)


def calibrate(
    model: str | Path | Calculator,
    data: DataLike,
    frames: int | None = None,
    test: DataLike | None = None,
    groups: Sequence[str] | None = None,
    order: str = "file",
    temperature: tuple[float, float] | None = None,
    strain: tuple[float, float] | None = None,
    per_species: bool = False,
    target: str = "forces",
    method: str | None = None,
    finetune: FineTuneSettings | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    regime: str = "own-material",
    progress: bool = False,
    device: str = "cpu",
    dtype: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> Calibration:
    """Fit a softening correction for ``model`` on DFT forces, energies or both.

    Args:
        model: model name/path or a base calculator from :func:`softcalc.load_model`.
        data: calibration data (paths or datasets). With ``frames=K`` the first K frames of each data
            set (after ``groups`` and ``order``) are fitted and, without ``test``, the rest held out.
        test: held-out data (e.g. mlearn ``test.json``), filtered by ``groups`` too; when given, the
            errors are reported on it alone. Frames of it identical to calibration frames are dropped
            (all of them: the correction is not recommended, there is no held-out check).
        groups: keep only frames of these structure groups (choose frames resembling your simulation).
        order: ``file`` (file order) or ``largest-force`` (largest RMS DFT force first, the paper's pick).
        temperature, strain: (low, high) ranges (K; signed strain) that frames must lie in, for fit and
            held-out frames alike (see :func:`select_frames`).
        per_species: fit λ_Z per element on forces (needs a model with per-atom energies).
        target: what a global λ is fitted on: ``forces`` (hot MD), ``energy`` (energy differences
            between frames of one composition: strain, surfaces, i.e. the curvature that elastic and
            phonon properties need) or ``forces+energy`` (see :mod:`softcalc.calibration.methods`).
        method: ``scale`` (default; ``per-species`` when ``per_species``), ``per-species``, ``finetune``
            (tune the weights; see :mod:`softcalc.calibration.finetuning`) or ``auto`` (the method with
            the lowest validation error).
        finetune: fine-tuning settings of ``finetune`` and ``auto`` (defaults when None).
        n_bootstrap: bootstrap replicas for the uncertainty of λ.
        regime: ``own-material`` or ``transfer`` (recorded in the correction).
    Returns:
        :class:`Calibration` with the correction (``recommended`` False when it does not help) and a
        report: scale, scale_std, scale_ci95, softening scale, force errors (eV/Å) and energy-difference
        errors (``errors["energy"]``, eV/atom) before/after (held-out when available), n_heldout_overlap
        (held-out frames dropped as calibration frames), warnings, reasons
        and a verdict.
    """
    if n_bootstrap < 1:
        raise DataError(
            f"n_bootstrap = {n_bootstrap}: the uncertainty of λ needs at least one bootstrap replica. "
            "Fix: use the default 1000 (or any positive number)."
        )
    chosen_method = _method(method or ("per-species" if per_species else "scale"), target, finetune)
    calc = load_model(model, device=device, dtype=dtype) if isinstance(model, (str, Path)) else model
    chosen_method.check(calc)
    split = split_frames(data, frames, test, FrameFilter(groups, order, temperature, strain))
    if target != "forces" and not any(f.energy is not None for d in split.fit for f in d.frames):
        raise DataError(
            f"--target {target} needs DFT energies, and none of the calibration frames has one. Fix: "
            "calibrate on data with energies (mlearn outputs.energy, extxyz energy=...; phonopy force sets "
            "have none) or use --target forces."
        )
    rng = np.random.default_rng(seed)
    fit_bare, fit_energy = compare_sets(calc, split.fit, progress)
    held_bare, held_energy = compare_sets(calc, split.heldout, progress) if split.heldout else (None, None)
    data_in = CalibrationData(calc, split.fit, fit_bare, progress, fit_energy)
    fitted = chosen_method.fit(data_in, n_bootstrap, rng)
    if held_bare is not None:
        errors = error_summary(held_bare, fitted.apply(split.heldout, held_bare))
    else:
        errors = error_summary(fit_bare, fitted.apply(split.fit, fit_bare))
    errors["energy"] = _energy_errors(fitted, split, fit_energy, held_energy)
    fit_metrics = fit_bare.metrics()
    verdict = judge(
        errors, held_bare is not None, fitted.supported, fit_metrics, fitted.estimates, split.overlap, target
    )
    extra = _tuning_checks(calc, fitted, split, (fit_bare, held_bare), (fit_energy, held_energy))
    if isinstance(fitted, AutoFit) and fitted.chosen is None:
        verdict = replace(verdict, reasons=(BARE_BEST, *verdict.reasons))
    if extra.get("forgetting", {}).get("flagged"):
        verdict = replace(verdict, reasons=(*verdict.reasons, forgetting_reason(extra["forgetting"])))
    report: dict[str, Any] = {
        "model": calc.info.name if isinstance(calc, ModelCalculator) else type(calc).__name__,
        "method": chosen_method.name,
        "kind": chosen_kind(fitted),
        "target": target,
        **fitted.summary,
        "softening_scale_fit": fit_metrics.softening_scale,
        "scale_opt_fit": fit_metrics.scale_opt,
        "correlation_fit": fit_metrics.correlation,
        "n_frames": fit_metrics.n_frames,
        "n_heldout": 0 if held_bare is None else len(held_bare.model),
        "n_heldout_overlap": split.overlap,
        "errors_on": verdict.errors_on,
        "softening_scale": errors["softening_scale"],
        "mae_before": errors["mae_before"],
        "mae_after": errors["mae_after"],
        "errors": errors,
        "recommended": verdict.recommended,
        "warnings": verdict.warnings,
        "reasons": verdict.as_dicts(),
        "verdict": verdict.text,
        **extra,
    }
    settings = {
        "frames": frames,
        "groups": list(groups) if groups else None,
        "order": order,
        "temperature_K": list(temperature) if temperature else None,
        "strain": list(strain) if strain else None,
        "target": target,
        "method": chosen_method.name,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }
    correction = _correction(calc, fitted, verdict, report, split, regime, settings, provenance or {})
    return Calibration(correction, report)


#: the reason ``auto`` gives when the bare model validates best
BARE_BEST = Reason(
    "bare-best",
    True,
    "no correction: the bare model had the lowest validation error of every method tried (see 'auto'). "
    "Fix: keep the bare model, or calibrate on frames that resemble the intended simulation.",
)


def _method(name: str, target: str, finetune: FineTuneSettings | None) -> CalibrationMethod:
    """The calibration method ``name`` for ``target``, or a :class:`DataError` naming what is possible."""
    if target not in TARGETS:
        raise DataError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if name not in ALL_METHODS:
        raise DataError(f"method must be one of {', '.join(ALL_METHODS)}, not {name!r}")
    if name in ("per-species", "auto") and target != "forces":
        what = "per-species λ_Z are" if name == "per-species" else "auto compares methods"
        raise DataError(
            f"{what} fitted on forces only, not on target {target!r}. "
            "Fix: use --method scale (one λ on energies) or --target forces."
        )
    if name == "scale":
        return TARGETS[target]()
    if name in ("finetune", "auto"):
        return (FineTune if name == "finetune" else Auto)(finetune)
    return METHODS[name]()


def _tuning_checks(
    calc: Calculator,
    fitted: Fit,
    split: FrameSplit,
    forces: tuple[ForceComparison, ForceComparison | None],
    energies: tuple[EnergyComparison, EnergyComparison | None],
) -> dict[str, Any]:
    """Report entries of fine-tuned weights (forgetting check) and of ``auto`` (every method's force and
    energy-difference errors, the bare model as ``none``)."""
    (fit_bare, held_bare), (fit_energy, held_energy) = forces, energies
    out: dict[str, Any] = {}
    chosen = fitted.chosen if isinstance(fitted, AutoFit) else fitted
    if isinstance(chosen, TunedFit) and isinstance(calc, ModelCalculator):
        out["forgetting"] = forgetting_check(calc, chosen.calc, chosen.summary["elements"])
    if isinstance(fitted, AutoFit):
        sets, bare = (split.heldout, held_bare) if held_bare is not None else (split.fit, fit_bare)
        identity = ScaleFit({}, True, (), value=1.0)
        out["methods"] = {
            name: {
                "validation_mae": fitted.summary["auto"]["validation_mae"][name],
                "mae_after": (fit or identity).apply(sets, bare).metrics().mae,
                "energy": _energy_errors(fit or identity, split, fit_energy, held_energy),
            }
            for name, fit in fitted.candidates.items()
        }
    return out


def _correction(
    calc: Calculator,
    fitted: Fit,
    verdict: Verdict,
    report: dict[str, Any],
    split: FrameSplit,
    regime: str,
    settings: dict[str, Any],
    extra: dict[str, Any],
) -> Correction:
    """The correction with its provenance: model fingerprint, data hashes, settings, version, time, extra."""
    chosen = fitted.chosen if isinstance(fitted, AutoFit) else fitted
    return Correction(
        tuned=chosen.adapter if isinstance(chosen, TunedFit) else None,
        scale=fitted.scale,
        species_scales=fitted.species_scales,
        model=calc.info.fingerprint if isinstance(calc, ModelCalculator) else None,
        regime=regime,
        recommended=verdict.recommended,
        statistics={k: v for k, v in report.items() if k not in {"errors", "warnings", "reasons"}},
        provenance={
            "data": [{"source": d.source, "sha256": d.sha256, "material": d.material} for d in split.fit],
            "heldout": [{"source": d.source, "sha256": d.sha256} for d in split.heldout],
            **settings,
            "softcalc_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **extra,
        },
    )
