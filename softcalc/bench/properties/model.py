"""The model of ``bench properties``: a softcalc model or any ASE calculator, evaluating each structure once.

Each model evaluates each structure once (:class:`~softcalc.bench.stored.StoredForces`); every correction
reuses those results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from softcalc.bench.stored import StoredForces
from softcalc.info import ModelInfo
from softcalc.model import ModelAdapter, ModelCalculator
from softcalc.registry import load_adapter


class AseModel(ModelAdapter):
    """Any ASE calculator as a softcalc model: no weights, every element, no anchors μ_Z.

    Without anchors a global correction scales the whole energy (E' = λE); surface energies and
    curvatures of one composition scale by λ all the same.
    """

    def __init__(self, calc: Calculator, name: str) -> None:
        self.calc = calc
        self.info = ModelInfo(
            name=name,
            family="ase",
            weights=None,
            weights_sha256=None,
            elements=frozenset(),
            cutoff=0.0,
            n_message_passing=1,
            dtype="float64",
        )

    def compute(self, atoms: Atoms, properties: Sequence[str]) -> dict[str, Any]:
        """Energy (eV) and forces ((N, 3) eV/Å) of one structure."""
        atoms = atoms.copy()
        atoms.calc = self.calc
        return {
            "energy": float(atoms.get_potential_energy()),
            "forces": np.asarray(atoms.get_forces(), float),
        }


def model_calculator(
    model: str | Calculator, name: str, device: str = "cpu", dtype: str | None = None
) -> ModelCalculator:
    """A calculator that evaluates each structure once, from a softcalc model (name or calculator) or any
    ASE calculator."""
    if isinstance(model, ModelCalculator):
        adapter = model.model
    elif isinstance(model, Calculator):
        adapter = AseModel(model, name)
    else:
        adapter = load_adapter(model, device, dtype)
    return ModelCalculator(StoredForces(adapter.info, base=adapter))
