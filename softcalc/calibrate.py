"""Calibrating a softening correction on DFT forces, with uncertainty and a held-out check.

The fit minimises ||λ f_model − f_dft||² over the calibration frames (λ* of the paper; with
per-species scales, ||Σ_Z λ_Z F^Z − f_dft||², an exact linear least-squares problem). Uncertainty comes
from a Poisson bootstrap over frames and atoms. Whenever frames are held out (``frames=K`` leaves the
rest of the data, ``test=`` adds another set), the correction is checked on them and marked not
recommended when it makes held-out forces worse or the data do not support it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator

from softcalc.correction import Correction
from softcalc.data.dataset import ForceDataset
from softcalc.data.readers import read_dataset
from softcalc.errors import DataError, PerAtomEnergyNotSupportedError
from softcalc.evaluation import ForceComparison, compare_forces, merge_comparisons, species_force_components
from softcalc.metrics import force_metrics
from softcalc.model import ModelCalculator
from softcalc.registry import load_model
from softcalc.version import __version__

#: a correlation below this means model and DFT forces agree too poorly for one scalar to mean much
WEAK_CORRELATION = 0.85
ORDERS = ("file", "largest-force")


@dataclass
class Calibration:
    """A fitted correction and the report that justifies (or rejects) it."""

    correction: Correction
    report: dict[str, Any]


def _as_datasets(data: ForceDataset | str | Path | Sequence[ForceDataset | str | Path]) -> list[ForceDataset]:
    items = [data] if isinstance(data, (ForceDataset, str, Path)) else list(data)
    out = [d if isinstance(d, ForceDataset) else read_dataset(d) for d in items]
    if not out or not any(len(d) for d in out):
        raise DataError("the calibration data set is empty. Fix: give at least one DFT frame with forces.")
    return out


def select_frames(
    dataset: ForceDataset,
    groups: Sequence[str] | None = None,
    order: str = "file",
    temperature: tuple[float, float] | None = None,
    strain: tuple[float, float] | None = None,
) -> ForceDataset:
    """Keep the frames that resemble the intended simulation, then order them.

    Args:
        groups: structure groups to keep (case-insensitive).
        temperature: (low, high) in K, inclusive; frames whose data do not state a temperature drop out.
        strain: (low, high) applied strain, signed and inclusive; frames without a stated strain drop out.
        order: ``file`` (file order) or ``largest-force`` (largest RMS DFT force first).
    """
    if groups:
        wanted = {g.lower() for g in groups}
        present = dataset.groups
        dataset = dataset.select(lambda f: f.group.lower() in wanted)
        if not len(dataset):
            raise DataError(
                f"no frame of {dataset.source} belongs to group(s) {', '.join(groups)}. "
                f"Fix: choose among the groups present in the data: {', '.join(present) or 'none'}."
            )
    for name, bounds, unit in (("temperature", temperature, " K"), ("strain", strain, "")):
        if bounds is None:
            continue
        low, high = bounds
        stated = [v for f in dataset.frames if (v := getattr(f, name)) is not None]
        dataset = dataset.select(
            lambda f, n=name, lo=low, hi=high: (v := getattr(f, n)) is not None and lo <= v <= hi
        )
        if not len(dataset):
            span = f"from {min(stated):g} to {max(stated):g}{unit}" if stated else "none states one"
            raise DataError(
                f"no frame of {dataset.source} has a {name} in [{low:g}, {high:g}]{unit} "
                f"({len(stated)} frame(s) state a {name}: {span}). Fix: widen the range or drop the filter."
            )
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if order == "largest-force":
        rms = [float(np.sqrt(np.mean(f.forces**2))) for f in dataset.frames]
        dataset = dataset.subset(list(np.argsort(rms)[::-1]))
    return dataset


def _bootstrap_weights(
    sample_of_atom: np.ndarray, n_samples: int, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """Poisson bootstrap weights (reps, n_atoms): frames resampled (when > 1), then atoms within them."""
    w = rng.poisson(1.0, size=(reps, sample_of_atom.size)).astype(float)
    if n_samples > 1:
        w *= rng.poisson(1.0, size=(reps, n_samples))[:, sample_of_atom]
    return w


def _fit_global(comp: ForceComparison, n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    a = np.concatenate([np.einsum("ij,ij->i", m, d) for m, d in zip(comp.model, comp.dft)])
    b = np.concatenate([np.einsum("ij,ij->i", m, m) for m in comp.model])
    if b.sum() <= 0:
        raise DataError("the model predicts zero forces on every calibration frame; no scale can be fitted")
    owner = np.concatenate([np.full(len(m), k) for k, m in enumerate(comp.model)])
    boots = []
    for start in range(0, n_boot, 200):
        w = _bootstrap_weights(owner, len(comp.model), min(200, n_boot - start), rng)
        den = w @ b
        ok = den > 0
        boots.append((w @ a)[ok] / den[ok])
    samples = np.concatenate(boots) if boots else np.array([])
    scale = float(a.sum() / b.sum())
    _check_fitted(scale, "λ")
    return {"scale": scale, "samples": samples}


def _check_fitted(value: float, what: str) -> None:
    if not np.isfinite(value) or value <= 0:
        raise DataError(
            f"the fitted {what} = {value:.4g} is not positive: the DFT forces of the calibration frames "
            "carry no usable signal (all zero, as in perfect or uniformly strained crystals) or "
            "anti-correlate with the model. Fix: calibrate on frames with non-zero forces (AIMD "
            "snapshots, rattled or displaced structures)."
        )


def _fit_species(
    species_comp: dict[str, ForceComparison], n_boot: int, rng: np.random.Generator
) -> dict[str, Any]:
    species = list(species_comp)
    first = species_comp[species[0]]
    # per-atom contributions to the normal equations M λ = v
    f = [np.stack([species_comp[z].model[k] for z in species]) for k in range(len(first.model))]  # (Z, n, 3)
    m_atoms = np.concatenate([np.einsum("zic,yic->izy", fk, fk) for fk in f])  # (atoms, Z, Z)
    v_atoms = np.concatenate([np.einsum("zic,ic->iz", fk, d) for fk, d in zip(f, first.dft)])  # (atoms, Z)
    owner = np.concatenate([np.full(fk.shape[1], k) for k, fk in enumerate(f)])

    def solve(mat: np.ndarray, vec: np.ndarray) -> np.ndarray:
        return np.linalg.lstsq(mat, vec, rcond=None)[0]

    lam = solve(m_atoms.sum(0), v_atoms.sum(0))
    for z, value in zip(species, lam):
        _check_fitted(float(value), f"λ_{z}")
    boots = []
    for start in range(0, n_boot, 200):
        w = _bootstrap_weights(owner, len(f), min(200, n_boot - start), rng)
        mats = np.einsum("ba,azy->bzy", w, m_atoms)
        vecs = w @ v_atoms
        boots.extend(solve(mm, vv) for mm, vv in zip(mats, vecs))
    return {"species_scales": dict(zip(species, map(float, lam))), "samples": np.array(boots)}


def _apply_species(species_comp: dict[str, ForceComparison], scales: dict[str, float]) -> ForceComparison:
    first = next(iter(species_comp.values()))
    model = [sum(scales[z] * c.model[k] for z, c in species_comp.items()) for k in range(len(first.model))]
    return ForceComparison(model, first.dft, first.symbols, first.groups, first.frame_index, first.material)


def _errors(before: ForceComparison, after: ForceComparison) -> dict[str, Any]:
    mb, ma = before.metrics(), after.metrics()
    groups_b, groups_a = before.by_group(), after.by_group()
    return {
        "n_frames": mb.n_frames,
        "n_components": mb.n_components,
        "softening_scale": mb.softening_scale,
        "softening_scale_after": ma.softening_scale,
        "correlation": mb.correlation,
        "mae_before": mb.mae,
        "mae_after": ma.mae,
        "rmse_before": mb.rmse,
        "rmse_after": ma.rmse,
        "cmae": mb.cmae,
        "by_group": {
            g: {"n_frames": groups_b[g].n_frames, "mae_before": groups_b[g].mae, "mae_after": groups_a[g].mae}
            for g in groups_b
        },
    }


def calibrate(
    model: str | Path | Calculator,
    data: ForceDataset | str | Path | Sequence[ForceDataset | str | Path],
    frames: int | None = None,
    test: ForceDataset | str | Path | Sequence[ForceDataset | str | Path] | None = None,
    groups: Sequence[str] | None = None,
    order: str = "file",
    temperature: tuple[float, float] | None = None,
    strain: tuple[float, float] | None = None,
    per_species: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    regime: str = "own-material",
    progress: bool = False,
    device: str = "cpu",
    dtype: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> Calibration:
    """Fit a softening correction for ``model`` on DFT forces.

    Args:
        model: model name/path or a base calculator from :func:`softcalc.load_model`.
        data: calibration data (paths or datasets). With ``frames=K`` the first K frames of each data
            set (after ``groups`` and ``order``) are fitted and, without ``test``, the rest held out.
        test: held-out data (e.g. mlearn ``test.json``), filtered by ``groups`` too; when given, the
            errors are reported on it alone.
        groups: keep only frames of these structure groups (choose frames resembling your simulation).
        order: ``file`` (file order) or ``largest-force`` (largest RMS DFT force first, the paper's pick).
        temperature, strain: (low, high) ranges (K; signed strain) that frames must lie in, for fit and
            held-out frames alike (see :func:`select_frames`).
        per_species: fit λ_Z per element (needs a model with per-atom energies).
        n_bootstrap: bootstrap replicas for the uncertainty of λ.
        regime: ``own-material`` or ``transfer`` (recorded in the correction).
    Returns:
        :class:`Calibration` with the correction (``recommended`` False when it does not help) and a
        report: scale, scale_std, scale_ci95, softening scale, errors before/after (held-out when
        available), warnings and a verdict.
    """
    calc = load_model(model, device=device, dtype=dtype) if isinstance(model, (str, Path)) else model
    if frames is not None and frames < 1:
        raise DataError("frames must be at least 1")
    fit_sets, held_sets = [], []
    for d in _as_datasets(data):
        d = select_frames(d, groups, order, temperature, strain)
        if frames is None or len(d) <= frames:
            fit_sets.append(d)
        else:
            fit_sets.append(d.subset(range(frames)))
            if test is None:
                held_sets.append(d.subset(range(frames, len(d))))
    if test is not None:
        held_sets += [select_frames(d, groups, "file", temperature, strain) for d in _as_datasets(test)]
    rng = np.random.default_rng(seed)
    fit = merge_comparisons([compare_forces(calc, d, progress=progress) for d in fit_sets])
    held = (
        merge_comparisons([compare_forces(calc, d, progress=progress) for d in held_sets])
        if held_sets
        else None
    )
    fit_metrics = force_metrics(*fit.pooled(), n_frames=len(fit.model))
    warnings: list[str] = []

    if per_species:
        if not isinstance(calc, ModelCalculator) or not calc.model.supports_per_atom_energies:
            raise PerAtomEnergyNotSupportedError(
                "per-species calibration needs a model with differentiable per-atom energies. "
                "Fix: calibrate a global scale (omit per_species)."
            )
        species = sorted({s for syms in fit.symbols for s in syms})

        def components(sets: list[ForceDataset]) -> dict[str, ForceComparison]:
            parts = [species_force_components(calc, d, species, progress) for d in sets]
            return {z: merge_comparisons([p[z] for p in parts]) for z in species}

        fit_sp = components(fit_sets)
        res = _fit_species(fit_sp, n_bootstrap, rng)
        species_scales = res["species_scales"]
        correction_scale = 1.0
        boot = res["samples"]
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
        std = boot.std(axis=0)
        scale_summary: dict[str, Any] = {
            "species_scales": species_scales,
            "species_uncertainty": {
                z: {"std": float(s), "ci95": [float(a), float(b)]} for z, s, a, b in zip(species, std, lo, hi)
            },
        }
        supported = any(not (a <= 1.0 <= b) for a, b in zip(lo, hi))
        fit_after = _apply_species(fit_sp, species_scales)
        held_after = _apply_species(components(held_sets), species_scales) if held is not None else None
    else:
        res = _fit_global(fit, n_bootstrap, rng)
        correction_scale, species_scales = res["scale"], {}
        boot = res["samples"]
        ci = [float(x) for x in np.percentile(boot, [2.5, 97.5])]
        scale_summary = {"scale": correction_scale, "scale_std": float(boot.std()), "scale_ci95": ci}
        supported = not (ci[0] <= 1.0 <= ci[1])
        fit_after = fit.scaled(correction_scale)
        held_after = held.scaled(correction_scale) if held is not None else None

    if held is not None and held_after is not None:
        errors = _errors(held, held_after)
        errors_on = "held-out"
    else:
        errors = _errors(fit, fit_after)
        errors_on = "calibration"
        warnings.append(
            "no held-out frames: the errors below are on the calibration frames themselves and cannot "
            "show whether the correction transfers. Fix: pass more frames than --frames, or --test data."
        )
    recommended = True
    if not supported:
        recommended = False
        warnings.append(
            "the data do not support a correction: λ = 1 lies inside the 95% bootstrap interval. "
            "The bare model is as good as the corrected one within the uncertainty."
        )
    if errors["mae_after"] > errors["mae_before"]:
        recommended = False
        warnings.append(
            f"the correction makes {errors_on} forces WORSE: MAE {errors['mae_before']:.4f} -> "
            f"{errors['mae_after']:.4f} eV/Å. Do not apply it; calibrate on frames that resemble the "
            "intended simulation (--groups, --temperature, --strain, --order) or keep the bare model."
        )
    if fit_metrics.correlation < WEAK_CORRELATION:
        warnings.append(
            "model and DFT forces correlate weakly on the calibration frames "
            f"(r = {fit_metrics.correlation:.3f}; "
            f"s = {fit_metrics.softening_scale:.3f} but 1/λ* = {1 / fit_metrics.scale_opt:.3f}): much of the "
            "error is not a systematic scale, so one scalar removes little of it."
        )
    verdict = (
        f"recommended: {errors_on} MAE {errors['mae_before']:.4f} -> {errors['mae_after']:.4f} eV/Å"
        if recommended
        else "not recommended: " + warnings[-1].split(":")[0]
    )
    report: dict[str, Any] = {
        "model": calc.info.name if isinstance(calc, ModelCalculator) else type(calc).__name__,
        "kind": "per-species" if per_species else "global",
        **scale_summary,
        "softening_scale_fit": fit_metrics.softening_scale,
        "scale_opt_fit": fit_metrics.scale_opt,
        "correlation_fit": fit_metrics.correlation,
        "n_frames": fit_metrics.n_frames,
        "n_heldout": 0 if held is None else len(held.model),
        "errors_on": errors_on,
        "softening_scale": errors["softening_scale"],
        "mae_before": errors["mae_before"],
        "mae_after": errors["mae_after"],
        "errors": errors,
        "recommended": recommended,
        "warnings": warnings,
        "verdict": verdict,
    }
    correction = Correction(
        scale=correction_scale,
        species_scales=species_scales,
        model=calc.info.fingerprint if isinstance(calc, ModelCalculator) else None,
        regime=regime,
        recommended=recommended,
        statistics={k: v for k, v in report.items() if k not in {"errors", "warnings"}},
        provenance={
            "data": [{"source": d.source, "sha256": d.sha256, "material": d.material} for d in fit_sets],
            "heldout": [{"source": d.source, "sha256": d.sha256} for d in held_sets],
            "frames": frames,
            "groups": list(groups) if groups else None,
            "order": order,
            "temperature_K": list(temperature) if temperature else None,
            "strain": list(strain) if strain else None,
            "n_bootstrap": n_bootstrap,
            "seed": seed,
            "softcalc_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **(provenance or {}),
        },
    )
    return Calibration(correction, report)
