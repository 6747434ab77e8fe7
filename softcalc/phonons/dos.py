"""Phonon density of states by Gaussian smearing on a q-point mesh (no tetrahedron method)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from softcalc.phonons import kernels
from softcalc.phonons.mesh import Mesh


@dataclass(frozen=True)
class Dos:
    """Total phonon DOS.

    Attributes:
        frequency_points: (n,) THz.
        dos: (n,) states/THz per primitive cell; integrates to the number of bands (3 n_p).
        sigma: Gaussian standard deviation, THz.
    """

    frequency_points: np.ndarray
    dos: np.ndarray
    sigma: float


def total_dos(mesh: Mesh, sigma: float | None = None, frequency_points: np.ndarray | None = None) -> Dos:
    """Gaussian-smeared total DOS from mesh frequencies.

    Args:
        mesh: frequencies and weights on a q-point mesh.
        sigma: standard deviation in THz; default (f_max - f_min)/100 as phonopy.
        frequency_points: where to evaluate (THz); default 201 points from f_min - 10σ to f_max + 10σ.
    """
    f = mesh.frequencies
    f_min, f_max = float(f.min()), float(f.max())
    sigma = (f_max - f_min) / 100.0 if sigma is None else float(sigma)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive (THz), not {sigma}")
    if frequency_points is None:
        frequency_points = np.linspace(f_min - 10 * sigma, f_max + 10 * sigma, 201)
    points = np.ascontiguousarray(frequency_points, dtype=float)
    dos = kernels.gaussian_dos(np.ascontiguousarray(f), mesh.weights.astype(float), points, sigma)
    return Dos(points, dos, sigma)
