"""Energy conservation of NVE trajectories: drift with its standard error, and the shadow energy.

Velocity Verlet does not conserve H = K + U exactly. It conserves a nearby *shadow* Hamiltonian
(backward error analysis of the symmetric kick-drift-kick splitting, e.g. Hairer, Lubich & Wanner,
Geometric Numerical Integration, ch. IX):

    H̃ = K + U + Δt²/12 · vᵀ ∇²U v − Δt²/24 · Fᵀ M⁻¹ F + O(Δt⁴)

The two Δt² terms are the bounded fluctuation of K + U that every Verlet run shows (it grows as
Δt²). Taking them out leaves what does not average away: round-off, non-conservative or non-smooth
forces, a step too long for the fastest vibrations. vᵀ∇²U v = −v·dF/dt comes from the stored
forces of neighbouring frames (central difference), so the shadow energy needs trajectories written
with forces and a frame interval well below the shortest vibrational period (``every`` of 1-2).

Units: energies in meV/atom, drifts in meV/atom/ps, time in ps, temperature in K.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import units

from softcalc.md.errors import MDSettingsError, TrajectoryAnalysisError
from softcalc.md.trajectory import Trajectory


@dataclass(frozen=True)
class Drift:
    """Straight-line fit of an energy series (meV/atom) against time (ps).

    ``stderr`` comes from the same fit to ``blocks`` block means, long enough to be nearly
    independent: a drift below about twice it is not resolved by the run.
    """

    drift_meV_per_atom_per_ps: float
    stderr_meV_per_atom_per_ps: float
    max_excursion_meV_per_atom: float
    std_meV_per_atom: float

    @classmethod
    def fit(cls, time_ps: np.ndarray, energy: np.ndarray, blocks: int = 10) -> Drift:
        """Fit ``energy`` (meV/atom) against ``time_ps``."""
        if len(time_ps) < 2 * blocks:
            raise TrajectoryAnalysisError(
                f"a drift fit with {blocks} blocks needs at least {2 * blocks} frames, got {len(time_ps)}. "
                "Fix: run longer or store frames more often (--every)."
            )
        slope = np.polyfit(time_ps, energy, 1)[0]
        t_blocks = [b.mean() for b in np.array_split(time_ps, blocks)]
        e_blocks = [b.mean() for b in np.array_split(energy, blocks)]
        cov = np.polyfit(t_blocks, e_blocks, 1, cov=True)[1]
        return cls(float(slope), float(np.sqrt(cov[0, 0])), float(np.max(np.abs(energy - energy[0]))),
                   float(energy.std()))


@dataclass(frozen=True)
class EnergyConservation:
    """Total-energy drift of an NVE run and, with stored forces, the drift of its shadow energy."""

    n_atoms: int
    timestep_fs: float
    duration_ps: float
    mean_temperature_K: float
    total: Drift
    shadow: Drift | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shadow_correction(
    velocities: np.ndarray,
    forces: np.ndarray,
    masses: np.ndarray,
    timestep_fs: float,
    frame_interval_fs: float,
) -> np.ndarray:
    """Δt²/12 · vᵀ∇²U v − Δt²/24 · Fᵀ M⁻¹ F in eV for frames 1 … F−2 (velocity Verlet, eq. in module doc).

    Args:
        velocities: (F, N, 3) Å/fs and forces (F, N, 3) eV/Å at equally spaced frames.
        masses: (N,) amu. timestep_fs: the integrator's Δt. frame_interval_fs: time between frames.
    """
    dforces_dt = (forces[2:] - forces[:-2]) / (2.0 * frame_interval_fs)  # eV/Å/fs
    v_hessian_v = -np.einsum("fij,fij->f", velocities[1:-1], dforces_dt)  # eV/fs²
    f_minv_f = np.einsum("fij,fij,i->f", forces[1:-1], forces[1:-1], 1.0 / masses)  # eV²/(Å² amu)
    dt_ase = timestep_fs * units.fs
    return timestep_fs**2 / 12.0 * v_hessian_v - dt_ase**2 / 24.0 * f_minv_f


@dataclass(frozen=True)
class EnergySeries:
    """Total energy of an NVE trajectory: ``total`` (meV/atom) at ``time_ps`` and, when forces are
    stored, the shadow energy at ``shadow_time_ps`` (every frame but the first and the last)."""

    n_atoms: int
    timestep_fs: float
    time_ps: np.ndarray
    total: np.ndarray
    temperature: np.ndarray
    shadow_time_ps: np.ndarray | None = None
    shadow: np.ndarray | None = None


def energy_series(path: str | Path) -> EnergySeries:
    """Read the total energy (and compute the shadow energy, with stored forces) of an NVE trajectory."""
    with Trajectory(path) as traj:
        meta = traj.metadata
        if meta.get("ensemble") != "nve":
            raise MDSettingsError(
                f"{path} is a {meta.get('ensemble')} run with the {meta.get('thermostat')} thermostat: its "
                "total energy is not conserved, so it has no energy drift to measure. Use an NVE run."
            )
        n_atoms, timestep = len(traj.numbers), float(meta["timestep_fs"])
        to_mev = 1000.0 / n_atoms
        time_fs = traj.array("time")
        total = (traj.array("potential_energy") + traj.array("kinetic_energy")) * to_mev
        series = EnergySeries(n_atoms, timestep, time_fs / 1000.0, total, traj.array("temperature"))
        if "forces" not in traj.fields or len(time_fs) < 3:
            return series
        interval = np.diff(time_fs)
        if not np.allclose(interval, interval[0]):
            raise MDSettingsError(f"{path}: frames are not equally spaced in time, so dF/dt for the "
                                  "shadow energy cannot be taken from neighbouring frames.")
        correction = shadow_correction(traj.array("velocities"), traj.array("forces"), traj.masses, timestep,
                                       float(interval[0]))
    return replace(series, shadow_time_ps=series.time_ps[1:-1], shadow=total[1:-1] + correction * to_mev)


def energy_conservation(series: EnergySeries | str | Path, blocks: int = 10) -> EnergyConservation:
    """Drift of E_total (and of the shadow energy when forces are stored) of an NVE trajectory, given
    as a path or as its already read :class:`EnergySeries`."""
    if not isinstance(series, EnergySeries):
        series = energy_series(series)
    time_ps = series.time_ps
    shadow = Drift.fit(series.shadow_time_ps, series.shadow, blocks) if series.shadow is not None else None
    total = Drift.fit(time_ps, series.total, blocks)
    return EnergyConservation(series.n_atoms, series.timestep_fs, float(time_ps[-1] - time_ps[0]),
                              float(series.temperature.mean()), total, shadow)
