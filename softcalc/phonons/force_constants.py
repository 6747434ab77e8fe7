"""Supercell force constants by finite differences with any calculator (phonopy fits: :mod:`.phonopy_io`).

Arrays are (n_rows, n_supercell, 3, 3) in eV/Å², ``fc[r, j, a, b] = ∂²E/∂u_{i_r,a} ∂u_{j,b}`` with
rows either every supercell atom ("full", phonopy's full format) or the primitive atoms p2s
("compact", phonopy's compact format).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from softcalc.forces import ForceEvaluator
from softcalc.phonons import kernels
from softcalc.phonons.phonopy_io import fit_force_constants, from_phonopy_atoms
from softcalc.phonons.storage import read_h5, write_h5
from softcalc.structure import check_structure

if TYPE_CHECKING:
    from phonopy import Phonopy

#: ways :meth:`softcalc.phonons.Phonons.compute_force_constants` can displace atoms
METHODS = ("full", "compact", "symmetry")
#: displaced structures per batched model call of the finite-difference routines, by the type of device
#: the model runs on (see :func:`fd_batch_size`)
FD_BATCH_BY_DEVICE = {"cpu": 1, "cuda": 8}
#: default ``batch_size`` of the finite-difference routines: None, i.e. :func:`fd_batch_size`
FD_BATCH = None


def fd_batch_size(calculator: Calculator) -> int:
    """Displaced structures per model call of the finite-difference routines, by the model's device.

    CPU: 1, one structure per model call. On the 2-core CPU machine batching the displaced cells was
    slower than single calls (63-atom Si, CHGNet: batch 4 and 8 took 1.1-1.4× the time of one call per
    cell, batch 1 0.9-1.1×; benchmarks/README.md, "Hessian and phonon speed"). CUDA: 8, so one larger
    graph keeps the GPU busy; this value is not measured, since the machine the defaults were measured on
    has no GPU. Other devices (``mps``...) get 1. A calculator that is not a softcalc model (no
    ``info.device``) counts as CPU; one that is not batched is called once per structure anyway.
    """
    info = getattr(calculator, "info", None)
    device = str(getattr(info, "device", None) or "cpu")
    return FD_BATCH_BY_DEVICE.get(device.split(":")[0], 1)


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


def fd_force_constants(
    supercell: Atoms,
    calculator: Calculator,
    rows: Sequence[int] | None = None,
    delta: float = 0.01,
    batch_size: int | None = FD_BATCH,
    progress: bool = False,
) -> np.ndarray:
    """Force constants by central differences: atoms ``rows`` (default all) displaced ±δ along x, y, z.

    No symmetry is used: 6 structures per displaced atom, evaluated in batches of ``batch_size``
    (default :func:`fd_batch_size`: 1 on CPU, 8 on CUDA) where the calculator allows (see
    :mod:`softcalc.forces`).

    Returns:
        (len(rows), n_supercell, 3, 3) eV/Å².
    """
    if delta <= 0:
        raise ValueError(f"delta must be positive (Å), not {delta}")
    indices = list(range(len(supercell))) if rows is None else [int(i) for i in rows]
    check_structure(supercell)  # the undisplaced structure; the model calculator checks each displaced one
    size = fd_batch_size(calculator) if batch_size is None else batch_size
    evaluator = ForceEvaluator(calculator, batch_size=size)
    structures = displaced_structures(supercell, indices, delta)
    forces = evaluator.forces(structures, total=6 * len(indices), progress=progress)
    stacked = np.stack(forces).reshape(len(indices), 3, 2, len(supercell), 3)
    fc = kernels.central_difference(stacked, float(delta))  # (rows, 3, n, 3): ∂²E/∂x_{r,a}∂x_{j,b}
    return np.ascontiguousarray(fc.transpose(0, 2, 1, 3))


def symmetry_force_constants(
    phonon: Phonopy,
    calculator: Calculator,
    delta: float = 0.01,
    batch_size: int | None = FD_BATCH,
    progress: bool = False,
) -> np.ndarray:
    """Full force constants from phonopy's symmetry-reduced ± displacements, forces from ``calculator``.

    phonopy (spglib) chooses the displacements and expands the fitted constants by symmetry; the
    displaced supercells are evaluated in batches of ``batch_size`` (default :func:`fd_batch_size`)
    where the calculator allows.
    """
    phonon.generate_displacements(distance=delta, is_plusminus=True)
    cells = [from_phonopy_atoms(c) for c in phonon.supercells_with_displacements]
    size = fd_batch_size(calculator) if batch_size is None else batch_size
    evaluator = ForceEvaluator(calculator, batch_size=size)
    return fit_force_constants(phonon, np.stack(evaluator.forces(cells, progress=progress)), full=True)


def acoustic_sum_rule(force_constants: np.ndarray, p2s: np.ndarray) -> np.ndarray:
    """Translational invariance Σ_j fc[i, j] = 0.

    Full constants are symmetrised and projected (smallest change that keeps them symmetric);
    compact ones get the correction on the on-site block of each row.
    """
    fc = np.ascontiguousarray(force_constants, dtype=float)
    n_rows, n_s = fc.shape[:2]
    if n_rows == n_s:
        sym = 0.5 * (fc + fc.transpose(1, 0, 3, 2))
        return kernels.project_translational_invariance(np.ascontiguousarray(sym))
    return kernels.impose_acoustic_sum_rule(fc, np.asarray(p2s, dtype=np.int64))


def save_force_constants(
    path: str | Path,
    force_constants: np.ndarray,
    unitcell: Atoms,
    supercell_matrix: np.ndarray,
    primitive_matrix: np.ndarray,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write force constants (eV/Å²), the unit cell and the cell matrices to HDF5, atomically."""
    meta = {"units": "eV/Angstrom^2", **(metadata or {})}
    arrays = {
        "force_constants": force_constants,
        "supercell_matrix": np.asarray(supercell_matrix),
        "primitive_matrix": np.asarray(primitive_matrix, dtype=float),
    }
    write_h5(path, "force_constants", arrays, {"unitcell": unitcell}, meta)


def load_force_constants(
    path: str | Path,
) -> tuple[np.ndarray, Atoms, np.ndarray, np.ndarray, dict[str, Any]]:
    """Read :func:`save_force_constants` output.

    Returns:
        (force_constants, unitcell, supercell_matrix, primitive_matrix, metadata).
    """
    arrays, structures, metadata = read_h5(path, "force_constants", ("unitcell",))
    return (
        arrays["force_constants"],
        structures["unitcell"],
        arrays["supercell_matrix"],
        arrays["primitive_matrix"],
        metadata,
    )
