"""One report for one or more MD trajectories: energy conservation, VDOS (against a harmonic phonon
DOS such as DFT's), MSD and RDF, written as JSON plus PNG figures (``softcalc md-analyze``).

Units: time in ps, energies in meV/atom, frequencies in THz, lengths in Å, MSD in Å².
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softcalc.fileio import write_json
from softcalc.md.analysis import msd, rdf
from softcalc.md.compare import Spectrum, compare_vdos, harmonic_dos, trajectory_vdos
from softcalc.md.conservation import EnergySeries, energy_conservation, energy_series
from softcalc.md.errors import MDSettingsError
from softcalc.md.trajectory import Trajectory
from softcalc.plots import save_figure

#: Frames of each trajectory used for its RDF (evenly spaced over the analysed part).
RDF_FRAMES = 50


def _skip_frames(traj: Trajectory, skip_ps: float) -> int:
    time_ps = traj.array("time") / 1000.0
    skip = int(np.searchsorted(time_ps, time_ps[0] + skip_ps))
    if len(time_ps) - skip < 4:
        raise MDSettingsError(
            f"{traj.path}: {len(time_ps)} frames over {time_ps[-1] - time_ps[0]:.3g} ps leave fewer than 4 "
            f"after skipping {skip_ps} ps of equilibration. Fix: a smaller --skip or a longer run."
        )
    return skip


def first_peak(r: np.ndarray, g: np.ndarray) -> float:
    """Position (Å) of the first maximum of g(r) above 1: the nearest-neighbour distance."""
    i = int(np.argmax(g > 1.0))
    while i + 1 < len(g) and g[i + 1] >= g[i]:
        i += 1
    return float(r[i])


def summarize(
    path: str | Path, skip_ps: float = 0.0, rdf_r_max: float = 6.0
) -> tuple[dict[str, Any], Spectrum, dict[str, np.ndarray], EnergySeries | None]:
    """Summary (JSON-ready), VDOS, the RDF/MSD curves and (NVE runs) the energy series of one trajectory
    after ``skip_ps`` ps (energy conservation always covers the whole run)."""
    with Trajectory(path) as traj:
        meta = traj.metadata
        skip = _skip_frames(traj, skip_ps)
        frames = slice(skip, None)
        time_ps = traj.array("time", frames) / 1000.0
        temperature = traj.array("temperature", frames)
        cells = traj.array("cell", frames)
        positions = traj.array("positions", frames)
        stride = max(1, (len(traj) - skip) // RDF_FRAMES)
        images = [traj[i] for i in range(skip, len(traj), stride)]
    lag_ps = (time_ps - time_ps[0])[: len(time_ps) // 2]
    curves = {"msd_time_ps": lag_ps, "msd_A2": msd(positions, cells, len(lag_ps))}
    curves["rdf_r_A"], curves["rdf"] = rdf(images, rdf_r_max)
    summary: dict[str, Any] = {
        "path": str(path), "model": meta.get("model"), "correction": meta.get("correction"),
        "ensemble": meta.get("ensemble"), "thermostat": meta.get("thermostat"),
        "timestep_fs": meta.get("timestep_fs"), "n_atoms": len(positions[0]),
        "analysed_ps": float(time_ps[-1] - time_ps[0]), "skipped_ps": float(skip_ps),
        "temperature_K": {"mean": float(temperature.mean()), "std": float(temperature.std())},
        "msd_at_longest_lag_A2": float(curves["msd_A2"][-1]),
        "rdf_first_peak_A": first_peak(curves["rdf_r_A"], curves["rdf"]),
    }
    series = energy_series(path) if meta.get("ensemble") == "nve" else None
    if series is not None:
        summary["energy_conservation"] = energy_conservation(series).as_dict()
    return summary, trajectory_vdos(path, skip=skip), curves, series


def analyze(
    paths: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    phonons: str | Path | None = None,
    skip_ps: float = 0.0,
    rdf_r_max: float = 6.0,
) -> dict[str, Any]:
    """Analyse ``paths`` into ``out/md_analysis.json``, ``vdos.png``, ``structure.png`` and, for NVE runs,
    ``energy.png``.

    Args:
        labels: one name per trajectory (default: the file stems).
        phonons: a phonopy data set (phonopy_disp.yaml + FORCE_SETS, or a phonopy.yaml with forces; e.g.
            DFT) whose harmonic DOS the MD VDOS are compared with (mean frequency ratio and overlap).
        skip_ps: equilibration dropped from the start of every trajectory.
        rdf_r_max: RDF range in Å.
    """
    labels = list(labels) if labels else [Path(p).stem for p in paths]
    if len(labels) != len(paths) or len(set(labels)) != len(labels):
        raise MDSettingsError(f"need one distinct label per trajectory: {len(paths)} trajectories, "
                              f"labels {labels}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries, spectra, curves, nve = {}, {}, {}, {}
    for label, path in zip(labels, paths):
        summaries[label], spectra[label], curves[label], series = summarize(path, skip_ps, rdf_r_max)
        if series is not None:
            nve[label] = series
    reference = harmonic_dos(phonons) if phonons is not None else None
    report: dict[str, Any] = {"trajectories": summaries,
                              "vdos": compare_vdos(spectra, reference, png=out / "vdos.png",
                                                   reference_label="harmonic DOS")}
    if phonons is not None:
        report["vdos"]["harmonic_dos_from"] = str(phonons)
    if nve:
        _plot_energy(out / "energy.png", nve)
    _plot_structure(out / "structure.png", curves)
    write_json(out / "md_analysis.json", report)
    return report


def _plot_energy(png: Path, runs: dict[str, EnergySeries]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, series in runs.items():
        (line,) = ax.plot(series.time_ps, series.total - series.total[0], lw=0.6, alpha=0.6,
                          label=f"{label}: K + U")
        if series.shadow is not None:
            ax.plot(series.shadow_time_ps, series.shadow - series.shadow[0], lw=1.4,
                    color=line.get_color(), label=f"{label}: shadow energy")
    ax.set(xlabel="time (ps)", ylabel="E(t) − E(0) (meV/atom)", title="NVE energy conservation")
    ax.legend(fontsize=8)
    save_figure(fig, png)


def _plot_structure(png: Path, curves: dict[str, dict[str, np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rdf, ax_msd) = plt.subplots(1, 2, figsize=(9, 3.6))
    for label, c in curves.items():
        ax_rdf.plot(c["rdf_r_A"], c["rdf"], lw=1.2, label=label)
        ax_msd.plot(c["msd_time_ps"], c["msd_A2"], lw=1.2, label=label)
    ax_rdf.set(xlabel="r (Å)", ylabel="g(r)", title="radial distribution")
    ax_msd.set(xlabel="lag (ps)", ylabel="MSD (Å²)", title="mean-square displacement")
    ax_rdf.legend(fontsize=8)
    save_figure(fig, png)
