"""Calibration methods: what a correction is fitted to and how it changes the model's forces.

Every method takes the calibration frames and returns a :class:`Fit`: the correction's parameters,
their bootstrap uncertainty (each scale with its 95 % interval as an :class:`Estimate`, which the
verdict judges), whether the data support a correction at all, and a way to apply it to any frames
(so the same held-out check and verdict serve every method). Methods:

- :class:`GlobalScale` (``scale``): one λ minimising ||λ f_model − f_dft||² (λ* of the paper);
- :class:`PerSpeciesScales` (``per-species``): λ_Z minimising ||Σ_Z λ_Z F^Z − f_dft||², with
  F^Z = −∂(Σ_{i∈Z} e_i)/∂R; an exact linear least-squares problem (needs per-atom energies);
- :class:`EnergyScale` (``scale``, target ``energy``): one λ = Σ w ΔE_m·ΔE_dft / Σ w ΔE_m², with ΔE
  a frame's energy per atom minus the mean of the calibration frames of its composition and w its atom
  count (:mod:`softcalc.energies`): the differences the anchored correction scales, i.e. the curvature
  of the energy surface between the frames (strained cells, surfaces) rather than its slope (forces);
- :class:`JointScale` (``scale``, target ``forces+energy``): one λ minimising the sum of the two
  relative squared errors, each target weighted by its number of observations times the mean square
  of its DFT values, Σ_F (λf_m − f_d)² / (n_F ⟨f_d²⟩) + Σ_k N_k (λΔE_m − ΔE_d)² / (Σ_k N_k ⟨ΔE_d²⟩),
  so forces and energies count equally whatever their number and units.

Uncertainty comes from a Poisson bootstrap over frames and atoms (forces) and frames (energies).
Each method registers itself with :func:`softcalc.calibration.registry.register_method` at the end of
its module (``scale`` for every target, ``per-species`` here; ``finetune`` and ``auto`` in
:mod:`softcalc.calibration.finetuning`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from ase.calculators.calculator import Calculator

from softcalc.calibration.registry import TARGETS, MethodSpec, Requirement, register_method
from softcalc.data.dataset import ForceDataset
from softcalc.energies import EnergyComparison, EnergyDeviations, energy_deviations
from softcalc.errors import DataError, PerAtomEnergyNotSupportedError
from softcalc.evaluation import ForceComparison, merge_comparisons, species_force_components
from softcalc.model import ModelCalculator

if TYPE_CHECKING:
    from softcalc.calibration.report import CalibrationReport
    from softcalc.calibration.verdict import Reason

#: bootstrap replicas drawn per vectorised block (bounds memory)
BOOTSTRAP_BLOCK = 200


def bootstrap_weights(
    sample_of_atom: np.ndarray, n_samples: int, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """Poisson bootstrap weights (reps, n_atoms): frames resampled (when > 1), then atoms within them."""
    w = rng.poisson(1.0, size=(reps, sample_of_atom.size)).astype(float)
    if n_samples > 1:
        w *= rng.poisson(1.0, size=(reps, n_samples))[:, sample_of_atom]
    return w


def check_fitted(value: float, what: str, energies: bool = False) -> None:
    """A fitted scale must be positive and finite; otherwise the frames carry no usable signal.

    ``energies``: the fit used energy differences (the message then says so).
    """
    if np.isfinite(value) and value > 0:
        return
    if energies:
        raise DataError(
            f"the fitted {what} = {value:.4g} is not positive: the model's energy differences between the "
            "calibration frames anti-correlate with DFT's or vanish (e.g. strains too small for the "
            "model's resolution). Fix: calibrate on frames with larger energy differences (larger strains, "
            "surfaces, snapshots) or use --target forces."
        )
    raise DataError(
        f"the fitted {what} = {value:.4g} is not positive: the DFT forces of the calibration frames "
        "carry no usable signal (all zero, as in perfect or uniformly strained crystals) or "
        "anti-correlate with the model. Fix: calibrate on frames with non-zero forces (AIMD "
        "snapshots, rattled or displaced structures)."
    )


def _require_samples(samples: np.ndarray) -> np.ndarray:
    if not len(samples):
        raise DataError(
            "no bootstrap replica gave a defined scale (too few atoms with model forces). "
            "Fix: calibrate on more frames or raise n_bootstrap."
        )
    return samples


@dataclass(frozen=True)
class Estimate:
    """One fitted scale and its 95 % bootstrap interval, as the verdict judges it.

    Attributes:
        name: ``λ`` (global) or ``λ_Z`` (per element, e.g. ``λ_Si``).
        value: the fitted scale (dimensionless).
        ci95: (low, high) 2.5th and 97.5th percentiles of the bootstrap replicas.
    """

    name: str
    value: float
    ci95: tuple[float, float]


@dataclass
class Fit(ABC):
    """A fitted correction: parameters, uncertainty summary and whether the data support it.

    Attributes:
        summary: report entries of the parameters and their uncertainty.
        supported: False when "no correction" (every λ = 1) lies inside the 95 % bootstrap interval.
        estimates: every fitted scale with its 95 % interval (one for a global λ, one per λ_Z).
    """

    summary: dict[str, Any]
    supported: bool
    estimates: tuple[Estimate, ...]

    @property
    @abstractmethod
    def scale(self) -> float:
        """Global λ of the correction (1 when the correction is per species)."""

    @property
    @abstractmethod
    def species_scales(self) -> dict[str, float]:
        """λ_Z per element (empty for a global correction)."""

    @abstractmethod
    def apply(self, sets: Sequence[ForceDataset], bare: ForceComparison) -> ForceComparison:
        """Corrected model forces on ``sets``, whose bare comparison is ``bare``."""

    def apply_energies(self, sets: Sequence[ForceDataset], bare: EnergyComparison) -> EnergyComparison | None:
        """Corrected model energies on ``sets``, whose bare energies are ``bare`` (None: not available)."""
        return None

    @property
    @abstractmethod
    def kind(self) -> str:
        """The :class:`~softcalc.correction.Correction` kind this fit is (``none``: no correction)."""

    @property
    def tuned_adapter(self) -> Any:  # noqa: ANN401 - a TorchAdapter with tuned weights
        """The model adapter with tuned weights the correction carries (None: the base model's)."""
        return None

    @property
    def many_parameters(self) -> bool:
        """The fit has many parameters (tuned weights): the verdict then blocks it without held-out
        frames and for any structure group it makes worse (:func:`softcalc.calibration.verdict.judge`)."""
        return False

    def checks(self, checked: CheckedFrames) -> dict[str, Any]:
        """Report entries of the method's own checks on ``checked`` (e.g. the forgetting check)."""
        return {}

    def reasons(self, checks: dict[str, Any]) -> tuple[Reason, ...]:
        """Verdict reasons of the method's own checks (``checks`` from :meth:`checks`)."""
        return ()


@dataclass
class CheckedFrames:
    """What a fit's own checks are measured on: the frames the verdict judges.

    Attributes:
        calc: the bare model.
        sets: the held-out sets (the calibration sets when there are none).
        bare: the bare model's forces on ``sets``.
        energy_errors: energy-difference errors before/after of a fit on those frames (eV/atom).
    """

    calc: Calculator
    sets: Sequence[ForceDataset]
    bare: ForceComparison
    energy_errors: Callable[[Fit], dict[str, Any] | None]


@dataclass
class ScaleFit(Fit):
    """One global λ."""

    value: float = 1.0

    @property
    def kind(self) -> str:
        return "global"

    @property
    def scale(self) -> float:
        return self.value

    @property
    def species_scales(self) -> dict[str, float]:
        return {}

    def apply(self, sets: Sequence[ForceDataset], bare: ForceComparison) -> ForceComparison:
        return bare.scaled(self.value)

    def apply_energies(self, sets: Sequence[ForceDataset], bare: EnergyComparison) -> EnergyComparison:
        return bare.scaled(self.value)


@dataclass
class SpeciesFit(Fit):
    """λ_Z per element; applying it needs the per-species force components of the frames."""

    scales: dict[str, float] = field(default_factory=dict)
    #: per-species force components F^Z of datasets (one model differentiation per element and frame)
    components: Callable[[Sequence[ForceDataset]], dict[str, ForceComparison]] | None = None
    #: the calibration sets and their components, computed once during the fit
    fit_sets: Sequence[ForceDataset] = ()
    fit_parts: dict[str, ForceComparison] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "per-species"

    @property
    def scale(self) -> float:
        return 1.0

    @property
    def species_scales(self) -> dict[str, float]:
        return self.scales

    def apply(self, sets: Sequence[ForceDataset], bare: ForceComparison) -> ForceComparison:
        if sets is self.fit_sets:
            return combine_species(self.fit_parts, self.scales)
        if self.components is None:
            raise ValueError("this per-species fit carries no way to evaluate force components")
        return combine_species(self.components(sets), self.scales)


def combine_species(parts: dict[str, ForceComparison], scales: dict[str, float]) -> ForceComparison:
    """F' = Σ_Z λ_Z F^Z from the per-species components, paired with the same DFT forces."""
    first = next(iter(parts.values()))
    model = [sum(scales[z] * c.model[k] for z, c in parts.items()) for k in range(len(first.model))]
    return ForceComparison(model, first.dft, first.symbols, first.groups, first.frame_index, first.material)


@dataclass
class CalibrationData:
    """What a method fits on: the model, the calibration sets and the bare model's forces on them."""

    calc: Calculator
    sets: Sequence[ForceDataset]
    bare: ForceComparison
    progress: bool = False
    #: the bare model's energies on the calibration frames (None when not evaluated)
    bare_energies: EnergyComparison | None = None
    #: frames set aside for validation (early stopping) by the caller, e.g. ``auto``; None: a method
    #: that needs some takes them from ``sets`` itself
    validation: Sequence[ForceDataset] | None = None


class CalibrationMethod(ABC):
    """One way of fitting a correction on calibration frames (see the module docstring); registered
    with a :class:`~softcalc.calibration.registry.MethodSpec` that names it."""

    @abstractmethod
    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> Fit:
        """Fit on the calibration ``data`` with ``n_bootstrap`` bootstrap replicas drawn from ``rng``."""


def _check_per_atom_energies(calc: Calculator, method: str) -> None:
    if not (isinstance(calc, ModelCalculator) and calc.model.supports_per_atom_energies):
        raise PerAtomEnergyNotSupportedError(
            f"{method} calibration needs a model with differentiable per-atom energies. "
            "Fix: calibrate a global scale (--method scale; calibrate(method='scale'))."
        )


#: a method differentiates per-atom energies (plugins that expose them)
PER_ATOM_ENERGIES = Requirement("differentiable per-atom energies", _check_per_atom_energies)


@dataclass(frozen=True)
class _NormalTerm:
    """One target's share of the normal equation of a global λ: λ = Σ c Σ a / Σ c Σ b.

    Attributes:
        a, b: per-observation m·d and m·m (an atom's force components, or a frame's ΔE).
        owner: the bootstrap unit (sample) of each observation; n_units: their number.
        weight: c, the target's weight in a joint fit.
    """

    a: np.ndarray
    b: np.ndarray
    owner: np.ndarray
    n_units: int
    weight: float = 1.0


def _force_term(bare: ForceComparison) -> _NormalTerm:
    a = np.concatenate([np.einsum("ij,ij->i", m, d) for m, d in zip(bare.model, bare.dft)])
    b = np.concatenate([np.einsum("ij,ij->i", m, m) for m in bare.model])
    owner = np.concatenate([np.full(len(m), k) for k, m in enumerate(bare.model)])
    return _NormalTerm(a, b, owner, len(bare.model))


def calibration_deviations(energies: EnergyComparison | None) -> EnergyDeviations:
    """Energy deviations of the calibration frames, or a :class:`DataError` saying why there are none."""
    if energies is None or not energies.paired.any():
        n = 0 if energies is None else len(energies)
        raise DataError(
            f"the energy target needs DFT energies and model energies, and none of the {n} calibration "
            "frame(s) has both. Fix: calibrate on data with energies (mlearn outputs.energy, extxyz "
            "energy=...; phonopy force sets have none) with a model that gives energies, or use --target "
            "forces."
        )
    dev = energy_deviations(energies)
    if not len(dev.model):
        comps = ", ".join(dict.fromkeys(energies.composition))
        raise DataError(
            "the energy target compares energy differences between frames of one composition, but no "
            f"composition ({comps}) has two calibration frames with energies. Fix: add frames of the "
            "same composition (strained cells, snapshots) or use --target forces."
        )
    return dev


def _energy_term(dev: EnergyDeviations) -> _NormalTerm:
    n = len(dev.model)
    return _NormalTerm(dev.weights * dev.model * dev.dft, dev.weights * dev.model**2, np.arange(n), 1)


def _fit_global(
    terms: Sequence[_NormalTerm], n_bootstrap: int, rng: np.random.Generator, energies: bool = False
) -> ScaleFit:
    """λ = Σ_t c_t Σ a_t / Σ_t c_t Σ b_t with its Poisson-bootstrap interval (``energies``: a term is one)."""
    den_total = sum(t.weight * t.b.sum() for t in terms)
    if den_total <= 0:
        raise DataError(
            "the model predicts no forces and no energy differences on the calibration frames; "
            "no scale can be fitted"
        )
    scale = float(sum(t.weight * t.a.sum() for t in terms) / den_total)
    check_fitted(scale, "λ", energies)
    boots = []
    for start in range(0, n_bootstrap, BOOTSTRAP_BLOCK):
        reps = min(BOOTSTRAP_BLOCK, n_bootstrap - start)
        num, den = np.zeros(reps), np.zeros(reps)
        for t in terms:
            w = bootstrap_weights(t.owner, t.n_units, reps, rng)
            num += t.weight * (w @ t.a)
            den += t.weight * (w @ t.b)
        ok = den > 0
        boots.append(num[ok] / den[ok])
    samples = _require_samples(np.concatenate(boots))
    ci = [float(x) for x in np.percentile(samples, [2.5, 97.5])]
    summary = {"scale": scale, "scale_std": float(samples.std()), "scale_ci95": ci}
    estimate = Estimate("λ", scale, (ci[0], ci[1]))
    return ScaleFit(summary, supported=not (ci[0] <= 1.0 <= ci[1]), estimates=(estimate,), value=scale)


class GlobalScale(CalibrationMethod):
    """One λ for every atom: F' = λF, fitted on forces (see the module docstring)."""

    #: what the method fits: ``forces``, ``energy`` or ``forces+energy``
    target: ClassVar[str] = "forces"

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> ScaleFit:
        return _fit_global([_force_term(data.bare)], n_bootstrap, rng)


class EnergyScale(GlobalScale):
    """One λ fitted on energy differences within a composition (see the module docstring)."""

    target = "energy"

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> ScaleFit:
        term = _energy_term(calibration_deviations(data.bare_energies))
        return _fit_global([term], n_bootstrap, rng, energies=True)


class JointScale(GlobalScale):
    """One λ fitted on forces and energy differences, each target weighted equally (module docstring)."""

    target = "forces+energy"

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> ScaleFit:
        dev = calibration_deviations(data.bare_energies)
        forces, energy = _force_term(data.bare), _energy_term(dev)
        f_dft = np.concatenate([d.ravel() for d in data.bare.dft])
        f_norm = len(f_dft) * float(np.mean(f_dft**2))
        e_norm = float(np.sum(dev.weights * dev.dft**2))
        if f_norm <= 0 or e_norm <= 0:
            raise DataError(
                "the joint forces+energy fit needs non-zero DFT forces and energy differences on the "
                "calibration frames. Fix: use --target energy or --target forces for these data."
            )
        # a term's a and b are summed per atom (forces: 3 components each) or per frame; the weights
        # make each target's share its squared error relative to its own DFT signal
        terms = [
            _NormalTerm(forces.a, forces.b, forces.owner, forces.n_units, 1.0 / f_norm),
            _NormalTerm(energy.a, energy.b, energy.owner, energy.n_units, 1.0 / e_norm),
        ]
        return _fit_global(terms, n_bootstrap, rng, energies=True)


class PerSpeciesScales(CalibrationMethod):
    """λ_Z per element on per-atom energies (see the module docstring)."""

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> SpeciesFit:
        species = sorted({s for syms in data.bare.symbols for s in syms})

        def components(datasets: Sequence[ForceDataset]) -> dict[str, ForceComparison]:
            parts = [species_force_components(data.calc, d, species, data.progress) for d in datasets]
            return {z: merge_comparisons([p[z] for p in parts]) for z in species}

        parts = components(data.sets)
        first = parts[species[0]]
        # per-atom contributions to the normal equations M λ = v
        f = [np.stack([parts[z].model[k] for z in species]) for k in range(len(first.model))]  # (Z, n, 3)
        m_atoms = np.concatenate([np.einsum("zic,yic->izy", fk, fk) for fk in f])  # (atoms, Z, Z)
        v_atoms = np.concatenate([np.einsum("zic,ic->iz", fk, d) for fk, d in zip(f, first.dft)])  # (atoms,Z)
        owner = np.concatenate([np.full(fk.shape[1], k) for k, fk in enumerate(f)])

        def solve(mat: np.ndarray, vec: np.ndarray) -> np.ndarray:
            return np.linalg.lstsq(mat, vec, rcond=None)[0]

        lam = solve(m_atoms.sum(0), v_atoms.sum(0))
        for z, value in zip(species, lam):
            check_fitted(float(value), f"λ_{z}")
        boots = []
        for start in range(0, n_bootstrap, BOOTSTRAP_BLOCK):
            w = bootstrap_weights(owner, len(f), min(BOOTSTRAP_BLOCK, n_bootstrap - start), rng)
            mats = np.einsum("ba,azy->bzy", w, m_atoms)
            vecs = w @ v_atoms
            # a replica that drew no atom of some element (e.g. every frame weighted 0) leaves its λ_Z
            # undefined; lstsq would return 0 for it and drag the interval down to 0, so it is skipped
            ok = np.linalg.matrix_rank(mats) == len(species)
            boots.extend(solve(mm, vv) for mm, vv in zip(mats[ok], vecs[ok]))
        samples = _require_samples(np.array(boots))
        lo, hi = np.percentile(samples, [2.5, 97.5], axis=0)
        std = samples.std(axis=0)
        scales = dict(zip(species, map(float, lam)))
        summary = {
            "species_scales": scales,
            "species_uncertainty": {
                z: {"std": float(s), "ci95": [float(a), float(b)]} for z, s, a, b in zip(species, std, lo, hi)
            },
        }
        supported = any(not (a <= 1.0 <= b) for a, b in zip(lo, hi))
        estimates = tuple(
            Estimate(f"λ_{z}", scales[z], (float(a), float(b))) for z, a, b in zip(species, lo, hi)
        )
        return SpeciesFit(
            summary, supported, estimates, scales, components, fit_sets=data.sets, fit_parts=parts
        )


#: global-scale methods by what they fit (``calibrate(target=...)``)
SCALE_BY_TARGET: dict[str, type[GlobalScale]] = {m.target: m for m in (GlobalScale, EnergyScale, JointScale)}


def describe_scale(report: CalibrationReport) -> list[str]:
    """λ with its bootstrap uncertainty, one line."""
    lo, hi = report.scale_ci95
    return [
        f"λ = {report.scale:.4f} ± {report.scale_std:.4f} (95% CI {lo:.4f}-{hi:.4f}), "
        f"fitted on {report.n_frames} frame(s)"
    ]


def describe_species(report: CalibrationReport) -> list[str]:
    """λ_Z with their bootstrap uncertainty, one line per element."""
    lines = []
    for z, lam in report.species_scales.items():
        u = report.parameters["species_uncertainty"][z]
        lines.append(f"λ_{z} = {lam:.4f} ± {u['std']:.4f} (95% CI {u['ci95'][0]:.4f}-{u['ci95'][1]:.4f})")
    return lines


register_method(
    MethodSpec(
        "scale",
        lambda options: SCALE_BY_TARGET[options.target](),
        kind="global",
        help="one λ (default)",
        targets=TARGETS,
        refit_after_auto=True,
        describe=describe_scale,
    )
)
register_method(
    MethodSpec(
        "per-species",
        lambda options: PerSpeciesScales(),
        kind="per-species",
        help="λ per element (needs per-atom energies)",
        needs=(PER_ATOM_ENERGIES,),
        refit_after_auto=True,
        describe=describe_species,
    )
)
