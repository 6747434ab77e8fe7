"""Phonon softening of a model measured against a DFT finite-displacement force set.

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

No non-analytic correction is applied (``BORN`` is ignored) for either side.
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
from softcalc.data.phonopy_sets import load_phonopy_set
from softcalc.evaluation import ForceComparison, pair_forces
from softcalc.forces import DEFAULT_BATCH, ForceEvaluator
from softcalc.phonons import Phonons, from_phonopy_atoms
from softcalc.phonons.phonopy_io import fit_force_constants
from softcalc.plots import save_figure

#: q-point mesh of the frequency comparison (phonopy's default primitive cell)
MESH = (8, 8, 8)
#: modes with DFT frequency at or below this (THz) are left out of slope and MAE
MIN_FREQUENCY_THZ = 0.5


@dataclass
class PhononSet:
    """A DFT force set: the frames as a :class:`ForceDataset` and phonopy with DFT force constants."""

    dataset: ForceDataset
    phonon: Any  # phonopy.Phonopy with DFT force constants

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
    force_set_slope: float
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


def with_displacement_forces(template: Any, forces: Sequence[np.ndarray]) -> Any:
    """A new phonopy object on ``template``'s displacements with ``forces`` (eV/Å), force constants built."""
    phonon = template.replicate()
    phonon.dataset = copy.deepcopy(template.dataset)
    fit_force_constants(phonon, forces, symmetrize=True)
    return phonon


def load_phonon_set(path: str | Path) -> PhononSet:
    """Read a phonopy folder and build its DFT force constants."""
    dataset, template = load_phonopy_set(path)
    return PhononSet(dataset, with_displacement_forces(template, [f.forces for f in dataset.frames]))


def mesh_frequencies(phonon: Any, mesh: Sequence[int] = MESH) -> np.ndarray:
    """Frequencies (THz), (n_q, n_bands), sorted per q-point, on the full Γ-centred mesh."""
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
    model_phonon = with_displacement_forces(pset.phonon, [f - forces[-1] for f in forces[:-1]])
    dft_freq, model_freq = mesh_frequencies(pset.phonon), mesh_frequencies(model_phonon)
    metrics = PhononMetrics(
        material=pset.material,
        functional=pset.dataset.functional,
        model=model,
        n_displacements=len(frames),
        force_set_slope=comparison.metrics().softening_scale,
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
    pset = pset if isinstance(pset, PhononSet) else load_phonon_set(pset)
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
        lines = ax.plot(x, Phonons.from_phonopy(phonon).frequencies(bandpath.kpts), style, lw=1.0)
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
