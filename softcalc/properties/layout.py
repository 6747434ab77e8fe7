"""Where a list of DFT frames gives energy-derived properties, and those properties from per-frame energies.

:func:`locate_properties` finds the ground-state frame (a frame with a DFT energy and "Ground state" in
its group or description), the strain modes a curvature can be fitted to and the slabs that give a surface
energy. The value functions then take one energy per frame (eV; DFT's or any model's on the same
geometries) and return:

- :func:`strain_energy_curves`: per mode, (strains, E/N in eV/atom), the ground state at ε = 0 where it
  belongs to the mode;
- :func:`mean_curvature_ratios`: the curvature ratio model / DFT of each mode averaged over the normal,
  the shear and all modes;
- :func:`bulk_energy`: ε_bulk (eV/atom), the ground state's energy per atom, else the zero-strain value of
  the joint quadratic fit of the strain modes;
- :func:`surface_energies`: γ = (E_slab − n·ε_bulk)/(2A) (eV/Å²) of every slab.

The same functions serve ``bench properties`` (many models and corrections) and the calibration verdict
(bare against corrected model on the calibration and held-out frames).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from softcalc.data.dataset import ForceFrame
from softcalc.properties.strain import (
    QuadraticFit,
    StrainCurve,
    fit_quadratic,
    is_ground_state,
    strain_curves,
    zero_strain_energy,
)
from softcalc.properties.surfaces import SlabGeometry, find_slabs, surface_energy

#: the strain-mode kinds a mean curvature ratio is reported for ("all": every mode)
KINDS = ("normal", "shear", "all")

Curves = dict[str, tuple[np.ndarray, np.ndarray]]


def ground_state_index(frames: Sequence[ForceFrame]) -> int | None:
    """Index of the first frame with a DFT energy that is a ground state (group or description), or None."""
    return next(
        (i for i, f in enumerate(frames) if f.energy is not None and is_ground_state(f.group, f.label)), None
    )


@dataclass
class PropertyFrames:
    """What of a frame list gives properties.

    Attributes:
        ground_state: index of the ground-state frame (None: none).
        modes: strain mode -> its frames, for the modes a curvature can be fitted to.
        slabs: frame index -> slab geometry, for the slabs that give a surface energy.
        skipped: what (``strain``, ``mode k``, ``surfaces``, ``surface LABEL``) -> why it gives nothing.
    """

    ground_state: int | None
    modes: dict[str, StrainCurve] = field(default_factory=dict)
    slabs: dict[int, SlabGeometry] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def slab_bulk_reference(
    frames: Sequence[ForceFrame], ground_state: int | None, modes: Mapping[str, StrainCurve]
) -> Atoms | None:
    """The crystal slabs are compared with: the ground state, else the first strained cell (None: none)."""
    if ground_state is not None:
        return frames[ground_state].atoms
    return frames[next(iter(modes.values())).frames[0]].atoms if modes else None


def locate_properties(frames: Sequence[ForceFrame]) -> PropertyFrames:
    """The ground state, strain modes and slabs of ``frames`` (what is absent goes to ``skipped``)."""
    found = PropertyFrames(ground_state_index(frames))
    found.modes = strain_curves(frames, found.ground_state, found.skipped)
    bulk = slab_bulk_reference(frames, found.ground_state, found.modes)
    found.slabs = find_slabs(frames, bulk, found.skipped)
    return found


def strain_energy_curves(
    frames: Sequence[ForceFrame],
    modes: Mapping[str, StrainCurve],
    ground_state: int | None,
    per_atom: np.ndarray,
) -> Curves:
    """mode -> (strains, E/N in eV/atom) from one energy per atom (eV/atom) per frame."""
    out = {}
    for mode, curve in modes.items():
        strains = [frames[i].strain for i in curve.frames] + ([0.0] if curve.with_bulk else [])
        values = [per_atom[i] for i in curve.frames] + ([per_atom[ground_state]] if curve.with_bulk else [])
        out[mode] = (np.array(strains, dtype=float), np.array(values))
    return out


def curvature_ratio(model: QuadraticFit, dft: QuadraticFit) -> float | None:
    """Curvature ratio model / DFT; None where DFT's curvature is 0 or the ratio is not finite."""
    if not dft.curvature:
        return None
    ratio = model.curvature / dft.curvature
    return float(ratio) if np.isfinite(ratio) else None


def mean_curvature_ratios(
    modes: Mapping[str, StrainCurve], dft: Mapping[str, QuadraticFit], model: Mapping[str, QuadraticFit]
) -> dict[str, float | None]:
    """Mean of the per-mode curvature ratios model / DFT over each of :data:`KINDS` (None: no mode)."""
    ratios = {mode: curvature_ratio(model[mode], dft[mode]) for mode in model}
    out: dict[str, float | None] = {}
    for kind in KINDS:
        chosen = [r for mode, r in ratios.items() if kind in ("all", modes[mode].kind) and r is not None]
        out[kind] = float(np.mean(chosen)) if chosen else None
    return out


def curvature_fits(curves: Curves) -> dict[str, QuadraticFit]:
    """The quadratic fit of every curve."""
    return {mode: fit_quadratic(*curve) for mode, curve in curves.items()}


def bulk_energy(ground_state: int | None, per_atom: np.ndarray, curves: Curves) -> float:
    """ε_bulk (eV/atom): the ground state's energy per atom, else the zero-strain value of the curves' fit."""
    return float(per_atom[ground_state]) if ground_state is not None else zero_strain_energy(curves)


def surface_energies(
    frames: Sequence[ForceFrame], slabs: Mapping[int, SlabGeometry], energies: np.ndarray, bulk: float
) -> np.ndarray:
    """γ (eV/Å²) of every slab, in slab order, from total energies (eV) and ε_bulk (eV/atom)."""
    return np.array(
        [surface_energy(energies[i], len(frames[i].atoms), bulk, g.area) for i, g in slabs.items()]
    )
