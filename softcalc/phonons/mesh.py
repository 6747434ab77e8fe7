"""Regular q-point meshes (no symmetry reduction: every grid point, weight 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def mesh_qpoints(mesh: Sequence[int], shift: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Grid q = (n + shift) / mesh in reduced coordinates, n_i in (-mesh_i/2, mesh_i/2].

    With zero shift the grid is Γ-centred (phonopy's ``is_gamma_center=True``); ``shift`` is in
    grid units (0.5 gives a Monkhorst-Pack shift). Order: last axis fastest.

    Returns:
        (prod(mesh), 3) q-points.
    """
    mesh = np.asarray(mesh, dtype=int)
    if mesh.shape != (3,) or (mesh < 1).any():
        raise ValueError(f"mesh must be three positive integers, not {mesh.tolist()}")
    axes = []
    for n, s in zip(mesh, shift):
        k = np.arange(n, dtype=float) + s
        k[k > n / 2] -= n
        axes.append(k / n)
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


@dataclass(frozen=True)
class Mesh:
    """Phonons on a q-point mesh.

    Attributes:
        mesh: grid size (3,).
        qpoints: (n_q, 3) reduced coordinates.
        weights: (n_q,) q-point weights (all 1 without symmetry reduction).
        frequencies: (n_q, n_bands) THz, imaginary as negative.
    """

    mesh: np.ndarray
    qpoints: np.ndarray
    weights: np.ndarray
    frequencies: np.ndarray
