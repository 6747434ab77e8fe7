"""Compare MD vibrational DOS (bare and corrected models) with a harmonic phonon DOS (e.g. DFT).

The mass-weighted VACF spectrum of a classical harmonic crystal is its phonon DOS, so softening
shows up as an MD VDOS shifted to lower frequencies than the DFT phonon DOS.
Units: frequency in THz; every DOS is normalised to unit area.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softcalc.md.analysis import vdos
from softcalc.md.trajectory import Trajectory
from softcalc.plots import save_figure

Spectrum = tuple[np.ndarray, np.ndarray]


def trajectory_vdos(path: str | Path, max_lag: int | None = None, skip: int = 0) -> Spectrum:
    """Mass-weighted VDOS (THz, unit area) of a softcalc MD trajectory, dropping ``skip`` first frames."""
    with Trajectory(path) as traj:
        meta = traj.metadata
        dt = float(meta["every"]) * float(meta["timestep_fs"])
        return vdos(traj.array("velocities", slice(skip, None)), dt, traj.masses, max_lag)


def harmonic_dos(
    folder: str | Path, mesh: Sequence[int] = (16, 16, 16), sigma: float | None = None
) -> Spectrum:
    """Phonon DOS (THz, unit area) of a phonopy data set: a folder with phonopy_disp.yaml + FORCE_SETS, or
    a phonopy.yaml / phonopy_params.yaml with forces (anything
    :func:`~softcalc.data.phonopy_sets.phonopy_force_frames` reads); force constants as phonopy.load fits
    them."""
    from softcalc.data.phonopy_sets import phonopy_force_frames
    from softcalc.phonons import Phonons
    from softcalc.phonons.phonopy_io import fit_force_constants

    phonon = phonopy_force_frames(folder)[1]
    fit_force_constants(phonon, full=False)  # compact, as phonopy.load produces them
    dos = Phonons.from_phonopy(phonon).dos(mesh, sigma)
    return dos.frequency_points, dos.dos / np.trapezoid(dos.dos, dos.frequency_points)


def mean_frequency(spectrum: Spectrum) -> float:
    """First moment ∫ν g(ν) dν / ∫g(ν) dν in THz."""
    f, g = spectrum
    return float(np.trapezoid(f * g, f) / np.trapezoid(g, f))


def overlap(a: Spectrum, b: Spectrum) -> float:
    """1 - ½∫|g_a - g_b| dν on a common grid: 1 for identical spectra, 0 for disjoint ones."""
    lo, hi = 0.0, min(a[0].max(), b[0].max())
    grid = np.linspace(lo, hi, 2000)
    ga = np.interp(grid, *a, left=0.0, right=0.0)
    gb = np.interp(grid, *b, left=0.0, right=0.0)
    ga /= np.trapezoid(ga, grid)
    gb /= np.trapezoid(gb, grid)
    return float(1.0 - 0.5 * np.trapezoid(np.abs(ga - gb), grid))


def band_limited(spectrum: Spectrum, f_max: float) -> Spectrum:
    """The part of ``spectrum`` below ``f_max`` THz, renormalised to unit area."""
    f, g = spectrum
    keep = f <= f_max
    return f[keep], g[keep] / np.trapezoid(g[keep], f[keep])


def compare_vdos(
    curves: Mapping[str, Spectrum],
    reference: Spectrum | None = None,
    png: str | Path | None = None,
    reference_label: str = "DFT harmonic",
    title: str = "",
    f_max: float | None = None,
) -> dict[str, Any]:
    """Mean frequencies of MD VDOS ``curves`` (e.g. ``{"bare": ..., "corrected": ...}``) and, with a
    ``reference`` DOS, their ratio to it and their overlap; optionally a plot of all of them.

    MD spectra are compared below ``f_max`` THz (default: 1.5 × the reference's highest frequency),
    which keeps the noise floor of short runs up to the Nyquist frequency out of the moments.
    """
    if f_max is None and reference is not None:
        f_max = 1.5 * float(reference[0][reference[1] > 1e-3 * reference[1].max()].max())
    if f_max is not None:
        curves = {k: band_limited(c, f_max) for k, c in curves.items()}
    out: dict[str, Any] = {"mean_frequency_THz": {k: mean_frequency(c) for k, c in curves.items()}}
    if f_max is not None:
        out["f_max_THz"] = f_max
    if reference is not None:
        ref_mean = mean_frequency(reference)
        out["mean_frequency_THz"][reference_label] = ref_mean
        out["mean_frequency_ratio"] = {k: mean_frequency(c) / ref_mean for k, c in curves.items()}
        out["overlap"] = {k: overlap(c, reference) for k, c in curves.items()}
    if png is not None:
        _plot(png, curves, reference, reference_label, title)
    return out


def _plot(png: str | Path, curves: Mapping[str, Spectrum], reference: Spectrum | None, ref_label: str,
          title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    spectra = [*curves.values(), *([reference] if reference is not None else [])]
    f_max = max(float(f[g > 1e-3 * g.max()].max()) for f, g in spectra)
    for label, (f, g) in curves.items():
        ax.plot(f, g, lw=1.3, label=f"MD {label}")
    if reference is not None:
        ax.fill_between(reference[0], reference[1], color="0.6", alpha=0.5, label=ref_label)
    ax.set(xlim=(0, 1.1 * f_max), ylim=(0, None), xlabel="frequency (THz)", ylabel="DOS (1/THz, unit area)")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, png)
