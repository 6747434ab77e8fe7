"""Dynamical matrices and phonon frequencies over many q-points, periodic images as phonopy does.

For each pair (primitive atom a, supercell atom s) the vector r_s - r_a is taken at its shortest
periodic image in the supercell; when several images are equally short (within ``tolerance`` Å)
all of them enter with weight 1/multiplicity. This is phonopy's construction, so frequencies agree
with phonopy's on the same force constants.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from ase import Atoms
from ase.geometry import minkowski_reduce

from softcalc.errors import DataError
from softcalc.phonons import kernels
from softcalc.phonons.units import EV_A2_AMU_TO_THZ


def periodic_images(
    supercell: Atoms, primitive_cell: np.ndarray, p2s: np.ndarray, tolerance: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """Shortest vectors from each primitive atom to each supercell atom, with multiplicities.

    Args:
        supercell: the supercell (Å).
        primitive_cell: (3, 3) primitive lattice vectors as rows, Å.
        p2s: (n_p,) supercell index of each primitive atom.
        tolerance: length tolerance (Å) for equally short images.

    Returns:
        vectors (n_s, n_p, max_multiplicity, 3) in reduced coordinates of ``primitive_cell``;
        multiplicity (n_s, n_p).
    """
    reduced, _ = minkowski_reduce(np.asarray(supercell.cell))
    reduced = np.ascontiguousarray(reduced, dtype=float)
    frac = supercell.positions @ np.linalg.inv(reduced)
    vectors, multiplicity = kernels.shortest_vectors(reduced, frac, frac[p2s], tolerance, 27)
    vectors = vectors[:, :, : multiplicity.max()] @ np.linalg.inv(primitive_cell)
    return np.ascontiguousarray(vectors), multiplicity


def _to_thz(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of D (eV/Å²/amu) -> frequencies in THz, imaginary as negative."""
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * EV_A2_AMU_TO_THZ


class DynamicalMatrix:
    """D(q) and frequencies of a crystal from supercell force constants.

    Args:
        supercell: the supercell the force constants belong to.
        primitive: the primitive cell (its masses are used, amu).
        p2s: (n_p,) supercell index of each primitive atom.
        s2p: (n_s,) primitive index (0..n_p-1) of each supercell atom.
        force_constants: (n_s, n_s, 3, 3) full or (n_p, n_s, 3, 3) compact, eV/Å².
        tolerance: length tolerance for equally short periodic images, Å.
    """

    def __init__(
        self,
        supercell: Atoms,
        primitive: Atoms,
        p2s: np.ndarray,
        s2p: np.ndarray,
        force_constants: np.ndarray,
        tolerance: float = 1e-5,
    ) -> None:
        n_s, n_p = len(supercell), len(primitive)
        fc = np.ascontiguousarray(force_constants, dtype=float)
        if fc.shape[1:] != (n_s, 3, 3) or fc.shape[0] not in (n_s, n_p):
            raise DataError(
                f"force constants of shape {fc.shape} do not fit a {n_s}-atom supercell "
                f"with a {n_p}-atom primitive cell (expected ({n_s} or {n_p}, {n_s}, 3, 3))."
            )
        self.force_constants = fc
        self.p2s = np.asarray(p2s, dtype=np.int64)
        self.s2p = np.asarray(s2p, dtype=np.int64)
        self.fc_rows = self.p2s if fc.shape[0] == n_s and n_s != n_p else np.arange(n_p, dtype=np.int64)
        self.masses = np.asarray(primitive.get_masses(), dtype=float)
        self.vectors, self.multiplicity = periodic_images(
            supercell, np.asarray(primitive.cell), self.p2s, tolerance
        )

    @property
    def n_bands(self) -> int:
        """Number of phonon branches, 3 n_p."""
        return 3 * len(self.masses)

    def matrices(self, qpoints: np.ndarray) -> np.ndarray:
        """Dynamical matrices (n_q, 3n_p, 3n_p), complex, eV/Å²/amu; q in reduced coordinates."""
        q = np.ascontiguousarray(np.atleast_2d(qpoints), dtype=float)
        return kernels.dynamical_matrices(
            self.force_constants,
            self.fc_rows,
            self.p2s,
            self.s2p,
            self.vectors,
            self.multiplicity,
            self.masses,
            q,
        )

    def frequencies(self, qpoints: np.ndarray, chunk: int = 2048, workers: int | None = None) -> np.ndarray:
        """Frequencies (n_q, 3n_p) in THz, ascending per q, imaginary as negative.

        Chunks of at most ``chunk`` q-points are built (Numba, no GIL) and diagonalised (LAPACK, no
        GIL) on ``workers`` threads (default: numba's thread count); memory is bounded by the chunks.
        """
        q = np.ascontiguousarray(np.atleast_2d(qpoints), dtype=float)
        workers = workers or numba.get_num_threads()
        size = max(1, min(chunk, -(-len(q) // workers)))
        chunks = [q[start : start + size] for start in range(0, len(q), size)]
        if len(chunks) == 1:
            return self._chunk_frequencies(chunks[0])
        with ThreadPoolExecutor(min(workers, len(chunks))) as pool:
            return np.concatenate(list(pool.map(self._chunk_frequencies, chunks)))

    def _chunk_frequencies(self, q: np.ndarray) -> np.ndarray:
        return _to_thz(np.linalg.eigvalsh(self.matrices(q)))

    def modes(self, qpoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frequencies (n_q, 3n_p) THz and eigenvectors (n_q, 3n_p, 3n_p), columns as in phonopy."""
        values, vectors = np.linalg.eigh(self.matrices(qpoints))
        return _to_thz(values), vectors
