"""Calibrating a softening correction on DFT data, with uncertainty and a held-out check.

:func:`calibrate` runs four steps, each in its own module:

1. split frames (:mod:`softcalc.calibration.frames`): filter, order (the method's default order unless
   one is given), fit K frames, hold out the rest (held-out frames identical to calibration frames are
   dropped and counted);
2. fit: the method registered under the name asked for (:mod:`softcalc.calibration.registry`): a global λ
   on forces, energies or both, per-species λ_Z (:mod:`softcalc.calibration.methods`), fine-tuned weights
   or ``auto`` (:mod:`softcalc.calibration.finetuning`), with a bootstrap uncertainty where it applies;
3. verdict (:mod:`softcalc.calibration.verdict`): force and energy errors before/after on the held-out
   frames, per structure group, the property ratios of the frames (:mod:`softcalc.calibration.properties`)
   and the reasons, as data, for recommending the correction or not (λ undetermined or outside the
   physical range, held-out frames that are calibration frames, no support, a worse target, a group or a
   property made worse, tuned weights without held-out frames or without gain; the method's own checks,
   such as the forgetting check);
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

from softcalc.calibration import finetuning as _finetuning  # noqa: F401 - registers finetune and auto
from softcalc.calibration.frames import ORDERS, DataLike, FrameFilter, FrameSplit, select_frames, split_frames
from softcalc.calibration.methods import CalibrationData, CheckedFrames, Fit
from softcalc.calibration.properties import property_changes, property_frames
from softcalc.calibration.registry import MethodOptions, check_target, method_names, method_spec
from softcalc.calibration.report import CalibrationReport
from softcalc.calibration.verdict import Verdict, energy_error_summary, error_summary, judge
from softcalc.correction import Correction
from softcalc.energies import EnergyComparison, energy_deviations
from softcalc.errors import DataError, SettingsError
from softcalc.evaluation import compare_sets
from softcalc.model import ModelCalculator
from softcalc.registry import load_model
from softcalc.version import __version__

if TYPE_CHECKING:
    from softcalc.finetune.settings import FineTuneSettings

__all__ = ["ORDERS", "Calibration", "calibrate", "method_names", "select_frames"]


@dataclass
class Calibration:
    """A fitted correction and the report that justifies (or rejects) it."""

    correction: Correction
    report: CalibrationReport

    def save(self, path: str | Path) -> Correction:
        """Write the correction JSON to ``path``; a fine-tuned one with its weights beside it.

        The weights go to ``<path stem>.weights.pt`` (written first, each file atomically), and the JSON
        names that file relative to itself with its sha256. Returns the correction as saved.
        """
        path = Path(path)
        correction = self.correction
        if correction.tuned is not None:
            from softcalc.tuned_weights import save_tuned_weights

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


def _property_changes(
    calc: Calculator, fitted: Fit, split: FrameSplit, fit: EnergyComparison, held: EnergyComparison | None
) -> dict[str, dict[str, Any]]:
    """Property ratios before/after on the calibration and held-out frames, and on the frames of the
    calibration data beyond K that give properties (empty without energies)."""
    if fitted.apply_energies(split.fit, fit) is None:  # a correction without energies (λ_Z)
        return {}
    parts = [(split.fit, fit)] + ([(split.heldout, held)] if held is not None else [])
    unused = property_frames(split.unused)
    if unused:
        parts.append((unused, compare_sets(calc, unused)[1]))
    bare = EnergyComparison.merge([energies for _, energies in parts])
    corrected = EnergyComparison.merge([fitted.apply_energies(sets, energies) for sets, energies in parts])
    return property_changes([d for sets, _ in parts for d in sets], bare.dft, bare.model, corrected.model)


def calibrate(
    model: str | Path | Calculator,
    data: DataLike,
    *,
    frames: int | None = None,
    test: DataLike | None = None,
    groups: Sequence[str] | None = None,
    order: str | None = None,
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
        order: ``file`` (file order), ``largest-force`` (largest RMS DFT force first, the paper's pick) or
            ``spread`` (round robin over the labelled regimes; see :mod:`softcalc.calibration.frames`);
            None: the method's default (``file`` for λ, ``spread`` for fine-tuning and ``auto``).
        temperature, strain: (low, high) ranges (K; signed strain) that frames must lie in, for fit and
            held-out frames alike (see :func:`select_frames`).
        per_species: fit λ_Z per element on forces (needs a model with per-atom energies).
        target: what a global λ is fitted on: ``forces`` (hot MD), ``energy`` (energy differences
            between frames of one composition: strain, surfaces, i.e. the curvature that elastic and
            phonon properties need) or ``forces+energy`` (see :mod:`softcalc.calibration.methods`).
        method: a registered method (:func:`softcalc.calibration.registry.method_names`): ``scale``
            (default; ``per-species`` when ``per_species``), ``per-species``, ``finetune`` (tune the
            weights; see :mod:`softcalc.calibration.finetuning`) or ``auto`` (the method with the lowest
            validation error).
        finetune: fine-tuning settings of ``finetune`` and ``auto`` (defaults when None).
        n_bootstrap: bootstrap replicas for the uncertainty of λ.
        regime: ``own-material`` or ``transfer`` (recorded in the correction).
    Returns:
        :class:`Calibration` with the correction (``recommended`` False when it does not help) and a
        :class:`~softcalc.calibration.report.CalibrationReport`: the fitted parameters (``scale``,
        ``scale_std``, ``scale_ci95``, ...), softening scale, force errors (eV/Å) and energy-difference
        errors (``errors["energy"]``, eV/atom) before/after (held-out when available),
        n_heldout_overlap (held-out frames dropped as calibration frames), reasons and a verdict.
    Raises:
        SettingsError: an unknown method or target, a target the method cannot fit, n_bootstrap < 1.
    """
    if n_bootstrap < 1:
        raise SettingsError(
            f"n_bootstrap = {n_bootstrap}: the uncertainty of λ needs at least one bootstrap replica. "
            "Fix: use the default 1000 (or any positive number)."
        )
    check_target(target)
    if per_species and method not in (None, "per-species"):
        raise SettingsError(
            f"per_species=True (--per-species) contradicts method {method!r}. Fix: give one of them."
        )
    spec = method_spec(method or ("per-species" if per_species else "scale"))
    chosen_method = spec.build(MethodOptions(target, finetune))
    calc = load_model(model, device=device, dtype=dtype) if isinstance(model, (str, Path)) else model
    spec.check(calc)
    order = order or spec.default_order
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
    if spec.kind != "chosen" and fitted.kind != spec.kind:
        raise SettingsError(
            f"method {spec.name!r} is registered as giving {spec.kind!r} corrections but fitted a "
            f"{fitted.kind!r} one. Fix: register it with kind={fitted.kind!r}."
        )
    sets, bare = (split.heldout, held_bare) if held_bare is not None else (split.fit, fit_bare)
    checked = CheckedFrames(calc, sets, bare, lambda f: _energy_errors(f, split, fit_energy, held_energy))
    errors = error_summary(checked.bare, fitted.apply(checked.sets, checked.bare), n_bootstrap, seed)
    errors["energy"] = _energy_errors(fitted, split, fit_energy, held_energy)
    properties = _property_changes(calc, fitted, split, fit_energy, held_energy)
    fit_metrics = fit_bare.metrics()
    verdict = judge(
        errors,
        heldout=held_bare is not None,
        supported=fitted.supported,
        fit_metrics=fit_metrics,
        estimates=fitted.estimates,
        overlap=split.overlap,
        target=target,
        many_parameters=fitted.many_parameters,
        properties=properties,
    )
    checks = fitted.checks(checked)
    own = fitted.reasons(checks)
    reasons = (*(r for r in own if r.blocking), *verdict.reasons, *(r for r in own if not r.blocking))
    verdict = replace(verdict, reasons=reasons)
    report = CalibrationReport(
        model=calc.info.name if isinstance(calc, ModelCalculator) else type(calc).__name__,
        method=spec.name,
        kind=fitted.kind,
        target=target,
        parameters=fitted.summary,
        softening_scale_fit=fit_metrics.softening_scale,
        scale_opt_fit=fit_metrics.scale_opt,
        correlation_fit=fit_metrics.correlation,
        n_frames=fit_metrics.n_frames,
        n_heldout=0 if held_bare is None else len(held_bare.model),
        n_heldout_overlap=split.overlap,
        errors_on=verdict.errors_on,
        errors=errors,
        recommended=verdict.recommended,
        reasons=verdict.as_dicts(),
        verdict=verdict.text,
        properties=properties,
        checks=checks,
    )
    settings = {
        "frames": frames,
        "groups": list(groups) if groups else None,
        "order": order,
        "temperature_K": list(temperature) if temperature else None,
        "strain": list(strain) if strain else None,
        "target": target,
        "method": spec.name,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }
    correction = _correction(calc, fitted, verdict, report, split, regime, settings, provenance or {})
    return Calibration(correction, report)


def _correction(
    calc: Calculator,
    fitted: Fit,
    verdict: Verdict,
    report: CalibrationReport,
    split: FrameSplit,
    regime: str,
    settings: dict[str, Any],
    extra: dict[str, Any],
) -> Correction:
    """The correction with its provenance: model fingerprint, data hashes, settings, version, time, extra."""
    return Correction(
        tuned=fitted.tuned_adapter,
        scale=fitted.scale,
        species_scales=fitted.species_scales,
        model=calc.info.fingerprint if isinstance(calc, ModelCalculator) else None,
        regime=regime,
        recommended=verdict.recommended,
        statistics=report.statistics(),
        provenance={
            "data": [{"source": d.source, "sha256": d.sha256, "material": d.material} for d in split.fit],
            "heldout": [{"source": d.source, "sha256": d.sha256} for d in split.heldout],
            **settings,
            "softcalc_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **extra,
        },
    )
