"""SoftCorrectedCalc: an ASE calculator applying a softening correction to any uMLIP on every call."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from softcalc.correction import Correction
from softcalc.errors import (
    CalculationSetupError,
    PerAtomEnergyNotSupportedError,
    SoftcalcError,
)
from softcalc.model import CheckedCalculator, ModelCalculator, require_fine_tuning
from softcalc.registry import load_model
from softcalc.structure import check_structure


def _tuned(base: Calculator, correction: Correction) -> ModelCalculator:
    """A copy of the base model with the tuned weights of ``correction``; ``base`` keeps its own weights."""
    model = require_fine_tuning(
        base,
        f"{correction.source or 'the correction'} (fine-tuned weights)",
        "pass the base model's name (the 'model' block of the correction file)",
    )
    if correction.tuned is not None:
        return ModelCalculator(correction.tuned)
    from softcalc.tuned_weights import load_tuned_weights  # imports torch: only when tuned weights are used

    adapter = copy.deepcopy(model)
    load_tuned_weights(
        adapter,
        correction.weights_file(),
        correction.weights["sha256"],  # type: ignore[index]
        correction.source or "the correction",
    )
    return ModelCalculator(adapter)


class SoftCorrectedCalc(CheckedCalculator):
    """Wrap a uMLIP and apply a calibrated, conservative softening correction.

    E' = Σ_i [μ_Zi + λ_Zi (e_i - μ_Zi)], F' = -∂E'/∂R, σ' = (1/V) ∂E'/∂ε. With a global scale this
    is E' = E_ref + λ (E - E_ref), F' = λF, σ' = λσ; λ = 1 returns the base results unchanged. A
    fine-tuned correction runs a copy of the base model with its tuned weights (:attr:`tuned`, loaded
    from the file the correction names, checked by sha256) and warns once for each structure with
    elements the weights were not tuned on.

    :attr:`base` is always the bare base model, with its own weights, also when the correction carries
    tuned weights: whatever asks a corrected calculator for its bare model (``softcalc phonons``'s
    "bare" block, the MD fingerprint) gets the model the correction was fitted for, never the tuned copy.

    Args:
        base: a model name or weights path (loaded with :func:`softcalc.load_model`), a calculator
            from :func:`softcalc.load_model`, or any ASE calculator (global scales only; anchors μ_Z
            then come from ``reference_energies`` or the correction, else zero, i.e. E' = λE).
        correction: a :class:`Correction` or the path of a correction JSON file.
        scale: a global λ set by hand, instead of ``correction``; finite and in [0.1, 10]
            (:data:`softcalc.correction.MANUAL_SCALE_RANGE`).
        device, dtype: passed to :func:`softcalc.load_model` when ``base`` is a name or path.
        reference_energies: μ_Z in eV/atom, overriding the model's own.
        check_model: refuse a correction fitted for another model, or fitted without naming its
            model (see :mod:`softcalc.correction`); False is the explicit override (default True).
            Only softcalc models are checked: a foreign ASE calculator has no fingerprint.

    Raises:
        CorrectionMismatchError: at construction, a correction that does not belong to the model; at
            evaluation, a per-species correction without a λ for an element of the structure.
        CalculationSetupError: tuned weights for a model that cannot be fine-tuned
            (:func:`softcalc.model.require_fine_tuning`).
        CorrectionFileError: a fine-tuned correction whose weights file is missing or altered; a
            ``scale`` (or manual correction) outside [0.1, 10], not finite or not positive.

    Per-atom stresses (``atoms.get_stresses()``, 3D-periodic cells, models with per-atom energies) are
    the centroid virials of :mod:`softcalc.virial`, computed on request only: they cost one evaluation
    of the cell unfolded to one exchange cutoff (one receptive field for models without per-layer
    exchange) and three more backward passes. They sum to the stress.

    Units: energy eV, forces eV/Å, stress and per-atom stresses eV/Å³, per-atom energies eV.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies", "stresses"]

    def __init__(
        self,
        base: str | Path | Calculator,
        correction: Correction | str | Path | None = None,
        scale: float | None = None,
        *,
        device: str = "cpu",
        dtype: str | None = None,
        reference_energies: Mapping[str, float] | None = None,
        check_model: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if correction is not None and scale is not None:
            raise ValueError("give either correction or scale, not both")
        if isinstance(correction, (str, Path)):
            correction = Correction.load(correction)
        # validated (softcalc.correction: a manual λ in [0.1, 10]) before any model is loaded
        self.correction = (
            correction if correction is not None else Correction(scale=1.0 if scale is None else scale)
        )
        if isinstance(base, (str, Path)):
            base = load_model(base, device=device, dtype=dtype)
        if not isinstance(base, Calculator):
            raise TypeError(
                f"base must be a model name, a path or an ASE calculator, not {type(base).__name__}"
            )
        #: the bare base model (never the tuned weights: see the class docstring)
        self.base = base
        #: the copy of ``base`` with the tuned weights of a fine-tuned correction, else None
        self.tuned: ModelCalculator | None = None
        info = base.info if isinstance(base, ModelCalculator) else None
        if info is not None and check_model:
            self.correction.check_model(info)
        if self.correction.kind == "finetune":
            self.tuned = base = _tuned(base, self.correction)
            info = base.info
        #: the calculator the correction acts on: ``tuned``, else ``base``
        self.active = base
        #: elements a fine-tuned correction was not tuned on, already warned about
        self._warned: set[str] = set()
        refs: dict[str, float] = dict(info.reference_energies) if info is not None else {}
        refs.update(self.correction.reference_energies)
        refs.update(reference_energies or {})
        self.reference_energies = refs
        if self.correction.kind == "per-species":
            if info is None or not base.model.supports_per_atom_energies:
                name = info.name if info is not None else type(base).__name__
                raise PerAtomEnergyNotSupportedError(
                    f"the per-species correction needs differentiable per-atom energies, which {name} "
                    "does not expose. Fix: use a global scale correction for this model."
                )
        if not self.correction.recommended:
            warnings.warn(
                "this correction was marked not recommended at calibration "
                f"({self.correction.statistics.get('verdict', 'it did not improve held-out forces')}); "
                "results may be worse than the bare model.",
                UserWarning,
                stacklevel=2,
            )

    @property
    def info(self):  # noqa: ANN201 - ModelInfo or None
        """The :class:`~softcalc.model.ModelInfo` of the model that runs (None for foreign calculators):
        the base model's, or the tuned copy's (``<base>+tuned``, its weights file and hash)."""
        return self.active.info if isinstance(self.active, ModelCalculator) else None

    @property
    def checks_here(self) -> bool:
        """Only around a foreign ASE calculator: softcalc's model calculator (global path) and
        :meth:`local_energy` (per-species path) check the structure themselves."""
        return not isinstance(self.active, CheckedCalculator)

    def _anchors(self, symbols: Sequence[str]) -> np.ndarray:
        missing = sorted(set(symbols) - set(self.reference_energies))
        if missing and self.reference_energies:
            raise CalculationSetupError(
                f"no reference energy μ_Z for {', '.join(missing)}. "
                "Fix: pass reference_energies={...} covering every element."
            )
        return np.array([self.reference_energies.get(s, 0.0) for s in symbols])

    @property
    def receptive_field(self) -> float:
        """Å: how far an atom's energy reaches (message-passing steps × cutoff) in the running model.

        Raises:
            PerAtomEnergyNotSupportedError: a foreign ASE calculator, whose reach is unknown.
        """
        if self.info is None:
            raise PerAtomEnergyNotSupportedError(
                f"{type(self.active).__name__} is not a softcalc model: its receptive field and per-atom "
                "energies are unknown, so per-atom stresses cannot be computed."
            )
        return float(self.info.receptive_field)

    def evaluate(self, atoms: Atoms, properties: Sequence[str], changes: Sequence[str]) -> dict[str, Any]:
        if "stress" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a 3D periodic cell")
        if "stresses" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                "per-atom stresses need a 3D periodic cell; for a cluster or slab use "
                "softcalc.virial.per_atom_virials (per-atom virials in eV)"
            )
        if "stresses" in properties:
            from softcalc.virial import per_atom_virials  # the image cluster: only when asked for

            if self.correction.kind == "finetune":
                self._warn_untuned(atoms.get_chemical_symbols())
            res = per_atom_virials(self, atoms)
            return {key: res[key] for key in ("energy", "forces", "energies", "stress", "stresses")}
        wanted = {"energy", "forces", *properties} - {"free_energy"}
        if atoms.pbc.all() and "stress" in self.active.implemented_properties:
            wanted.add("stress")  # computed with the forces at no extra model call; cached for get_stress
        if "energies" in self.active.implemented_properties:
            wanted.add("energies")
        if self.correction.kind == "finetune":
            self._warn_untuned(atoms.get_chemical_symbols())
        if self.correction.kind == "per-species":
            return self._per_species(atoms, wanted)
        return self._global(atoms, wanted, changes)

    def _global(self, atoms: Atoms, wanted: set[str], system_changes: Sequence[str]) -> dict[str, Any]:
        if "energies" in wanted and "energies" not in self.active.implemented_properties:
            raise PropertyNotImplementedError(f"{type(self.active).__name__} gives no per-atom energies")
        self.active.calculate(atoms, sorted(wanted), system_changes)
        return self._scaled(atoms.get_chemical_symbols(), self.active.results, wanted | {"energy"})

    def _scaled(self, symbols: Sequence[str], base: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
        """The global correction of base results ``keys`` (energy eV, forces eV/Å, stress eV/Å³)."""
        lam = self.correction.scale
        if lam == 1.0:
            return {key: np.copy(base[key]) if key != "energy" else base[key] for key in keys}
        mu = self._anchors(symbols)
        e_ref = float(mu.sum())
        out: dict[str, Any] = {"energy": e_ref + lam * (float(base["energy"]) - e_ref)}
        for key in ("forces", "stress"):
            if key in keys:
                out[key] = lam * np.asarray(base[key])
        if "energies" in keys:
            out["energies"] = mu + lam * (np.asarray(base["energies"]) - mu)
        return out

    @property
    def batched(self) -> bool:
        """True when :meth:`compute_many` evaluates structures in one batch of the base model.

        Global corrections around a batched base (softcalc's own model calculators) are batched;
        per-species corrections need one differentiation per structure and are not.
        """
        return self.correction.kind != "per-species" and bool(getattr(self.active, "batched", False))

    def compute_many(
        self, structures: Sequence[Atoms], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Corrected results of many structures in one batched call of the base model.

        Returns one dict per structure with the corrected ``energy`` (eV), ``forces`` (eV/Å) and
        whatever else the base returned of ``stress`` and ``energies``.

        Raises:
            SoftcalcError: the calculator is not :attr:`batched` (evaluate structure by structure).
        """
        if not self.batched:
            raise SoftcalcError(
                f"{self!r} cannot evaluate structures in a batch. Fix: evaluate them one at a time, "
                "e.g. through softcalc.forces.ForceEvaluator."
            )
        if self.correction.kind == "finetune":
            self._warn_untuned([s for atoms in structures for s in atoms.get_chemical_symbols()])
        results = self.active.compute_many(structures, properties)
        corrected = ("energy", "forces", "stress", "energies")
        return [
            self._scaled(atoms.get_chemical_symbols(), res, {k for k in corrected if k in res})
            for atoms, res in zip(structures, results)
        ]

    def _per_species(self, atoms: Atoms, wanted: set[str]) -> dict[str, Any]:
        return self.local_energy(atoms, compute_stress="stress" in wanted)

    def local_energy(
        self,
        atoms: Atoms,
        owned: np.ndarray | None = None,
        compute_stress: bool = False,
        virials: bool = False,
        virial_origin: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Corrected energy of the atoms flagged ``owned``, differentiated with respect to every atom.

        E' = Σ_(i owned) [μ_Zi + λ_Zi (e_i - μ_Zi)]. With ``owned`` None every atom is owned (the
        usual corrected energy). With a cluster of a spatial domain's atoms plus a ghost shell at least
        as thick as the model's receptive field (LAMMPS domain decomposition), or of one exchange cutoff
        while :mod:`softcalc.exchange` runs, the owned atoms' e_i are exact and the ghosts only shape
        their environment.

        Args:
            atoms: the structure or cluster (a ghost-shell cluster is non-periodic).
            owned: (N,) bool, the atoms whose energy counts; default all.
            compute_stress: also return the stress (periodic cells only).
            virials: also return the per-atom virials (non-periodic ``atoms`` only, see
                :func:`softcalc.autograd.centroid_virials`).
            virial_origin: (3,) Å, the origin the virials' positions are taken from (default: the
                centroid).

        Returns:
            ``energy`` (eV), ``forces`` ((N, 3) eV/Å, on owned and ghost atoms), ``energies``
            ((N,) eV, corrected per-atom energies, zero for atoms not owned), ``stress`` (eV/Å³) and
            ``virials`` ((N, 3, 3) eV: W_i^ab = Σ_j (r_j - r_i)^a ∂E'_j/∂r_i^b, ghosts included).

        Raises:
            PerAtomEnergyNotSupportedError: the model gives no differentiable per-atom energies.
            CorrectionMismatchError: a per-species correction has no λ for an element of ``atoms``
                (and no fallback scale ≠ 1).
            InvalidStructureError: a geometry no model can evaluate (see :mod:`softcalc.structure`).
        """
        model = getattr(self.active, "model", None)
        if model is None or not model.supports_per_atom_energies:
            raise PerAtomEnergyNotSupportedError(
                f"{self.info.name if self.info else type(self.active).__name__} gives no differentiable "
                "per-atom energies, so the energy of a subset of atoms cannot be evaluated."
            )
        if not model.checks_structures:
            check_structure(atoms, self.info)
        symbols = atoms.get_chemical_symbols()
        mask = np.ones(len(atoms), dtype=bool) if owned is None else np.asarray(owned, dtype=bool)
        lam = self.correction.atom_scales(symbols)
        mu = self._anchors(symbols) if np.any(lam != 1.0) else np.zeros(len(atoms))
        res = model.weighted_energy(
            atoms,
            np.where(mask, lam, 0.0),
            compute_stress=compute_stress,
            virials=virials,
            virial_origin=virial_origin,
        )
        shift = np.where(mask, mu * (1.0 - lam), 0.0)
        out: dict[str, Any] = {
            "energy": float(shift.sum() + res["energy"]),
            "forces": np.asarray(res["forces"]),
            "energies": np.where(mask, shift + lam * np.asarray(res["energies"]), 0.0),
        }
        if compute_stress and "stress" in res:
            out["stress"] = np.asarray(res["stress"])
        if virials:
            out["virials"] = np.asarray(res["virials"])
        return out

    def _warn_untuned(self, symbols: Sequence[str]) -> None:
        """Warn once per element that the fine-tuned weights never saw (they may have drifted there)."""
        tuned = self.correction.statistics.get("elements")
        new = sorted(set(symbols) - set(tuned or symbols) - self._warned)
        if new:
            self._warned.update(new)
            warnings.warn(
                f"the fine-tuned weights of {self.correction.source or 'this correction'} were tuned on "
                f"{', '.join(tuned or [])} only; {', '.join(new)} were not in the tuning data, and "
                "fine-tuning can shift a model away from its pretrained behaviour for other elements "
                "(see the forgetting check in the calibration report). Fix: tune on data that contains "
                "them, or run these structures with the bare model.",
                UserWarning,
                stacklevel=3,
            )

    def __repr__(self) -> str:
        c = self.correction
        what = {
            "global": f"scale={c.scale}",
            "per-species": f"species_scales={dict(c.species_scales)}",
            "finetune": f"tuned weights {c.weights['file'] if c.weights else '(not saved)'}",
        }[c.kind]
        return f"SoftCorrectedCalc({self.base!r}, {what}, regime={c.regime!r})"
