"""Properties in the verdict: energy-strain curvature and surface energies before and after a correction.

A correction judged on forces alone can break what lies near equilibrium: a fine-tune on hot frames that
halves the force error can still push the surface-energy slope from 1.03 to 1.7 and the strain curvature
ratios from 0.6 to 1.2. Where the calibration and held-out frames of a material hold a strain series (with
or without the ground state) or slabs with their bulk reference (:func:`softcalc.properties.layout.
locate_properties`), the report gives, for the bare and the corrected model on the same geometries:

- the mean curvature ratio model / DFT over the normal and over the shear strain modes;
- the surface-energy slope through the origin of γ_model vs γ_DFT.

Each is a ratio whose right value is 1. A property the correction moves further from 1 than the bare
model by more than :data:`PROPERTY_TOLERANCE` is a finding (``property-worse``): it blocks tuned weights
and warns for a global λ, which scales every curvature alike and whose target says which regime it serves.
Corrections without energies (per-species λ_Z) have no property check, and neither have frames without
model energies (a forces-only calculator).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.errors import DataError
from softcalc.metrics import softening_scale
from softcalc.properties import SURFACE_GROUP, is_ground_state, strain_mode
from softcalc.properties.layout import (
    bulk_energy,
    curvature_fits,
    locate_properties,
    mean_curvature_ratios,
    strain_energy_curves,
    surface_energies,
)

#: a property ratio may move away from 1 by this much before it counts as worse (fits of a handful of
#: strains and slabs resolve ratios to about a percent)
PROPERTY_TOLERANCE = 0.02


def _by_material(
    sets: Sequence[ForceDataset], energies: Sequence[np.ndarray]
) -> dict[str, tuple[list[ForceFrame], list[np.ndarray]]]:
    """Frames of every set grouped by material, with one energy array per source (same frame order)."""
    out: dict[str, tuple[list[ForceFrame], list[np.ndarray]]] = {}
    start = 0
    for d in sets:
        frames, values = out.setdefault(d.material, ([], [[] for _ in energies]))
        frames += d.frames
        for k, e in enumerate(energies):
            values[k] += list(e[start : start + len(d)])
        start += len(d)
    return {m: (frames, [np.array(v, dtype=float) for v in values]) for m, (frames, values) in out.items()}


def _material_properties(
    frames: list[ForceFrame], dft: np.ndarray, models: list[np.ndarray]
) -> dict[str, Any]:
    """The property ratios of the bare (models[0]) and corrected (models[1]) model on ``frames``."""
    found = locate_properties(frames)
    out: dict[str, Any] = {}
    n_atoms = np.array([len(f.atoms) for f in frames])
    if found.modes:
        gs = found.ground_state
        fits = [
            curvature_fits(strain_energy_curves(frames, found.modes, gs, e / n_atoms)) for e in (dft, *models)
        ]
        means = [mean_curvature_ratios(found.modes, fits[0], f) for f in fits[1:]]
        for kind in ("normal", "shear"):
            if means[0][kind] is not None and means[1][kind] is not None:
                out[f"curvature_{kind}"] = [means[0][kind], means[1][kind]]
    if found.slabs:
        gammas = []
        for e in (dft, *models):
            per_atom = e / n_atoms
            curves = strain_energy_curves(frames, found.modes, found.ground_state, per_atom)
            try:
                bulk = bulk_energy(found.ground_state, per_atom, curves)
            except DataError:  # the strain modes cannot give ε_bulk
                break
            gammas.append(surface_energies(frames, found.slabs, e, bulk))
        if len(gammas) == 3 and np.all(np.isfinite(gammas)):
            out["surface_slope"] = [softening_scale(g, gammas[0]) for g in gammas[1:]]
    return out


def property_frames(sets: Sequence[ForceDataset]) -> list[ForceDataset]:
    """The frames of ``sets`` that can give a property (strain-mode cells, ground states, slabs), for data
    that are neither fitted nor held out but still hold a strain series or slabs."""

    def gives(f: ForceFrame) -> bool:
        slab, strained = SURFACE_GROUP in f.group.lower(), strain_mode(f.label) is not None
        return f.energy is not None and (strained or slab or is_ground_state(f.group, f.label))

    return [s for s in (d.select(gives) for d in sets) if len(s)]


def property_changes(
    sets: Sequence[ForceDataset], dft: np.ndarray, before: np.ndarray, after: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Per material, each property ratio (model / DFT, right value 1) as [bare, corrected].

    ``dft``, ``before`` and ``after`` are the total energies (eV) of every frame of ``sets`` in order
    (NaN where there is none). Keys: ``curvature_normal``, ``curvature_shear`` (mean curvature ratios) and
    ``surface_slope`` (γ slope); a material with none of them is left out.
    """
    out = {}
    for material, (frames, (d, b, a)) in _by_material(sets, [dft, before, after]).items():
        values = _material_properties(frames, d, [b, a])
        if values:
            out[material] = values
    return out


def worse_properties(changes: dict[str, dict[str, Any]]) -> list[str]:
    """``material property before -> after`` for every ratio moved further from 1 than the tolerance."""
    worse = []
    for material, values in changes.items():
        for name, (before, after) in values.items():
            if abs(after - 1.0) > abs(before - 1.0) + PROPERTY_TOLERANCE:
                worse.append(f"{material} {name.replace('_', ' ')} {before:.2f} -> {after:.2f}")
    return worse
