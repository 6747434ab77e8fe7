"""Surface energies of slabs: which lattice direction holds the vacuum, the surface area, and γ.

γ = (E_slab − n·ε_bulk) / (2A) in eV/Å², for a slab of n atoms whose composition is a multiple of the
bulk's, ε_bulk the bulk energy per atom (eV/atom) and A the area (Å²) of the cell face spanned by the
two in-plane lattice vectors; the factor 2 counts the slab's two surfaces. The vacuum direction is the
lattice vector along which the atoms leave the widest empty layer, measured perpendicular to the plane
of the other two vectors; it must be at least :data:`MIN_VACUUM` wide, and only one direction may be.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from softcalc.data.dataset import ForceFrame
from softcalc.errors import DataError

#: frames of a structure group whose name contains this (case-insensitive) are slabs
SURFACE_GROUP = "surface"
#: an empty layer at least this wide (Å) is vacuum; bulk crystals leave at most ~2.5 Å between
#: atomic planes (the mlearn slabs have at least 11 Å of vacuum, their bulk cells at most 2.4 Å)
MIN_VACUUM = 5.0


class SlabGeometryError(DataError):
    """A structure that is not a slab: no vacuum, vacuum along several directions, or no 3D cell."""


@dataclass(frozen=True)
class SlabGeometry:
    """Where a slab's surfaces are.

    Attributes:
        axis: index (0, 1, 2) of the lattice vector that crosses the vacuum.
        area: area of one surface, |a_i × a_j| of the two in-plane lattice vectors (Å²).
        vacuum: width of the empty layer along ``axis``, perpendicular to the surface (Å).
    """

    axis: int
    area: float
    vacuum: float


def vacuum_gaps(atoms: Atoms) -> np.ndarray:
    """Widest empty layer (Å) along each lattice vector, perpendicular to the plane of the other two.

    The gap is the largest spacing between consecutive fractional coordinates (periodic wrap
    included) times the interplanar distance V / |a_j × a_k|.

    Raises:
        SlabGeometryError: the cell has no volume (a structure without a 3D cell).
    """
    cell = np.asarray(atoms.cell, dtype=float)
    volume = abs(float(np.linalg.det(cell)))
    if volume < 1e-9:
        raise SlabGeometryError(
            f"{atoms.get_chemical_formula()} has no 3D cell (volume {volume:.3g} Å³): a slab needs its "
            "three lattice vectors, the one across the vacuum included. Fix: give the slab with its cell."
        )
    scaled = np.sort(np.mod(atoms.get_scaled_positions(wrap=False), 1.0), axis=0)
    wrapped = np.vstack([scaled, scaled[:1] + 1.0])
    widest = np.diff(wrapped, axis=0).max(axis=0)
    spacing = volume / np.linalg.norm(np.cross(np.roll(cell, -1, axis=0), np.roll(cell, -2, axis=0)), axis=1)
    return widest * spacing


def slab_geometry(atoms: Atoms, min_vacuum: float = MIN_VACUUM) -> SlabGeometry:
    """The vacuum direction, surface area and vacuum width of a slab (see the module docstring).

    Raises:
        SlabGeometryError: no direction, or more than one, has at least ``min_vacuum`` Å of vacuum.
    """
    gaps = vacuum_gaps(atoms)
    open_axes = np.flatnonzero(gaps >= min_vacuum)
    widths = ", ".join(f"{g:.1f}" for g in gaps)
    if len(open_axes) == 0:
        raise SlabGeometryError(
            f"{atoms.get_chemical_formula()} has no vacuum: the widest empty layers along its lattice "
            f"vectors are {widths} Å, below {min_vacuum} Å. A surface energy needs a slab with vacuum."
        )
    if len(open_axes) > 1:
        raise SlabGeometryError(
            f"{atoms.get_chemical_formula()} has vacuum along {len(open_axes)} lattice vectors ({widths} Å): "
            "a wire or a cluster, not a slab."
        )
    axis = int(open_axes[0])
    cell = np.asarray(atoms.cell, dtype=float)
    area = float(np.linalg.norm(np.cross(cell[(axis + 1) % 3], cell[(axis + 2) % 3])))
    return SlabGeometry(axis=axis, area=area, vacuum=float(gaps[axis]))


def same_stoichiometry(a: Atoms, b: Atoms) -> bool:
    """True when the composition of ``a`` is a multiple of that of ``b`` (equal element fractions)."""
    count_a, count_b = Counter(a.get_chemical_symbols()), Counter(b.get_chemical_symbols())
    return set(count_a) == set(count_b) and all(count_a[z] * len(b) == count_b[z] * len(a) for z in count_a)


def surface_energy(
    slab_energy: float | np.ndarray, n_atoms: int | np.ndarray, bulk_energy: float, area: float | np.ndarray
) -> float | np.ndarray:
    """γ = (E_slab − n·ε_bulk) / (2A) in eV/Å² (E_slab eV, ε_bulk eV/atom, A Å²); arrays broadcast."""
    return (slab_energy - n_atoms * bulk_energy) / (2.0 * area)


def find_slabs(
    frames: Sequence[ForceFrame], bulk: Atoms | None, skipped: dict[str, str], min_vacuum: float = MIN_VACUUM
) -> dict[int, SlabGeometry]:
    """Index -> geometry of the frames of a surface group that give a surface energy.

    ``bulk`` is the reference crystal (None: there is none, and no slab gives γ). A slab without a DFT
    energy, with a composition that is not a multiple of the bulk's, or without vacuum along exactly
    one lattice vector is entered in ``skipped`` (``surface LABEL`` -> why), and so is ``surfaces`` when
    no slab is left.
    """
    candidates = [i for i, f in enumerate(frames) if SURFACE_GROUP in f.group.lower()]
    if not candidates:
        skipped["surfaces"] = f"no frames of a {SURFACE_GROUP!r} structure group"
        return {}
    if bulk is None:
        skipped["surfaces"] = (
            "no bulk reference: no ground-state frame and no strain mode to extrapolate the unstrained energy"
        )
        return {}
    slabs = {}
    for i in candidates:
        f = frames[i]
        if f.energy is None:
            skipped[f"surface {f.label}"] = "no DFT energy"
        elif not same_stoichiometry(f.atoms, bulk):
            skipped[f"surface {f.label}"] = (
                f"composition {f.atoms.get_chemical_formula()} is not a multiple of the bulk's "
                f"({bulk.get_chemical_formula()}): γ with one ε_bulk needs a stoichiometric slab"
            )
        else:
            try:
                slabs[i] = slab_geometry(f.atoms, min_vacuum)
            except SlabGeometryError as exc:
                skipped[f"surface {f.label}"] = str(exc)
    if not slabs:
        skipped["surfaces"] = "no slab gives a surface energy (see the skipped surfaces)"
    return slabs
