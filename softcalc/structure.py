"""Checks a structure before a model evaluates it.

Besides finite positions, a valid cell and elements the model covers, :func:`check_structure` refuses
geometries that no unit convention makes physical before a model builds its graph: a gross
mistake in a fraction of a millisecond, a valid structure in about 1 ms per few hundred atoms
(10 ms for 4000). A cell scaled by a unit mistake otherwise fails slowly or not at all: ×0.05 made
CHGNet run for over ten minutes, ×1e4 made M3GNet ask numpy for 686 GiB. The bounds:

- number density of a 3D-periodic cell at most :data:`MAX_DENSITY` = 1.0 atoms/Å³. Diamond, the
  densest solid at ambient pressure, holds 0.18; metallic hydrogen near 500 GPa, the densest matter
  a simulation is likely to meet, about 0.7. A length given in nm instead of Å gives ~50, a cell
  scaled by 0.05 several hundred.
- volume per atom of a 3D-periodic cell at most :data:`MAX_VOLUME_PER_ATOM` = 1e6 Å³ (a 100 Å cube
  per atom). An isolated atom or molecule in a 20-50 Å box stays far below; lengths 100 times too
  large (pm read as Å) give 1e7 and more, the ×1e4 cell 1e13. Slabs, wires and molecules without
  periodicity have no such bound: their vacuum is intended.
- perpendicular height of the cell along every periodic axis at least :data:`MIN_DISTANCE`: no
  crystal repeats in less than a bond length (and the neighbour search below stays small).
- distance between any two atoms, periodic images included, at least :data:`MIN_DISTANCE` = 0.5 Å,
  the bound the MD guard (:mod:`softcalc.md.safety`) uses: H2, the shortest bond, is 0.74 Å.
- local density at most :data:`MAX_DENSITY`, measured as the mean number of neighbours within
  :data:`PROBE_RADIUS` = 3 Å. It bounds the neighbours a model gathers within its cutoff r_c:
  about ρ (4/3)π r_c³, so at most 524 per atom at r_c = 5 Å and 905 at 6 Å. This catches what the
  cell's density cannot: clusters and slabs squeezed by a unit mistake, whose atoms are more than
  0.5 Å apart but far denser than any solid. Atoms at least :data:`PACKED_DISTANCE` = 1.12 Å apart
  cannot be denser than 1.0 atoms/Å³ (close packing of spheres of that diameter), so the count is
  made only when some pair is closer. Surface atoms have fewer neighbours, so the mean understates
  the density of a small squeezed cluster; such a cluster cannot overload a model (N - 1 neighbours
  at most), a large one is caught.

Errors name the measured value and the bound, and suggest the likely mistake: the factor by which
the lengths look scaled against a typical solid (:data:`TYPICAL_VOLUME_PER_ATOM`, nearest neighbours
at the sum of covalent radii), matched to nm/Å (×10), bohr/Å (×1.89) and pm/Å (×100) when close, and
fractional coordinates given as Cartesian when every position lies within [0, 1] Å of a larger cell.
The neighbour search uses a k-d tree over the atoms and their periodic images near the cell: O(N log N).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from scipy.spatial import cKDTree

from softcalc.errors import InvalidStructureError, UnsupportedElementsError
from softcalc.info import ModelInfo

#: most atoms per Å³ (3D-periodic cells, and the local density of any structure)
MAX_DENSITY = 1.0
#: most Å³ per atom of a 3D-periodic cell
MAX_VOLUME_PER_ATOM = 1e6
#: shortest distance in Å between two atoms, periodic images included; also the thinnest periodic cell
MIN_DISTANCE = 0.5
#: radius in Å within which neighbours are counted to measure the local density
PROBE_RADIUS = 3.0
#: atoms at least this far apart (Å) cannot exceed MAX_DENSITY: close packing, √2/d³ atoms/Å³
PACKED_DISTANCE = (math.sqrt(2.0) / MAX_DENSITY) ** (1.0 / 3.0)
#: Å³ per atom of a typical solid (Si 20, NaCl 22, Cu 12, MgO 9.5), to say how far a cell looks scaled
TYPICAL_VOLUME_PER_ATOM = 15.0
#: common length-unit mistakes: the factor by which they scale the lengths, and what happened
UNIT_MISTAKES = {
    0.1: "lengths in nm read as Å (1 nm = 10 Å)",
    1 / 1.8897: "lengths in Å converted as if they were bohr (×0.529)",
    1.8897: "lengths in bohr read as Å (1 bohr = 0.529 Å)",
    10.0: "lengths in Å converted as if they were nm (×10)",
    100.0: "lengths in pm read as Å (1 pm = 0.01 Å)",
}


def check_structure(atoms: Atoms, info: ModelInfo | None = None) -> None:
    """Raise a clear error for structures no model can evaluate.

    Checks: at least one atom; finite positions and cell; a non-degenerate cell along periodic
    directions; every element covered by the model (when ``info`` is given and lists elements);
    a physical geometry (density, cell height, interatomic distances, local density; see the module
    docstring for the bounds).

    Raises:
        InvalidStructureError: the structure cannot or should not be evaluated; the message names the
            problem, the measured value and bound, and the likely unit mistake.
        UnsupportedElementsError: elements the model was not trained on.
    """
    if len(atoms) == 0:
        raise InvalidStructureError("the structure has no atoms. Fix: pass a structure with atoms.")
    pos = atoms.positions
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise InvalidStructureError(
            f"positions of atom(s) {bad[:10].tolist()} are NaN or infinite. "
            "Fix: check the input file or the previous MD/optimisation step that produced them."
        )
    cell = np.asarray(atoms.cell)
    if not np.isfinite(cell).all():
        raise InvalidStructureError("the cell contains NaN or infinite entries. Fix: set a valid cell.")
    if atoms.pbc.any():
        lengths = atoms.cell.lengths()
        degenerate = [ax for ax, (p, n) in enumerate(zip(atoms.pbc, lengths)) if p and n < 1e-6]
        if degenerate:
            raise InvalidStructureError(
                f"the cell vector(s) along periodic axis {degenerate} have zero length. "
                "Fix: set the cell, or turn periodicity off along those axes (atoms.pbc)."
            )
        if atoms.pbc.all() and abs(atoms.cell.volume) < 1e-6:
            raise InvalidStructureError(
                "the periodic cell has zero volume. Fix: set three linearly independent cell vectors."
            )
    if info is not None and info.elements:
        missing = set(atoms.get_chemical_symbols()) - set(info.elements)
        if missing:
            raise UnsupportedElementsError(info.name, sorted(missing))
    check_geometry(atoms, info.cutoff if info is not None else None)


def check_geometry(atoms: Atoms, cutoff: float | None = None) -> None:
    """Refuse geometries outside physical bounds (see the module docstring); ``cutoff`` (Å) is the
    model's, used only to say how many neighbours it would have gathered.

    Assumes finite positions and a non-degenerate cell (:func:`check_structure` checks both first).
    """
    n = len(atoms)
    if atoms.pbc.all():
        per_atom = abs(atoms.cell.volume) / n
        problem = ""
        if 1 / per_atom > MAX_DENSITY:
            problem = (
                f"far too small for its atoms: {1 / per_atom:.3g} atoms/Å³ ({per_atom:.3g} Å³ per atom), "
                f"above the bound of {MAX_DENSITY} atoms/Å³ (diamond holds 0.18, compressed hydrogen ~0.7). "
            )
        elif per_atom > MAX_VOLUME_PER_ATOM:
            problem = (
                f"far too large for its atoms: {per_atom:.3g} Å³ per atom, above the bound of "
                f"{MAX_VOLUME_PER_ATOM:.0e} Å³ (a {MAX_VOLUME_PER_ATOM ** (1 / 3):.0f} Å cube per atom). "
            )
        if problem:
            molecule = " An isolated molecule needs no periodic box: set atoms.pbc = False."
            raise InvalidStructureError(
                "the periodic cell is " + problem
                + _scale_hint(atoms, (per_atom / TYPICAL_VOLUME_PER_ATOM) ** (1 / 3))
                + (molecule if per_atom > MAX_VOLUME_PER_ATOM else "")
            )
    points, owner = _with_images(atoms, PROBE_RADIUS)
    if len(points) < 2:  # one atom and no periodic image near it
        return
    tree = cKDTree(points)
    # only distances below PACKED_DISTANCE matter: the bound prunes the search (others come back inf)
    dist, index = tree.query(points[:n], k=2, distance_upper_bound=PACKED_DISTANCE)
    nearest, partner = dist[:, 1], owner[np.minimum(index[:, 1], len(owner) - 1)]
    i = int(np.argmin(nearest))
    if nearest[i] < MIN_DISTANCE:
        j = int(partner[i])
        pair = f"atom {i} ({atoms.symbols[i]}) and " + (
            "its own periodic image" if j == i else f"atom {j} ({atoms.symbols[j]})"
        )
        bond = covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]]
        raise InvalidStructureError(
            f"atoms overlap: {pair} are {nearest[i]:.3g} Å apart, below the bound of {MIN_DISTANCE} Å "
            f"(H2, the shortest bond, is 0.74 Å; a {atoms.symbols[i]}-{atoms.symbols[j]} bond is about "
            f"{bond:.2f} Å). "
            + (
                _scale_hint(atoms, nearest[i] / bond, "that bond")
                if nearest[i] > 1e-6
                else "They sit on the same position: an atom listed twice? Fix: remove the duplicate."
            )
        )
    if nearest[i] >= PACKED_DISTANCE:
        return
    counts = tree.query_ball_point(points[:n], PROBE_RADIUS, return_length=True) - 1
    density = counts.mean() / (4 / 3 * math.pi * PROBE_RADIUS**3)
    if density > MAX_DENSITY:
        sphere = 4 / 3 * math.pi * (cutoff or 0.0) ** 3  # Å³ within the model's cutoff
        within = (
            f"; the model would gather ≈{density * sphere:.0f} neighbours per atom within its {cutoff:g} Å "
            f"cutoff (the bound allows {MAX_DENSITY * sphere:.0f})"
            if cutoff
            else ""
        )
        raise InvalidStructureError(
            f"the atoms are packed far more densely than in any solid: {counts.mean():.0f} neighbours "
            f"within {PROBE_RADIUS} Å on average, a local density of {density:.3g} atoms/Å³, above the "
            f"bound of {MAX_DENSITY} atoms/Å³ (diamond holds 0.18){within}. "
            + _scale_hint(atoms, (density * TYPICAL_VOLUME_PER_ATOM) ** (-1 / 3))
        )


def _with_images(atoms: Atoms, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The atoms' positions (wrapped along periodic axes) followed by every periodic image that lies
    within ``radius`` (Å) of the cell, and the atom each point is an image of.

    Works in the basis of the periodic cell vectors completed by unit vectors orthogonal to them, so
    every pair of points closer than ``radius`` is among these points whatever the periodicity.
    """
    pbc = atoms.pbc
    n = len(atoms)
    if not pbc.any():
        return atoms.positions, np.arange(n)
    periodic = np.asarray(atoms.cell)[pbc]
    p = len(periodic)
    _, singular, vt = np.linalg.svd(periodic)
    if singular.min() < 1e-6 * singular.max():
        raise InvalidStructureError(
            "the periodic cell vectors are linearly dependent. Fix: set independent cell vectors, or "
            "turn periodicity off along the dependent axes (atoms.pbc)."
        )
    basis = np.vstack([periodic, vt[p:]])  # periodic vectors first, then their orthonormal complement
    frac = np.linalg.solve(basis.T, atoms.positions.T).T
    frac[:, :p] %= 1.0
    heights = 1.0 / np.linalg.norm(np.linalg.inv(basis), axis=0)[:p]  # lattice plane spacings
    thin = int(np.argmin(heights))
    if heights[thin] < MIN_DISTANCE:
        raise InvalidStructureError(
            f"the periodic cell is only {heights[thin]:.3g} Å thick along axis {np.flatnonzero(pbc)[thin]} "
            f"(perpendicular height), below the bound of {MIN_DISTANCE} Å: atoms would overlap their own "
            "periodic images. "
            + _scale_hint(atoms, heights[thin] / TYPICAL_VOLUME_PER_ATOM ** (1 / 3), "a 2.5 Å spacing")
        )
    margin = radius / heights
    points, owner = frac, np.arange(n)
    for k in range(p):  # images along each periodic axis in turn, so those across edges and corners too
        parts, owners = [points], [owner]
        for shift in range(1, int(np.ceil(margin[k])) + 1):
            for sign in (shift, -shift):
                moved = points[:, k] + sign
                keep = (moved >= -margin[k]) & (moved <= 1.0 + margin[k])
                image = points[keep]
                image[:, k] = moved[keep]
                parts.append(image)
                owners.append(owner[keep])
        points, owner = np.concatenate(parts), np.concatenate(owners)
    return points @ basis, owner


def _scale_hint(atoms: Atoms, factor: float, against: str = "a typical solid") -> str:
    """The likely mistake behind lengths that look ``factor`` times their usual size (``against`` what
    they were compared with), and the fix."""
    hints = []
    longest = atoms.cell.lengths().max()
    if len(atoms) > 1 and longest > 2.0 and np.all((atoms.positions > -0.01) & (atoms.positions < 1.01)):
        hints.append(
            f"fractional coordinates given as Cartesian (every position lies within [0, 1] Å of a "
            f"{longest:.3g} Å cell; fix: atoms.set_scaled_positions(...))?"
        )
    known = [text for scale, text in UNIT_MISTAKES.items() if abs(math.log(factor / scale)) < math.log(1.3)]
    hints.append(
        f"lengths look scaled by ≈×{factor:.2g} against {against}: "
        + (f"{known[0]}?" if known else "a length-unit mistake or a wrongly scaled cell?")
    )
    return (
        "Likely cause: " + " Or ".join(hints) + " Fix: give positions and cell in Å "
        "(1 nm = 10 Å, 1 bohr = 0.529 Å) and check the units of the file or code that made them."
    )


def structure_key(atoms: Atoms, decimals: int | None = None) -> str:
    """SHA-1 of atomic numbers, positions, cell and periodicity: the identity of a structure.

    With ``decimals``, positions and cell (Å) are rounded first, so that a copy written to another
    format (extxyz with 8 decimals, JSON) keeps its identity; without, the bytes are compared exactly.
    """
    digest = hashlib.sha1()
    arrays = [atoms.positions, np.asarray(atoms.cell)]
    if decimals is not None:
        arrays = [np.round(a, decimals) + 0.0 for a in arrays]  # + 0.0 turns -0.0 into 0.0
    for array in (atoms.numbers.astype(np.int64), *arrays, atoms.pbc):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
