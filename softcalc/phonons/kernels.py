"""Numba kernels for the hot loops of Hessians and phonons (the role phonopy's C code plays).

Array conventions: a force-constant block array has shape (n_rows, n_atoms, 3, 3) with
``fc[r, j, a, b] = ∂²E/∂u_{row_atom[r], a} ∂u_{j, b}`` in eV/Å²; a Hessian is the same data as a
(3 n_rows, 3 n_atoms) matrix. Frequencies are in THz, masses in amu, q-points in reduced
coordinates of the primitive reciprocal lattice.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def central_difference(forces: np.ndarray, delta: float) -> np.ndarray:
    """Force-constant rows from forces on ± displaced structures.

    Args:
        forces: (n_rows, 3, 2, n_atoms, 3) forces in eV/Å; axis 2 is (+δ, -δ) along Cartesian axis 1.
        delta: displacement δ in Å.

    Returns:
        (n_rows, 3, n_atoms, 3) array, ``-(F(+δ) - F(-δ)) / 2δ`` in eV/Å².
    """
    n_rows, _, _, n_atoms, _ = forces.shape
    out = np.empty((n_rows, 3, n_atoms, 3))
    scale = -0.5 / delta
    for r in range(n_rows):
        for a in range(3):
            for j in range(n_atoms):
                for b in range(3):
                    out[r, a, j, b] = scale * (forces[r, a, 0, j, b] - forces[r, a, 1, j, b])
    return out


@njit(cache=True)
def symmetrize_matrix(matrix: np.ndarray) -> np.ndarray:
    """Return (M + Mᵀ)/2 of a square matrix."""
    n = matrix.shape[0]
    out = np.empty_like(matrix)
    for i in range(n):
        for j in range(i, n):
            v = 0.5 * (matrix[i, j] + matrix[j, i])
            out[i, j] = v
            out[j, i] = v
    return out


@njit(cache=True)
def impose_acoustic_sum_rule(fc: np.ndarray, row_atoms: np.ndarray) -> np.ndarray:
    """Make every row of force-constant blocks sum to zero by correcting its on-site block.

    Σ_j fc[r, j] = 0 (3x3) is translational invariance; the correction goes into fc[r, row_atoms[r]].

    Args:
        fc: (n_rows, n_atoms, 3, 3) force constants, eV/Å².
        row_atoms: (n_rows,) index of each row's own atom.
    """
    out = fc.copy()
    for r in range(fc.shape[0]):
        for a in range(3):
            for b in range(3):
                s = 0.0
                for j in range(fc.shape[1]):
                    s += fc[r, j, a, b]
                out[r, row_atoms[r], a, b] -= s
    return out


@njit(cache=True)
def project_translational_invariance(fc: np.ndarray) -> np.ndarray:
    """Orthogonal projection of symmetric square force constants onto the acoustic sum rule.

    With row sums R_i = Σ_k fc[i, k] and T = Σ_i R_i (3x3 blocks), returns
    fc_ij - (R_i + R_jᵀ)/N + T/N², which is symmetric and has zero row and column sums when the
    input is symmetric (the smallest change in the Frobenius norm that does so).

    Args:
        fc: (N, N, 3, 3) symmetric force constants, eV/Å².
    """
    n = fc.shape[0]
    rows = np.zeros((n, 3, 3))
    for i in range(n):
        for k in range(n):
            rows[i] += fc[i, k]
    total = np.zeros((3, 3))
    for i in range(n):
        total += rows[i]
    out = np.empty_like(fc)
    for i in range(n):
        for j in range(n):
            out[i, j] = fc[i, j] - (rows[i] + rows[j].T) / n + total / (n * n)
    return out


@njit(cache=True)
def mass_weight(matrix: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Mass-weighted Hessian H_ij / sqrt(m_i m_j), with ``masses`` per atom (amu), H (3N, 3N)."""
    n = matrix.shape[0]
    out = np.empty_like(matrix)
    for i in range(n):
        for j in range(n):
            out[i, j] = matrix[i, j] / np.sqrt(masses[i // 3] * masses[j // 3])
    return out


@njit(cache=True)
def shortest_vectors(
    reduced_lattice: np.ndarray,
    supercell_frac: np.ndarray,
    origin_frac: np.ndarray,
    tolerance: float,
    max_images: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Shortest periodic-image vectors from origin atoms to every supercell atom.

    Args:
        reduced_lattice: (3, 3) reduced (Minkowski) supercell lattice, rows, Å.
        supercell_frac: (n_s, 3) supercell atoms in fractional coordinates of ``reduced_lattice``.
        origin_frac: (n_p, 3) origin atoms in the same coordinates.
        tolerance: images whose length is within this of the shortest (Å) all count.
        max_images: capacity of the vector array per pair.

    Returns:
        vectors (n_s, n_p, max_images, 3) Cartesian Å, multiplicities (n_s, n_p).
    """
    n_s = supercell_frac.shape[0]
    n_p = origin_frac.shape[0]
    vectors = np.zeros((n_s, n_p, max_images, 3))
    multiplicity = np.zeros((n_s, n_p), dtype=np.int64)
    cand = np.empty((125, 3))
    lengths = np.empty(125)
    for s in range(n_s):
        for p in range(n_p):
            d = supercell_frac[s] - origin_frac[p]
            d = d - np.rint(d)
            k = 0
            for n0 in range(-2, 3):
                for n1 in range(-2, 3):
                    for n2 in range(-2, 3):
                        f0 = d[0] + n0
                        f1 = d[1] + n1
                        f2 = d[2] + n2
                        for c in range(3):
                            cand[k, c] = (
                                f0 * reduced_lattice[0, c]
                                + f1 * reduced_lattice[1, c]
                                + f2 * reduced_lattice[2, c]
                            )
                        lengths[k] = np.sqrt(cand[k, 0] ** 2 + cand[k, 1] ** 2 + cand[k, 2] ** 2)
                        k += 1
            shortest = lengths.min()
            m = 0
            for k in range(125):
                if lengths[k] - shortest < tolerance and m < max_images:
                    vectors[s, p, m] = cand[k]
                    m += 1
            multiplicity[s, p] = m
    return vectors, multiplicity


@njit(cache=True)
def _phase_coefficients(
    p2s: np.ndarray, s2p: np.ndarray, multiplicity: np.ndarray, masses: np.ndarray
) -> np.ndarray:
    """1 / (M_sa sqrt(m_a m_b)) for every (primitive atom a, supercell atom s)."""
    coef = np.empty((p2s.shape[0], s2p.shape[0]))
    for a in range(p2s.shape[0]):
        for s in range(s2p.shape[0]):
            coef[a, s] = 1.0 / (multiplicity[s, a] * np.sqrt(masses[a] * masses[s2p[s]]))
    return coef


@njit(cache=True)
def _fill_dynamical_matrix(
    dm: np.ndarray,
    q: np.ndarray,
    fc: np.ndarray,
    fc_rows: np.ndarray,
    s2p: np.ndarray,
    vectors: np.ndarray,
    multiplicity: np.ndarray,
    coef: np.ndarray,
) -> None:
    """Write the Hermitian D(q) into ``dm`` (3n_p, 3n_p); see :func:`dynamical_matrices`."""
    dm[:, :] = 0.0
    q0 = 2.0 * np.pi * q[0]
    q1 = 2.0 * np.pi * q[1]
    q2 = 2.0 * np.pi * q[2]
    for a in range(fc_rows.shape[0]):
        row = fc_rows[a]
        for s in range(s2p.shape[0]):
            b = s2p[s]
            re = 0.0
            im = 0.0
            for k in range(multiplicity[s, a]):
                arg = q0 * vectors[s, a, k, 0] + q1 * vectors[s, a, k, 1] + q2 * vectors[s, a, k, 2]
                re += np.cos(arg)
                im += np.sin(arg)
            phase = complex(re * coef[a, s], im * coef[a, s])
            for x in range(3):
                for y in range(3):
                    dm[3 * a + x, 3 * b + y] += fc[row, s, x, y] * phase
    nb = dm.shape[0]
    for i in range(nb):  # Hermitian part, as phonopy
        dm[i, i] = dm[i, i].real
        for j in range(i + 1, nb):
            v = 0.5 * (dm[i, j] + np.conj(dm[j, i]))
            dm[i, j] = v
            dm[j, i] = np.conj(v)


@njit(cache=True, nogil=True)
def dynamical_matrices(
    fc: np.ndarray,
    fc_rows: np.ndarray,
    p2s: np.ndarray,
    s2p: np.ndarray,
    vectors: np.ndarray,
    multiplicity: np.ndarray,
    masses: np.ndarray,
    qpoints: np.ndarray,
) -> np.ndarray:
    """Dynamical matrices D(q) of a periodic crystal, phonopy's convention (Hermitian).

    D_ab(q) = Σ_{s: s2p[s] = b} fc[p2s[a], s] / sqrt(m_a m_b) · (1/M) Σ_images exp(2πi q·v).

    Args:
        fc: (n_rows, n_s, 3, 3) force constants, eV/Å² (full or compact).
        fc_rows: (n_p,) row of ``fc`` holding each primitive atom's constants.
        p2s: (n_p,) supercell index of each primitive atom.
        s2p: (n_s,) primitive index (0..n_p-1) of each supercell atom.
        vectors: (n_s, n_p, max_images, 3) shortest vectors in reduced primitive coordinates.
        multiplicity: (n_s, n_p) number of equally short images.
        masses: (n_p,) amu.
        qpoints: (n_q, 3) reduced coordinates.

    Returns:
        (n_q, 3 n_p, 3 n_p) complex, eV/Å²/amu.

    Runs without the GIL, so callers parallelise over chunks of q-points with threads.
    """
    nb = 3 * p2s.shape[0]
    out = np.empty((qpoints.shape[0], nb, nb), dtype=np.complex128)
    coef = _phase_coefficients(p2s, s2p, multiplicity, masses)
    for iq in range(qpoints.shape[0]):
        _fill_dynamical_matrix(out[iq], qpoints[iq], fc, fc_rows, s2p, vectors, multiplicity, coef)
    return out


@njit(cache=True)
def gaussian_dos(
    frequencies: np.ndarray, weights: np.ndarray, points: np.ndarray, sigma: float
) -> np.ndarray:
    """Phonon DOS with Gaussian smearing σ (THz) at ``points`` (THz), states/THz per primitive cell.

    Σ_qν w_q g(f - f_qν) / Σ_q w_q, integrating to the number of bands.
    """
    out = np.zeros(points.shape[0])
    norm = 1.0 / (sigma * np.sqrt(2.0 * np.pi)) / weights.sum()
    for iq in range(frequencies.shape[0]):
        for nu in range(frequencies.shape[1]):
            f = frequencies[iq, nu]
            for k in range(points.shape[0]):
                x = (points[k] - f) / sigma
                if abs(x) < 10.0:
                    out[k] += weights[iq] * np.exp(-0.5 * x * x)
    return out * norm


@njit(cache=True)
def harmonic_thermal_sums(
    energies: np.ndarray, weights: np.ndarray, temperatures: np.ndarray, kb: float
) -> np.ndarray:
    """Weighted harmonic sums over modes (phonopy's formulas), eV and eV/K per mode weight.

    Args:
        energies: (n_modes,) mode energies hν in eV, only modes to include (ν > cutoff).
        weights: (n_modes,) q-point weight of each mode.
        temperatures: (n_t,) K.
        kb: Boltzmann constant, eV/K.

    Returns:
        (n_t, 3): free energy F (eV, with zero point), entropy S (eV/K), heat capacity Cv (eV/K).
    """
    out = np.zeros((temperatures.shape[0], 3))
    for it in range(temperatures.shape[0]):
        t = temperatures[it]
        for k in range(energies.shape[0]):
            e = energies[k]
            w = weights[k]
            if t <= 0.0:
                out[it, 0] += w * 0.5 * e
                continue
            x = e / (kb * t)
            em = np.exp(-x)
            om = -np.expm1(-x)
            out[it, 0] += w * (kb * t * np.log(om) + 0.5 * e)
            out[it, 1] += w * kb * (x * em / om - np.log(om))
            out[it, 2] += w * kb * x * x * em / (om * om)
    return out
