"""Trajectory analysis: velocity autocorrelation and vibrational DOS, mean-square displacement, RDF.

Hot loops are Numba kernels; averages run over atoms and over all time origins.
Units: time in fs, frequency in THz, lengths in Å.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from softcalc.md.errors import TrajectoryAnalysisError


@numba.njit(cache=True, parallel=True)
def _autocorrelation(x: np.ndarray, weights: np.ndarray, max_lag: int) -> np.ndarray:  # pragma: no cover
    """Σ_i w_i <x_i(t0)·x_i(t0+τ)>_t0 for τ < max_lag; x has shape (frames, atoms, 3)."""
    n_frames, n_atoms, _ = x.shape
    out = np.zeros(max_lag)
    for lag in numba.prange(max_lag):
        total = 0.0
        for t0 in range(n_frames - lag):
            for i in range(n_atoms):
                w = weights[i]
                total += w * (x[t0, i, 0] * x[t0 + lag, i, 0] + x[t0, i, 1] * x[t0 + lag, i, 1]
                              + x[t0, i, 2] * x[t0 + lag, i, 2])
        out[lag] = total / (n_frames - lag)
    return out


@numba.njit(cache=True, parallel=True)
def _msd(x: np.ndarray, max_lag: int) -> np.ndarray:  # pragma: no cover
    """<|x_i(t0+τ) - x_i(t0)|²>_{i,t0} for τ < max_lag; x (frames, atoms, 3) unwrapped."""
    n_frames, n_atoms, _ = x.shape
    out = np.zeros(max_lag)
    for lag in numba.prange(1, max_lag):
        total = 0.0
        for t0 in range(n_frames - lag):
            for i in range(n_atoms):
                for k in range(3):
                    d = x[t0 + lag, i, k] - x[t0, i, k]
                    total += d * d
        out[lag] = total / ((n_frames - lag) * n_atoms)
    return out


def vacf(velocities: np.ndarray, masses: np.ndarray | None = None, max_lag: int | None = None) -> np.ndarray:
    """Normalised velocity autocorrelation C(τ)/C(0), mass-weighted when ``masses`` are given.

    Args:
        velocities: (frames, atoms, 3), any unit.
        masses: (atoms,) weights (amu) or None for equal weights.
        max_lag: number of lags (default: half the frames).
    """
    v = np.ascontiguousarray(velocities, dtype=np.float64)
    if v.ndim != 3 or v.shape[0] < 4:
        raise TrajectoryAnalysisError(
            f"velocities must have shape (frames >= 4, atoms, 3), got {v.shape}. "
            "Fix: analyse a trajectory with at least 4 stored frames."
        )
    w = np.ones(v.shape[1]) if masses is None else np.asarray(masses, dtype=np.float64)
    max_lag = max_lag or v.shape[0] // 2
    c = _autocorrelation(v, w, min(max_lag, v.shape[0] - 1))
    return c / c[0]


def vdos(
    velocities: np.ndarray, dt_fs: float, masses: np.ndarray | None = None, max_lag: int | None = None,
    pad: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Vibrational density of states from the (Hann-windowed) Fourier transform of the VACF.

    Args:
        velocities: (frames, atoms, 3); dt_fs: time between frames in fs.
        masses: mass weights (amu), as in the classical phonon DOS; None for equal weights.
        max_lag: VACF length (default half the frames); pad: zero-padding factor of the transform.

    Returns:
        (frequencies in THz, DOS normalised to unit area over THz).
    """
    c = vacf(velocities, masses, max_lag)
    window = np.hanning(2 * len(c) - 1)[len(c) - 1:]
    symmetric = np.concatenate([c * window, (c * window)[:0:-1]])
    n = pad * len(symmetric)
    spectrum = np.fft.rfft(symmetric, n=n).real
    freq = np.fft.rfftfreq(n, d=dt_fs * 1e-15) * 1e-12
    spectrum = np.clip(spectrum, 0.0, None)
    return freq, spectrum / np.trapezoid(spectrum, freq)


def unwrap(positions: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Positions made continuous across periodic boundaries (minimum-image steps between frames)."""
    pos = np.asarray(positions, dtype=np.float64)
    out = np.empty_like(pos)
    out[0] = pos[0]
    for t in range(1, len(pos)):
        step = pos[t] - pos[t - 1]
        frac = np.linalg.solve(cells[t].T, step.T).T
        out[t] = out[t - 1] + (frac - np.round(frac)) @ cells[t]
    return out


def msd(positions: np.ndarray, cells: np.ndarray | None = None, max_lag: int | None = None) -> np.ndarray:
    """Mean-square displacement in Å² for lags 0..max_lag-1 (in frames), averaged over atoms and origins.

    Positions (frames, atoms, 3) are unwrapped with ``cells`` (frames, 3, 3) when given.
    """
    x = unwrap(positions, cells) if cells is not None else np.asarray(positions, dtype=np.float64)
    max_lag = max_lag or len(x) // 2
    return _msd(np.ascontiguousarray(x), min(max_lag, len(x)))


def rdf(images: Sequence[Atoms], r_max: float, n_bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function g(r) averaged over periodic ``images``.

    Returns (bin centres in Å, g(r)); g → 1 for an uncorrelated structure.
    """
    edges = np.linspace(0.0, r_max, n_bins + 1)
    counts = np.zeros(n_bins)
    density_pairs = 0.0
    for atoms in images:
        d = neighbor_list("d", atoms, r_max)
        counts += np.histogram(d, bins=edges)[0]
        density_pairs += len(atoms) * len(atoms) / atoms.get_volume()
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (shell * density_pairs)
