"""Phonon softening of a model measured against a DFT finite-displacement force set.

The comparison behind ``softcalc phonons`` (and, per model and material, ``softcalc bench phonons`` and
``bench properties``, which only orchestrate it).

The model is evaluated on exactly the displaced supercells of the DFT set; its forces on the
undisplaced supercell are subtracted (the DFT-relaxed cell is not a minimum of the model). DFT and
model force constants are built by phonopy from the same displacements (phonopy's API default: full
force constants, then symmetrised), and compared through

- ``force_set_slope``: slope through the origin of model vs DFT force components (± pair differences
  where available, as :func:`softcalc.evaluation.compare_forces` does);
- ``freq_slope``: slope through the origin of model vs DFT frequencies on a Γ-centred 8×8×8 mesh of
  phonopy's default primitive cell (:mod:`softcalc.phonons`), band by band (sorted order at each
  q-point), keeping modes with DFT ω > 0.5 THz;
- ``freq_mae_thz``: MAE of those frequencies (THz);
- ``max_freq_ratio``: max ω_model / max ω_DFT over the mesh (paper Fig. 4b).

The reference (:func:`load_phonon_reference`) is anything
:func:`~softcalc.data.phonopy_sets.phonopy_force_frames` reads (FORCE_SETS, phonopy.yaml /
phonopy_params.yaml with forces, a ``phonopy.Phonopy``), or DFT force constants without forces
(:func:`~softcalc.data.phonopy_sets.phonopy_harmonic_frames`): the model then gets
phonopy's default displacements, the DFT frequencies come from the force constants as read, and
``force_set_slope`` is None (not available).

Non-analytic correction (NAC): none by default, for either side: the model has no Born charges, so
frequencies are compared as the short-range force constants give them (``BORN`` or the yaml's
Born charges (``nac:``) are noted in the result, not applied). ``nac=True`` applies the DFT Born charges and
dielectric tensor to the DFT and to the model force constants alike; the frequencies then come from
phonopy's own mesh and q-points (softcalc's Numba dynamical matrices have no NAC term). At Γ itself
phonopy adds no NAC term (no q direction), so LO-TO splitting shows only away from Γ.

Residual forces: the model's forces on the undisplaced supercell are subtracted from its forces on
every displaced one. The DFT forces are used as the data give them: no phonopy format carries the
perfect supercell's DFT forces, so none are subtracted; where the set holds ± displacement pairs, the
force slope compares pair differences, which cancel residual forces of both sides
(:func:`residual_handling` says which was done).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator

from softcalc.data.dataset import ForceDataset
from softcalc.data.phonopy_sets import (
    force_constants_source,
    nac_source,
    phonopy_force_frames,
    phonopy_harmonic_frames,
)
from softcalc.errors import DataError
from softcalc.evaluation import ForceComparison, pair_forces
from softcalc.forces import DEFAULT_BATCH, ForceEvaluator
from softcalc.phonons.facade import Phonons
from softcalc.phonons.phonopy_io import fit_force_constants, from_phonopy_atoms, has_forces
from softcalc.plots import save_figure

#: q-point mesh of the frequency comparison (phonopy's default primitive cell)
MESH = (8, 8, 8)
#: modes with DFT frequency at or below this (THz) are left out of slope and MAE
MIN_FREQUENCY_THZ = 0.5


@dataclass
class PhononSet:
    """A DFT force set: the frames as a :class:`ForceDataset` and phonopy with DFT force constants."""

    dataset: ForceDataset
    phonon: Any  # phonopy.Phonopy with DFT force constants (and the DFT NAC parameters when nac)
    nac: bool = False  # whether the DFT non-analytic correction is applied (to DFT and model alike)
    nac_source: str = ""  # where DFT Born charges were found (BORN file, yaml), "" when nowhere
    force_data: bool = True  # False: the DFT reference is force constants (no force slope from it)

    @property
    def material(self) -> str:
        return self.dataset.material


@dataclass(frozen=True)
class PhononMetrics:
    """Model vs DFT phonons of one material (frequencies in THz); see the module docstring."""

    material: str
    functional: str
    model: str
    n_displacements: int
    force_set_slope: float | None  # None: the DFT reference holds force constants, not forces
    freq_slope: float
    freq_mae_thz: float
    max_freq_ratio: float

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


@dataclass
class PhononComparison:
    """Metrics plus what produced them: force comparison, model phonopy object, mesh frequencies (THz)."""

    metrics: PhononMetrics
    forces: ForceComparison
    model_phonon: Any
    dft_frequencies: np.ndarray
    model_frequencies: np.ndarray


def with_displacement_forces(template: Any, forces: Sequence[np.ndarray], nac_params: Any = None) -> Any:
    """A new phonopy object on ``template``'s displacements with ``forces`` (eV/Å), force constants built
    (full, symmetrised), with the non-analytic correction ``nac_params`` when given (none otherwise)."""
    phonon = template.replicate()
    phonon.dataset = copy.deepcopy(template.dataset)
    fit_force_constants(phonon, forces, symmetrize=True)
    if nac_params is not None:
        phonon.nac_params = copy.deepcopy(nac_params)
    return phonon


def load_phonon_reference(source: str | Path | Any, nac: bool = False) -> PhononSet:
    """The DFT reference of a phonon comparison: a phonopy data set (folder, yaml, FORCE_SETS or
    ``phonopy.Phonopy``) as frames, with its DFT force constants built; ``nac`` applies its Born charges
    and dielectric tensor (see the module docstring)."""
    fc_file = force_constants_source(source)
    try:
        dataset, template = phonopy_force_frames(source, nac=nac)
    except DataError:
        if fc_file is None:
            raise
        dataset, template = phonopy_harmonic_frames(source, nac=nac)
    where = nac_source(source)
    if nac and template.nac_params is None:
        raise DataError(
            f"{dataset.source} has no BORN file and no Born charges in its yaml: --nac needs the DFT Born "
            "charges and dielectric tensor. Fix: put the BORN file of the calculation beside the data, or "
            "leave out --nac."
        )
    if not has_forces(template.dataset):  # force constants as the reference, as read
        return PhononSet(dataset, template, nac=nac, nac_source=where, force_data=False)
    forces = [f.forces for f in dataset.frames]
    phonon = with_displacement_forces(template, forces, template.nac_params if nac else None)
    return PhononSet(dataset, phonon, nac=nac, nac_source=where)


def nac_note(pset: PhononSet) -> str:
    """One sentence on the non-analytic correction of a comparison, for reports (where the Born charges
    were found is :attr:`PhononSet.nac_source`)."""
    if pset.nac:
        return (
            "DFT Born charges and dielectric tensor applied to DFT and model force constants alike; "
            "frequencies from phonopy (no NAC term at Γ itself)"
        )
    return (
        "no non-analytic correction, for DFT and model alike (the model has no Born charges); --nac applies "
        "the DFT Born charges and dielectric tensor (BORN, or those in the phonopy yaml) to both"
    )


def residual_handling(pset: PhononSet) -> str:
    """How residual forces of the undisplaced supercell are handled in the force comparison."""
    dataset = pset.dataset
    model = "model: forces on the undisplaced supercell subtracted"
    if not pset.force_data:
        return f"{model}; DFT: force constants given, no forces (force slope not available)"
    if not dataset.pairs:
        return f"{model}; DFT: forces used as given (no perfect-supercell forces in the data, no ± pairs)"
    paired = 2 * len(dataset.pairs)
    return f"{model}; DFT and model: ± displacement pairs differenced ({paired} of {len(dataset)} frames)"


def frequencies_at(phonon: Any, qpoints: Any) -> np.ndarray:
    """Frequencies (THz), (n_q, n_bands), at reduced ``qpoints`` of the primitive cell: phonopy's own
    (with its non-analytic correction) when the object carries one, else softcalc's dynamical matrices."""
    if phonon.nac_params is not None:
        phonon.run_qpoints(np.asarray(qpoints, dtype=float))
        return np.array(phonon.qpoints.frequencies)
    return Phonons.from_phonopy(phonon).frequencies(qpoints)


def mesh_frequencies(phonon: Any, mesh: Sequence[int] = MESH) -> np.ndarray:
    """Frequencies (THz), (n_q, n_bands), sorted per q-point, on the full Γ-centred mesh (phonopy's own
    mesh when ``phonon`` carries a non-analytic correction: softcalc's Numba mesh has no NAC term)."""
    if phonon.nac_params is not None:
        phonon.run_mesh(list(mesh), is_mesh_symmetry=False, is_gamma_center=True)
        return np.sort(np.array(phonon.mesh.frequencies), axis=1)
    return np.sort(Phonons.from_phonopy(phonon).mesh(mesh).frequencies, axis=1)


def frequency_metrics(model: np.ndarray, dft: np.ndarray) -> dict[str, float]:
    """freq_slope, freq_mae_thz (modes with DFT ω > MIN_FREQUENCY_THZ) and max_freq_ratio."""
    keep = dft > MIN_FREQUENCY_THZ
    m, d = model[keep], dft[keep]
    return {
        "freq_slope": float(m @ d / (d @ d)),
        "freq_mae_thz": float(np.mean(np.abs(m - d))),
        "max_freq_ratio": float(model.max() / dft.max()),
    }


def phonon_comparison(pset: PhononSet, forces: Sequence[np.ndarray], model: str = "") -> PhononComparison:
    """Compare precomputed model forces (one per displaced frame, then the undisplaced supercell)."""
    frames = pset.dataset.frames
    if len(forces) != len(frames) + 1:
        raise ValueError(f"expected {len(frames) + 1} force arrays (frames + reference), got {len(forces)}")
    comparison = pair_forces(pset.dataset, forces)
    model_phonon = with_displacement_forces(
        pset.phonon, [f - forces[-1] for f in forces[:-1]], pset.phonon.nac_params
    )
    dft_freq, model_freq = mesh_frequencies(pset.phonon), mesh_frequencies(model_phonon)
    metrics = PhononMetrics(
        material=pset.material,
        functional=pset.dataset.functional,
        model=model,
        n_displacements=len(frames),
        force_set_slope=comparison.metrics().softening_scale if pset.force_data else None,
        **frequency_metrics(model_freq, dft_freq),
    )
    return PhononComparison(metrics, comparison, model_phonon, dft_freq, model_freq)


def compare_phonons(
    calc: Calculator,
    pset: PhononSet | str | Path,
    model: str = "",
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> PhononComparison:
    """Evaluate ``calc`` (batched) on the displaced and undisplaced supercells and compare phonons."""
    pset = pset if isinstance(pset, PhononSet) else load_phonon_reference(pset)
    structures = [f.atoms for f in pset.dataset.frames] + [pset.dataset.reference]
    forces = ForceEvaluator(calc, batch_size).forces(structures, progress=progress, desc=pset.material)
    return phonon_comparison(pset, forces, model)


def band_structure_plot(
    path: str | Path, pset: PhononSet, curves: Sequence[tuple[str, Any]], title: str = "", npoints: int = 120
) -> None:
    """Phonon bands (THz) of DFT and each ``(label, phonopy)`` along ASE's standard path (primitive cell)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bandpath = from_phonopy_atoms(pset.phonon.primitive).cell.bandpath(npoints=npoints)
    x, ticks, labels = bandpath.get_linear_kpoint_axis()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = ["k-", "C0--", "C3-.", "C2:"]
    for (label, phonon), style in zip([("DFT", pset.phonon), *curves], styles):
        lines = ax.plot(x, frequencies_at(phonon, bandpath.kpts), style, lw=1.0)
        lines[0].set_label(label)
    names: dict[float, str] = {}
    for t, s in zip(ticks, labels):  # a path break puts two labels on one tick: show "U|K"
        name = r"$\Gamma$" if s == "G" else s
        names[t] = f"{names[t]}|{name}" if t in names else name
    ax.set_xticks(list(names), list(names.values()))
    for t in names:
        ax.axvline(t, color="0.8", lw=0.6)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlim=(x[0], x[-1]), ylabel="frequency (THz)", title=title or pset.material)
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path, dpi=120)
