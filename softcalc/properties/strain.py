"""Energy-strain curves of strained bulk cells: which frames form a strain mode, and their curvature.

A strain mode is a set of cells deformed along one pattern by different amounts, named in the frame
description ("mode 3, strain -0.02", as in mlearn). Its energy per atom E/N (eV/atom) is fitted by a
quadratic in the strain ε; the curvature d²(E/N)/dε² (eV/atom) measures the stiffness of the potential
energy surface along the mode, so model curvature / DFT curvature is the energy-strain softening of a
model. A fit needs at least :data:`MIN_STRAINS` distinct strains. The unstrained (ground-state) cell,
when the data hold one, is the point ε = 0 of every mode; without it, the unstrained energy per atom
is the shared intercept of one joint fit of all modes.

Whether a mode is a normal or a shear strain is read from the cells themselves: the Green-Lagrange
strain η = ½(FᵀF − I) between the mode's two most distant cells is diagonal for a normal strain.
:func:`strain_curves` picks a material's modes from its frames and says why any mode is left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from softcalc.data.dataset import ForceFrame
from softcalc.errors import DataError
from softcalc.properties.surfaces import same_stoichiometry

#: fewest distinct strains a quadratic fit of E/N accepts (three determine a parabola)
MIN_STRAINS = 3
#: "mode 3", "mode=3" in a frame description
_MODE = re.compile(r"\bmode\s*[=:]?\s*(\d+)", re.IGNORECASE)
#: "Ground state crystal", "ground_state" in a structure group or description
_GROUND_STATE = re.compile(r"ground[\s_-]*state", re.IGNORECASE)


def strain_mode(description: str) -> str | None:
    """``"mode k"`` named in a frame description, None when it names none."""
    match = _MODE.search(description)
    return None if match is None else f"mode {int(match.group(1))}"


def is_ground_state(group: str, description: str) -> bool:
    """True for the unstrained reference crystal ("Ground state" in its group or description)."""
    return bool(_GROUND_STATE.search(group) or _GROUND_STATE.search(description))


@dataclass(frozen=True)
class QuadraticFit:
    """E/N = energy0 + slope·ε + ½·curvature·ε², least squares.

    Attributes:
        curvature: d²(E/N)/dε² (eV/atom).
        energy0: E/N at ε = 0 (eV/atom).
        slope: d(E/N)/dε at ε = 0 (eV/atom).
        n_points: frames fitted; n_strains: distinct strains among them.
    """

    curvature: float
    energy0: float
    slope: float
    n_points: int
    n_strains: int


def distinct_strains(strains: Sequence[float] | np.ndarray) -> int:
    """Number of distinct strains (equal to 1e-10)."""
    return len(np.unique(np.round(np.asarray(strains, dtype=float), 10)))


def fit_quadratic(strains: np.ndarray, energies: np.ndarray) -> QuadraticFit:
    """Quadratic fit of energies per atom (eV/atom) against strains (dimensionless).

    Raises:
        DataError: fewer than :data:`MIN_STRAINS` distinct strains.
    """
    x, y = np.asarray(strains, dtype=float), np.asarray(energies, dtype=float)
    n_strains = distinct_strains(x)
    if n_strains < MIN_STRAINS:
        raise DataError(
            f"{n_strains} distinct strain(s): a quadratic energy-strain fit needs at least {MIN_STRAINS}."
        )
    c2, c1, c0 = np.polyfit(x, y, 2)
    return QuadraticFit(float(2.0 * c2), float(c0), float(c1), len(x), n_strains)


def zero_strain_energy(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> float:
    """Unstrained energy per atom (eV/atom): the shared intercept of one quadratic fit of every mode.

    Args:
        curves: mode -> (strains, energies per atom in eV/atom); every mode is fitted with its own
            linear and quadratic terms and all share the value at ε = 0.

    Raises:
        DataError: no curves, or a mode with fewer than :data:`MIN_STRAINS` distinct strains.
    """
    if not curves:
        raise DataError("no energy-strain curve to extrapolate the unstrained energy from.")
    rows, values = [], []
    for k, (mode, (strains, energies)) in enumerate(curves.items()):
        x = np.asarray(strains, dtype=float)
        if distinct_strains(x) < MIN_STRAINS:
            raise DataError(f"{mode}: fewer than {MIN_STRAINS} distinct strains for the joint fit.")
        block = np.zeros((len(x), 1 + 2 * len(curves)))
        block[:, 0] = 1.0
        block[:, 1 + 2 * k] = x
        block[:, 2 + 2 * k] = x**2
        rows.append(block)
        values.append(np.asarray(energies, dtype=float))
    coef, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(values), rcond=None)
    return float(coef[0])


def deformation_kind(cell_a: np.ndarray, cell_b: np.ndarray) -> str:
    """``"normal"`` or ``"shear"``: the larger part of the Green-Lagrange strain from cell a to cell b.

    Cells are (3, 3) with lattice vectors as rows (Å). With b = a·Fᵀ, η = ½(FᵀF − I); the strain is
    normal when its largest diagonal component exceeds its largest off-diagonal one.
    """
    f = np.linalg.solve(np.asarray(cell_a, dtype=float), np.asarray(cell_b, dtype=float)).T
    eta = 0.5 * (f.T @ f - np.eye(3))
    diagonal = float(np.abs(np.diag(eta)).max())
    off_diagonal = float(np.abs(eta - np.diag(np.diag(eta))).max())
    return "shear" if off_diagonal > diagonal else "normal"


@dataclass(frozen=True)
class StrainCurve:
    """One strain mode: its frames (sorted by strain), whether the ground state adds ε = 0, its kind.

    Attributes:
        frames: indices of the mode's frames in the frame list, sorted by strain.
        with_bulk: the ground-state frame (same stoichiometry) is the point ε = 0 of the curve.
        kind: ``normal``, ``shear`` (:func:`deformation_kind` of its two extreme cells) or ``unknown``
            (the extreme cells differ in size).
    """

    frames: list[int]
    with_bulk: bool
    kind: str


def strain_curves(
    frames: Sequence[ForceFrame], bulk: int | None, skipped: dict[str, str]
) -> dict[str, StrainCurve]:
    """The strain modes of ``frames`` that a curvature can be fitted to, sorted by mode number.

    Frames with a mode in their description, a strain and a DFT energy count; ``bulk`` is the index
    of the ground-state frame (None: none). Modes that cannot be fitted (mixed compositions, fewer than
    :data:`MIN_STRAINS` strains) and strain frames without energy are entered in ``skipped`` (what ->
    why), and so is ``strain`` when no mode is left.
    """
    members: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        mode = strain_mode(f.label)
        if mode is None or f.strain is None:
            continue
        if f.energy is None:
            skipped[f"{mode}: {f.label}"] = "no DFT energy"
        else:
            members.setdefault(mode, []).append(i)
    if not members:
        skipped["strain"] = "no strain frames with energies (descriptions 'mode k, strain x')"
        return {}
    curves = {}
    for mode in sorted(members, key=lambda m: int(m.split()[-1])):
        idx = sorted(members[mode], key=lambda i: frames[i].strain)
        points = [(frames[i].strain, frames[i].atoms) for i in idx]
        if not all(same_stoichiometry(a, points[0][1]) for _, a in points):
            skipped[mode] = "mixed compositions among its frames"
            continue
        with_bulk = bulk is not None and same_stoichiometry(frames[bulk].atoms, points[0][1])
        if with_bulk:
            points = sorted([*points, (0.0, frames[bulk].atoms)], key=lambda p: p[0])
        n = distinct_strains([s for s, _ in points])
        if n < MIN_STRAINS:
            skipped[mode] = f"{len(idx)} frame(s), {n} distinct strain(s): a curvature needs {MIN_STRAINS}"
            continue
        low, high = points[0][1], points[-1][1]
        kind = deformation_kind(low.cell, high.cell) if len(low) == len(high) else "unknown"
        curves[mode] = StrainCurve(idx, with_bulk, kind)
    if not curves:
        skipped["strain"] = "no strain mode has enough distinct strains (see the skipped modes)"
    return curves
