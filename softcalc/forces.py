"""Forces of many structures with one calculator: the one batched path of softcalc.

Evaluation, calibration, Hessians, force constants and the phonon benchmark all get their forces
here. A calculator whose ``batched`` attribute is true evaluates a list of structures in one
``compute_many(structures, properties)`` call: softcalc's :class:`~softcalc.model.ModelCalculator`
(the plugin's batched forward pass) and a :class:`~softcalc.calculator.SoftCorrectedCalc` with a
global λ around one (the base batch, corrected by the calculator itself). Each calculator checks its
structures once and applies its correction once, so no caller needs to know about either. Any other
ASE calculator, and per-species corrections, are called one structure at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from tqdm.auto import tqdm

#: structures per batched model call for data sets (bounds the memory of one batch)
DEFAULT_BATCH = 16


class ForceEvaluator:
    """Forces of many structures with one calculator, in batches where the calculator allows.

    Args:
        calculator: any ASE calculator; batched when its ``batched`` attribute is true.
        batch_size: structures per ``compute_many`` call (bounds the memory of one batch).
    """

    def __init__(self, calculator: Calculator, batch_size: int = DEFAULT_BATCH) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.calculator = calculator
        self.batch_size = batch_size

    @property
    def batched(self) -> bool:
        """True when structures go to the model in batches."""
        return bool(getattr(self.calculator, "batched", False))

    def _chunk(self, chunk: list[Atoms], energy: bool) -> list[dict[str, np.ndarray | float]]:
        if self.batched:  # the batched path returns the energy with the forces at no cost
            results = self.calculator.compute_many(chunk, ("energy", "forces"))
            return [
                {"energy": float(r["energy"]), "forces": np.asarray(r["forces"], dtype=float)}
                for r in results
            ]
        out = []
        for atoms in chunk:
            atoms = atoms.copy()
            atoms.calc = self.calculator
            result: dict[str, np.ndarray | float] = {"forces": np.asarray(atoms.get_forces(), dtype=float)}
            if energy:
                result["energy"] = self._energy(atoms)
            out.append(result)
        return out

    def _energy(self, atoms: Atoms) -> float:
        """The energy (eV) of ``atoms`` with its calculator attached, NaN for a forces-only calculator."""
        if "energy" not in getattr(self.calculator, "implemented_properties", ("energy",)):
            return float("nan")
        return float(atoms.get_potential_energy())

    def results(
        self,
        structures: Iterable[Atoms],
        total: int | None = None,
        progress: bool = False,
        desc: str = "forces",
        energy: bool = True,
    ) -> list[dict[str, np.ndarray | float]]:
        """Energy (eV) and forces ((n_atoms, 3) eV/Å) per structure, from the same model call.

        Args:
            structures: the structures, evaluated in order; may be a lazy iterator.
            total: their number, for the progress bar (taken from ``structures`` when it has a length).
            progress: show a progress bar (structures evaluated).
            desc: label of the progress bar.
            energy: also return the energy (NaN from a calculator that gives forces only); False asks a
                calculator that is not batched for forces only.
        Returns:
            one dict per structure with ``forces`` and, with ``energy``, ``energy``.
        """
        if total is None and hasattr(structures, "__len__"):
            total = len(structures)  # type: ignore[arg-type]
        it = iter(structures)
        out: list[dict[str, np.ndarray | float]] = []
        size = self.batch_size if self.batched else 1
        with tqdm(total=total, disable=not progress, unit="structure", desc=desc, leave=False) as bar:
            while chunk := list(islice(it, size)):
                out.extend(self._chunk(chunk, energy))
                bar.update(len(chunk))
        return out

    def forces(
        self,
        structures: Iterable[Atoms],
        total: int | None = None,
        progress: bool = False,
        desc: str = "forces",
    ) -> list[np.ndarray]:
        """Forces, one (n_atoms, 3) array in eV/Å per structure (see :meth:`results`)."""
        results = self.results(structures, total, progress, desc, energy=False)
        return [r["forces"] for r in results]  # type: ignore[misc]
