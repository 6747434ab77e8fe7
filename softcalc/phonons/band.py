"""Phonon band structures along q-point paths (explicit, or seekpath's standard path)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from softcalc.phonons.phonopy_io import require_phonopy, to_phonopy_atoms


@dataclass(frozen=True)
class BandStructure:
    """Frequencies along q-point segments.

    Attributes:
        qpoints: per segment, (n_k, 3) reduced coordinates.
        distances: per segment, (n_k,) cumulative path length in 1/Å (no 2π).
        frequencies: per segment, (n_k, n_bands) THz.
        labels: labels of the segment end points (None when not known).
        path_connections: per segment, whether the next segment starts where it ends.
    """

    qpoints: list[np.ndarray]
    distances: list[np.ndarray]
    frequencies: list[np.ndarray]
    labels: list[str] | None
    path_connections: list[bool]


def segment_qpoints(path: Sequence[Sequence[float]], npoints: int = 51) -> list[np.ndarray]:
    """Straight segments between consecutive corners of ``path`` (reduced q), npoints each."""
    corners = np.asarray(path, dtype=float)
    if corners.ndim != 2 or corners.shape[1] != 3 or len(corners) < 2:
        raise ValueError("a band path needs at least two q-points of three reduced coordinates")
    t = np.linspace(0.0, 1.0, npoints)[:, None]
    return [a + t * (b - a) for a, b in zip(corners[:-1], corners[1:])]


def seekpath_qpoints(primitive: Atoms, npoints: int = 51) -> tuple[list[np.ndarray], list[str], list[bool]]:
    """seekpath's standard path for ``primitive``, through phonopy's helper (as phonopy's auto band).

    As in phonopy, the path is expressed in seekpath's standard primitive cell; it matches the
    given primitive cell when that cell is already standardised.
    """
    require_phonopy()
    from phonopy.phonon.band_structure import get_band_qpoints_by_seekpath

    bands, labels, connections = get_band_qpoints_by_seekpath(to_phonopy_atoms(primitive), npoints)
    return [np.asarray(b, dtype=float) for b in bands], list(labels), list(connections)


def band_structure(
    frequencies: Callable[[np.ndarray], np.ndarray],
    primitive: Atoms,
    segments: list[np.ndarray],
    labels: list[str] | None = None,
    path_connections: list[bool] | None = None,
) -> BandStructure:
    """Evaluate ``frequencies(qpoints)`` (THz) along ``segments`` with path distances."""
    reciprocal = np.linalg.inv(np.asarray(primitive.cell)).T  # rows b_i with a_i·b_j = δ_ij
    distances, freqs = [], []
    start = 0.0
    for seg in segments:
        step = np.linalg.norm(np.diff(seg @ reciprocal, axis=0), axis=1)
        d = start + np.concatenate([[0.0], np.cumsum(step)])
        distances.append(d)
        start = d[-1]
        freqs.append(frequencies(seg))
    if path_connections is None:
        path_connections = [bool(np.allclose(a[-1], b[0])) for a, b in zip(segments[:-1], segments[1:])] + [
            False
        ]
    return BandStructure(segments, distances, freqs, labels, path_connections)
