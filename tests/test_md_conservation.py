"""Energy conservation of NVE trajectories: the velocity-Verlet shadow energy and drift fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT

from softcalc.cli import main
from softcalc.md import MDSettingsError, run_md
from softcalc.md.conservation import Drift, energy_conservation, shadow_correction

Oscillators = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]


def verlet_oscillators(omega_dt: float, steps: int) -> Oscillators:
    """Velocity Verlet on 4 independent 3D harmonic oscillators (k = 2 eV/Å², 28 amu).

    Returns velocities (Å/fs), forces (eV/Å), total energies (eV), masses (amu) and Δt (fs).
    """
    rng = np.random.default_rng(0)
    k, masses = 2.0, np.full(4, 28.0)
    omega_fs = np.sqrt(k / masses[0]) * units.fs  # rad/fs
    dt = omega_dt / omega_fs
    x, v = rng.normal(0, 0.1, (4, 3)), rng.normal(0, 0.01, (4, 3)) / units.fs  # v in ASE units
    frames_v, frames_f, energies = [], [], []
    force = -k * x
    for _ in range(steps):
        frames_v.append(v * units.fs)
        frames_f.append(force)
        energies.append(0.5 * k * (x**2).sum() + 0.5 * (masses[:, None] * v**2).sum())
        v = v + 0.5 * dt * units.fs * force / masses[:, None]
        x = x + dt * units.fs * v
        force = -k * x
        v = v + 0.5 * dt * units.fs * force / masses[:, None]
    return np.array(frames_v), np.array(frames_f), np.array(energies), masses, dt


def test_shadow_energy_of_harmonic_oscillators_is_conserved_to_fourth_order() -> None:
    """For a harmonic oscillator velocity Verlet conserves p²/2m + (k/2)(1 − ω²Δt²/4) q² exactly; the
    Δt² shadow correction must remove the Δt² fluctuation of K + U, leaving an O(Δt⁴) remainder.

    (A harmonic system fixes only the sum of the two Δt² coefficients, 1/12 + 1/24; the EMT test below
    fixes each: swapping them leaves 19 % of the fluctuation there.)"""
    spread = {}
    for omega_dt in (0.2, 0.1):
        v, f, total, masses, dt = verlet_oscillators(omega_dt, 400)
        shadow = total[1:-1] + shadow_correction(v, f, masses, dt, dt)
        spread[omega_dt] = (np.ptp(total), np.ptp(shadow))
        assert np.ptp(shadow) < 0.02 * np.ptp(total)
    # Halving the step: K + U fluctuates 4× less, the shadow energy about 16× less.
    assert spread[0.2][0] / spread[0.1][0] == pytest.approx(4.0, rel=0.05)
    assert spread[0.2][1] / spread[0.1][1] > 10.0


def test_drift_fit_recovers_a_linear_drift_under_oscillations() -> None:
    t = np.linspace(0.0, 2.0, 1001)
    energy = 0.003 * t + 0.02 * np.sin(2 * np.pi * 9.0 * t)
    fit = Drift.fit(t, energy)
    assert fit.drift_meV_per_atom_per_ps == pytest.approx(0.003, abs=0.002)
    assert fit.stderr_meV_per_atom_per_ps < 0.002
    with pytest.raises(ValueError, match="at least 20 frames"):
        Drift.fit(t[:10], energy[:10])


@pytest.fixture(scope="module")
def emt_nve(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """Cu 32 atoms under EMT, NVE from 600 K, forces stored every step, at 4 fs and 2 fs."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=3)
    out = {}
    for dt in (4.0, 2.0):
        traj = tmp_path_factory.mktemp("nve") / f"nve_{dt}.h5"
        run_md(atoms, EMT(), ensemble="nve", temperature_K=600, timestep_fs=dt, steps=int(400 / dt), every=1,
               forces=True, traj=traj, seed=2, progress=False)
        out[dt] = traj
    return out


def test_shadow_energy_of_an_emt_crystal_removes_the_verlet_fluctuation(emt_nve: dict[float, Path]) -> None:
    coarse, fine = energy_conservation(emt_nve[4.0]), energy_conservation(emt_nve[2.0])
    for result in (coarse, fine):
        assert result.n_atoms == 32 and result.duration_ps == pytest.approx(0.4)
        assert result.mean_temperature_K == pytest.approx(300, rel=0.4)
        assert result.shadow.std_meV_per_atom < 0.03 * result.total.std_meV_per_atom
    assert coarse.timestep_fs == 4.0
    assert coarse.total.std_meV_per_atom / fine.total.std_meV_per_atom == pytest.approx(4.0, rel=0.25)
    assert coarse.shadow.std_meV_per_atom / fine.shadow.std_meV_per_atom > 10.0  # O(Δt⁴): 16


def test_energy_conservation_needs_nve_and_forces_for_the_shadow(tmp_path: Path) -> None:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    nve, nvt = tmp_path / "nve.h5", tmp_path / "nvt.h5"
    run_md(atoms, EMT(), ensemble="nve", temperature_K=300, timestep_fs=2, steps=40, every=1, traj=nve,
           seed=1, progress=False)
    assert energy_conservation(nve).shadow is None
    run_md(atoms, EMT(), ensemble="nvt", thermostat="langevin", temperature_K=300, timestep_fs=2, steps=40,
           every=1, traj=nvt, seed=1, progress=False)
    with pytest.raises(MDSettingsError, match="not conserved.*Use an NVE run"):
        energy_conservation(nvt)


def test_cli_md_analyze_reports_conservation_vdos_and_structure(data_dir: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    structure = tmp_path / "si.vasp"
    bulk("Si", "diamond", a=5.43, cubic=True).write(structure, format="vasp")
    common = ["--model", "toy-morse", "--structure", str(structure), "--temperature", "300",
              "--timestep", "1", "--steps", "200", "--every", "1", "--seed", "1", "--forces", "--quiet"]
    bare, nvt = tmp_path / "bare.h5", tmp_path / "nvt.h5"
    assert main(["md", *common, "--traj", str(bare)]) == 0
    assert main(["md", *common, "--ensemble", "nvt", "--traj", str(nvt)]) == 0
    out = tmp_path / "report"
    args = ["md-analyze", str(bare), str(nvt), "--labels", "nve", "nvt", "--skip", "0.05", "--out", str(out),
            "--phonons", str(data_dir / "phonons/phonopy-examples/Si")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "nve: 0.15 ps" in printed and "shadow energy" in printed and "of the harmonic DOS" in printed
    report = json.loads((out / "md_analysis.json").read_text())
    runs = report["trajectories"]
    assert runs["nve"]["analysed_ps"] == pytest.approx(0.15)
    assert "energy_conservation" not in runs["nvt"]
    conservation = runs["nve"]["energy_conservation"]
    assert conservation == energy_conservation(bare).as_dict()
    assert conservation["shadow"]["std_meV_per_atom"] < 0.1 * conservation["total"]["std_meV_per_atom"]
    assert 2.2 < runs["nve"]["rdf_first_peak_A"] < 2.5  # Si-Si bond 2.35 Å
    assert 0 < runs["nve"]["msd_at_longest_lag_A2"] < 0.5  # atoms rattle, none hops a bond (5.5 Å²)
    assert set(report["vdos"]["overlap"]) == {"nve", "nvt"}
    for png in ("vdos.png", "structure.png", "energy.png"):
        assert (out / png).stat().st_size > 0
    assert main([*args[:3], "--labels", "one", "--out", str(out)]) == 2
    assert "one distinct label per trajectory" in capsys.readouterr().err
