"""A model adapter that remembers every force it has computed, so a benchmark evaluates each structure once.

:class:`StoredForces` wraps a loaded :class:`~softcalc.model.ModelAdapter` (or none, when the forces come
from a predictions file) and keys results by the structure itself. Core tools (``calibrate``,
``compare_forces``) take it through an ordinary :class:`~softcalc.model.ModelCalculator`, so every
calibration of a benchmark reuses the same model forces. A global correction is linear in the forces
(F' = λF), which is why re-evaluating the model per calibration would be wasted work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError

from softcalc.errors import DataError
from softcalc.model import ModelAdapter, ModelInfo
from softcalc.structure import structure_key


def weights_key(atoms: Atoms, atom_weights: np.ndarray) -> str:
    """Key of a weighted per-atom energy (the structure plus its weights)."""
    w = np.ascontiguousarray(np.asarray(atom_weights, dtype=np.float64)).tobytes()
    return f"{structure_key(atoms)}:{hashlib.sha1(w).hexdigest()}"


@dataclass(frozen=True)
class Weighted:
    """One weighted per-atom energy Σ w_i e_i: its value (eV), forces ((N, 3) eV/Å) and e_i ((N,) eV)."""

    energy: float
    forces: np.ndarray
    energies: np.ndarray


class StoredForces(ModelAdapter):
    """Forces (eV/Å) and energies (eV) per structure, computed once by ``base`` or loaded from a file.

    Attributes:
        info: the model's :class:`ModelInfo`.
        base: the adapter that computes missing entries; None for a read-only store (a miss is an error).
        forces: structure key -> (energy eV, forces (N, 3) eV/Å float64).
        weighted: weights key -> :class:`Weighted` of Σ w_i e_i (per-species force components).
    """

    def __init__(
        self, info: ModelInfo, base: ModelAdapter | None = None, per_atom_energies: bool | None = None
    ) -> None:
        self.info = info
        self.base = base
        self.supports_per_atom_energies = (
            bool(base.supports_per_atom_energies) if per_atom_energies is None else per_atom_energies
        )
        self.forces: dict[str, tuple[float, np.ndarray]] = {}
        self.weighted: dict[str, Weighted] = {}

    def _missing(self, what: str) -> DataError:
        return DataError(
            f"the stored predictions of {self.info.name} hold no {what}. Fix: re-run the benchmark "
            "with the model instead of recomputing from the predictions file."
        )

    def compute_many(
        self, structures: Sequence[Atoms], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        keys = [structure_key(a) for a in structures]
        todo = [k for k, key in enumerate(keys) if key not in self.forces]
        if todo:
            if self.base is None:
                raise self._missing(f"forces for structure {structures[todo[0]].get_chemical_formula()}")
            for k, res in zip(
                todo, self.base.compute_many([structures[k] for k in todo], ("energy", "forces"))
            ):
                self.forces[keys[k]] = (
                    float(res["energy"]),
                    np.array(res["forces"], dtype=np.float64, order="C"),
                )
        return [{"energy": self.forces[key][0], "forces": self.forces[key][1].copy()} for key in keys]

    def compute(self, atoms: Atoms, properties: Sequence[str]) -> dict[str, Any]:
        return self.compute_many([atoms], properties)[0]

    def weighted_energy(
        self,
        atoms: Atoms,
        atom_weights: np.ndarray,
        compute_stress: bool = True,
        virials: bool = False,
        virial_origin: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Energy, forces and per-atom energies of Σ w_i e_i (no stress or virials: the benchmark
        compares forces)."""
        if virials:
            raise PropertyNotImplementedError("stored benchmark predictions hold no per-atom virials")
        key = weights_key(atoms, atom_weights)
        if key not in self.weighted:
            if self.base is None:
                raise self._missing("per-species force components")
            res = self.base.weighted_energy(atoms, atom_weights, compute_stress=False)
            self.weighted[key] = Weighted(
                float(res["energy"]),
                np.array(res["forces"], dtype=np.float64, order="C"),
                np.array(res["energies"], dtype=np.float64),
            )
        entry = self.weighted[key]
        return {"energy": entry.energy, "forces": entry.forces.copy(), "energies": entry.energies.copy()}
