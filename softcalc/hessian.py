"""Finite-difference Hessians of any structure with any calculator, batched where the model allows.

H_ij = ∂²E/∂x_i∂x_j ≈ -(F_j(x + δ e_i) - F_j(x - δ e_i)) / 2δ in eV/Å² (central differences). No
symmetry is used, so molecules, slabs, defects, amorphous cells and MD snapshots all work. With a
softcalc :class:`~softcalc.model.ModelCalculator` the 6N displaced structures go through the
model's batched ``compute_many`` in chunks; with a :class:`~softcalc.SoftCorrectedCalc` holding a
global scale λ, H' = λ H of the base model, through the same batched path.

Example::

    from softcalc import load_model
    from softcalc.hessian import fd_hessian, vibrational_modes
    H = fd_hessian(atoms, load_model("chgnet"), delta=0.01)
    freqs_thz, modes = vibrational_modes(H, atoms.get_masses())
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from tqdm import tqdm

from softcalc.calculator import SoftCorrectedCalc
from softcalc.model import ModelAdapter, ModelCalculator
from softcalc.phonons import kernels
from softcalc.phonons.storage import read_h5, write_h5
from softcalc.phonons.units import EV_A2_AMU_TO_THZ, thz_to_cm1
from softcalc.structure import check_structure

__all__ = [
    "ForceEvaluator",
    "acoustic_sum_rule",
    "displaced_structures",
    "fd_hessian",
    "force_constant_rows",
    "load_hessian",
    "save_hessian",
    "symmetrize_hessian",
    "thz_to_cm1",
    "vibrational_modes",
]


class ForceEvaluator:
    """Forces of many structures with one calculator, in batches where the calculator allows.

    Batched when the calculator is a :class:`ModelCalculator` (its adapter's ``compute_many``), or
    a :class:`SoftCorrectedCalc` with a global scale λ around one (forces λ·F of the base batch).
    Any other calculator, and per-species corrections, are evaluated one structure at a time.

    Args:
        calculator: an ASE calculator.
        batch_size: structures per ``compute_many`` call (bounds the memory of one batch).
    """

    def __init__(self, calculator: Calculator, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.calculator = calculator
        self.batch_size = batch_size
        self.scale = 1.0
        self.model: ModelAdapter | None = None
        base = calculator
        if isinstance(calculator, SoftCorrectedCalc) and calculator.correction.kind == "global":
            self.scale = float(calculator.correction.scale)
            base = calculator.base
        if isinstance(base, ModelCalculator):
            self.model = base.model
        else:
            self.scale = 1.0

    @property
    def batched(self) -> bool:
        """True when structures go to the model in batches."""
        return self.model is not None

    def _chunk_forces(self, chunk: list[Atoms]) -> list[np.ndarray]:
        if self.model is not None:
            for atoms in chunk:
                check_structure(atoms, self.model.info)
            results = self.model.compute_many(chunk, ("energy", "forces"))
            return [self.scale * np.asarray(r["forces"], dtype=float) for r in results]
        out = []
        for atoms in chunk:
            atoms = atoms.copy()
            atoms.calc = self.calculator
            out.append(np.asarray(atoms.get_forces(), dtype=float))
        return out

    def forces(
        self, structures: Iterable[Atoms], total: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """Forces (n_structures, n_atoms, 3) in eV/Å; ``structures`` may be a lazy iterator.

        Args:
            structures: structures with the same number of atoms.
            total: their number, for the progress bar.
            progress: show a tqdm progress bar (structures evaluated).
        """
        it = iter(structures)
        out: list[np.ndarray] = []
        size = self.batch_size if self.batched else 1
        with tqdm(total=total, disable=not progress, unit="structure", desc="forces") as bar:
            while chunk := list(islice(it, size)):
                out.extend(self._chunk_forces(chunk))
                bar.update(len(chunk))
        return np.stack(out)


def displaced_structures(atoms: Atoms, indices: Sequence[int], delta: float) -> Iterator[Atoms]:
    """Yield copies of ``atoms`` with atom i moved by +δ then -δ along x, y, z, for i in ``indices``.

    Order: (index, axis, sign), i.e. ``len(indices) * 6`` structures. δ in Å.
    """
    template = atoms.copy()
    template.calc = None
    for i in indices:
        for axis in range(3):
            for sign in (1.0, -1.0):
                displaced = template.copy()
                displaced.positions[i, axis] += sign * delta
                yield displaced


def force_constant_rows(
    atoms: Atoms,
    calculator: Calculator,
    indices: Sequence[int] | None = None,
    delta: float = 0.01,
    batch_size: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """Rows of the Hessian for displaced atoms ``indices`` (default all), by central differences.

    Returns:
        (len(indices), 3, N, 3) array ``fc[r, a, j, b] = ∂²E/∂x_{indices[r], a} ∂x_{j, b}`` in eV/Å².
    """
    if delta <= 0:
        raise ValueError(f"delta must be positive (Å), not {delta}")
    indices = list(range(len(atoms))) if indices is None else [int(i) for i in indices]
    check_structure(atoms)
    evaluator = ForceEvaluator(calculator, batch_size=batch_size)
    count = 6 * len(indices)
    forces = evaluator.forces(displaced_structures(atoms, indices, delta), total=count, progress=progress)
    return kernels.central_difference(forces.reshape(len(indices), 3, 2, len(atoms), 3), float(delta))


def fd_hessian(
    atoms: Atoms,
    calculator: Calculator,
    delta: float = 0.01,
    batch_size: int = 32,
    progress: bool = False,
    symmetrize: bool = True,
) -> np.ndarray:
    """Hessian (3N, 3N) in eV/Å² by central differences of forces, every atom displaced ±δ (Å).

    Args:
        atoms: any structure (molecule, slab, bulk); its calculator is ignored.
        calculator: any ASE calculator; softcalc model calculators are evaluated in batches.
        delta: displacement in Å.
        batch_size: displaced structures per model batch.
        progress: show a progress bar.
        symmetrize: return (H + Hᵀ)/2 (the raw finite-difference H is symmetric only to O(δ²)).
    """
    rows = force_constant_rows(atoms, calculator, None, delta, batch_size, progress)
    hessian = np.ascontiguousarray(rows.reshape(3 * len(atoms), 3 * len(atoms)))
    return kernels.symmetrize_matrix(hessian) if symmetrize else hessian


def symmetrize_hessian(hessian: np.ndarray) -> np.ndarray:
    """(H + Hᵀ)/2."""
    return kernels.symmetrize_matrix(np.ascontiguousarray(hessian, dtype=float))


def acoustic_sum_rule(hessian: np.ndarray) -> np.ndarray:
    """Symmetrize H and project it onto translational invariance (Σ_j H_ij = 0 per 3x3 block).

    The projection is the smallest change (Frobenius norm) giving a symmetric Hessian with zero
    row and column sums, so the three rigid translations become exact zero modes.
    """
    n = hessian.shape[0] // 3
    sym = symmetrize_hessian(hessian)
    fc = np.ascontiguousarray(sym.reshape(n, 3, n, 3).transpose(0, 2, 1, 3))
    out = kernels.project_translational_invariance(fc)
    return np.ascontiguousarray(out.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n))


def vibrational_modes(hessian: np.ndarray, masses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic frequencies and normal modes of a Hessian.

    Args:
        hessian: (3N, 3N) in eV/Å² (symmetrized before diagonalisation).
        masses: (N,) atomic masses in amu.

    Returns:
        frequencies (3N,) in THz, ascending, imaginary modes as negative numbers (use
        :func:`thz_to_cm1` for cm⁻¹); modes (3N, N, 3): orthonormal eigenvectors of the
        mass-weighted Hessian, ``modes[k]`` belonging to ``frequencies[k]``.
    """
    masses = np.asarray(masses, dtype=float)
    n = len(masses)
    if hessian.shape != (3 * n, 3 * n):
        raise ValueError(f"hessian shape {hessian.shape} does not match {n} masses")
    weighted = kernels.mass_weight(symmetrize_hessian(hessian), masses)
    eigenvalues, vectors = np.linalg.eigh(weighted)
    frequencies = np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * EV_A2_AMU_TO_THZ
    return frequencies, vectors.T.reshape(3 * n, n, 3)


def save_hessian(
    path: str | Path, hessian: np.ndarray, atoms: Atoms, metadata: dict[str, Any] | None = None
) -> None:
    """Write a Hessian (eV/Å²), its structure and metadata (e.g. model, delta) to HDF5, atomically."""
    n = len(atoms)
    if hessian.shape != (3 * n, 3 * n):
        raise ValueError(f"hessian shape {hessian.shape} does not match {n} atoms")
    meta = {"units": "eV/Angstrom^2", **(metadata or {})}
    write_h5(path, "hessian", {"hessian": hessian}, {"atoms": atoms}, meta)


def load_hessian(path: str | Path) -> tuple[np.ndarray, Atoms, dict[str, Any]]:
    """Read what :func:`save_hessian` wrote: (hessian (3N, 3N) eV/Å², atoms, metadata)."""
    arrays, structures, metadata = read_h5(path, "hessian", ("atoms",))
    return arrays["hessian"], structures["atoms"], metadata
