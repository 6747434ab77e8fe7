"""Finite-difference Hessians of any structure with any calculator, batched where the model allows.

H_ij = ∂²E/∂x_i∂x_j ≈ -(F_j(x + δ e_i) - F_j(x - δ e_i)) / 2δ in eV/Å² (central differences). No
symmetry is used, so molecules, slabs, defects, amorphous cells and MD snapshots all work. With a
softcalc :class:`~softcalc.model.ModelCalculator` the 6N displaced structures go through the
model's batched ``compute_many`` in chunks; with a :class:`~softcalc.SoftCorrectedCalc` holding a
global scale λ, H' = λ H of the base model, through the same batched path (:mod:`softcalc.forces`).

Example::

    from softcalc import load_model
    from softcalc.hessian import fd_hessian, vibrational_modes
    H = fd_hessian(atoms, load_model("chgnet"), delta=0.01)
    freqs_thz, modes = vibrational_modes(H, atoms.get_masses())
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from softcalc.phonons import kernels
from softcalc.phonons.force_constants import FD_BATCH, fd_force_constants
from softcalc.phonons.storage import read_h5, write_h5
from softcalc.phonons.units import EV_A2_AMU_TO_THZ, thz_to_cm1

__all__ = [
    "acoustic_sum_rule",
    "fd_hessian",
    "load_hessian",
    "save_hessian",
    "symmetrize_hessian",
    "thz_to_cm1",
    "vibrational_modes",
]


def fd_hessian(
    atoms: Atoms,
    calculator: Calculator,
    delta: float = 0.01,
    batch_size: int | None = FD_BATCH,
    progress: bool = False,
    symmetrize: bool = True,
) -> np.ndarray:
    """Hessian (3N, 3N) in eV/Å² by central differences of forces, every atom displaced ±δ (Å).

    Args:
        atoms: any structure (molecule, slab, bulk); its calculator is ignored.
        calculator: any ASE calculator; softcalc model calculators are evaluated in batches.
        delta: displacement in Å.
        batch_size: displaced structures per model batch; default (None) by the model's device
            (:func:`softcalc.phonons.force_constants.fd_batch_size`): 1 on CPU, where batching was
            measured slower than single calls on 2 cores, 8 on CUDA (not measured: no GPU here).
        progress: show a progress bar.
        symmetrize: return (H + Hᵀ)/2 (the raw finite-difference H is symmetric only to O(δ²)).
    """
    fc = fd_force_constants(atoms, calculator, None, delta, batch_size, progress)  # (N, N, 3, 3)
    hessian = np.ascontiguousarray(fc.transpose(0, 2, 1, 3).reshape(3 * len(atoms), 3 * len(atoms)))
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
