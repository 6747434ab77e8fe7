"""MD driver, kill-safe HDF5 trajectories, resume (and the ASE integrator internals it checkpoints), safety
checks and VDOS analysis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential
from ase.io import read

from softcalc import SoftCorrectedCalc
from softcalc.cli import main
from softcalc.md import MDInstabilityError, Trajectory, TrajectoryFileError, run_md
from softcalc.md.analysis import msd, rdf, vdos
from softcalc.md.ensembles import (
    THERMOSTATS,
    EnsembleSettings,
    integrator_state,
    make_dynamics,
    state_attributes,
)

REPO = Path(__file__).resolve().parents[1]
#: Cu fcc near the EMT lattice constant, 32 atoms.
CU = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
NVT = dict(ensemble="nvt", thermostat="langevin", temperature_K=500.0, timestep_fs=2.0, every=5,
           flush_every=2, seed=7, progress=False)


def corrected_emt() -> SoftCorrectedCalc:
    return SoftCorrectedCalc(EMT(), scale=0.9)


def assert_same_frames(a: Path, b: Path) -> None:
    with Trajectory(a) as ta, Trajectory(b) as tb:
        assert len(ta) == len(tb)
        for name in ("step", "time", "positions", "velocities", "potential_energy", "cell"):
            np.testing.assert_allclose(ta.array(name), tb.array(name), rtol=0, atol=1e-9, err_msg=name)


def committed_frames(path: Path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return int(h5.attrs["n_frames"])
    except (OSError, KeyError):
        return 0


def test_sigkill_then_resume_gives_the_uninterrupted_trajectory(tmp_path: Path) -> None:
    steps = 200
    traj = tmp_path / "killed.h5"
    child = textwrap.dedent(f"""
        import sys, time
        from ase.build import bulk
        from ase.calculators.emt import EMT
        from softcalc import SoftCorrectedCalc
        from softcalc.md import run_md

        fast = EMT.calculate

        def slow(self, *args, **kwargs):  # slowed in place: resume checks the calculator's class name
            time.sleep(0.004)
            fast(self, *args, **kwargs)

        EMT.calculate = slow
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        run_md(atoms, SoftCorrectedCalc(EMT(), scale=0.9), steps={steps}, traj=sys.argv[1],
               resume="if-exists", **{NVT!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child, str(traj)], cwd=REPO)
    deadline = time.monotonic() + 120
    while committed_frames(traj) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the MD process ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = committed_frames(traj)
    assert 8 <= killed_at < steps // 5 + 1
    with Trajectory(traj) as t:
        assert t.metadata["status"] == "running"  # killed: nothing could mark it

    res = run_md(CU, corrected_emt(), steps=steps, traj=traj, resume=True, **NVT)
    assert res.steps_run == steps - (killed_at - 1) * 5
    with Trajectory(traj) as t:
        np.testing.assert_array_equal(t.array("step"), np.arange(0, steps + 1, 5))
        np.testing.assert_allclose(np.diff(t.array("time")), 10.0)
        assert t.metadata["status"] == "complete"
        assert t.metadata["correction"]["scale"] == 0.9
    whole = tmp_path / "whole.h5"
    run_md(CU, corrected_emt(), steps=steps, traj=whole, **NVT)
    assert_same_frames(traj, whole)


@pytest.mark.parametrize(
    ("ensemble", "thermostat"),
    [("nve", None), ("nvt", "langevin"), ("nvt", "nose-hoover"), ("nvt", "bussi"), ("npt", "nose-hoover")],
)
def test_resume_reproduces_uninterrupted_run(tmp_path: Path, ensemble: str, thermostat: str | None) -> None:
    kw = {**NVT, "ensemble": ensemble, "thermostat": thermostat}
    whole, split = tmp_path / "whole.h5", tmp_path / "split.h5"
    run_md(CU, corrected_emt(), steps=40, traj=whole, **kw)
    run_md(CU, corrected_emt(), steps=20, traj=split, **kw)
    run_md(CU, corrected_emt(), steps=40, traj=split, resume=True, **kw)
    assert_same_frames(whole, split)
    if ensemble == "npt":
        with Trajectory(whole) as t:
            assert np.ptp(t.array("cell")[:, 0, 0]) > 0  # the barostat moved the cell


#: what an ASE 3.29.0 integrator changes in a step besides the checkpointed state (INTEGRATOR_STATE): step
#: counters, Langevin's per-step random draws, and the Nosé-Hoover/MTK working copies of the atoms'
#: positions, momenta and cell (made from the atoms when an integrator is built)
REBUILT_EACH_RUN = {"nsteps", "max_steps", "rnd_pos", "rnd_vel", "v", "_p", "_q", "_h"}


def _numbers(obj: object, prefix: str = "") -> dict[str, np.ndarray]:
    """Numeric attributes of an ASE integrator and of its thermostat and barostat, by attribute path."""
    out = {}
    for name, value in vars(obj).items():
        if isinstance(value, (int, float, np.ndarray)) and not isinstance(value, bool):
            out[prefix + name] = np.array(value, dtype=float)
        elif name in ("_thermostat", "_barostat"):
            out.update(_numbers(value, f"{prefix}{name}."))
    return out


@pytest.mark.parametrize(
    ("ensemble", "thermostat"), [(e, t) for e, ts in THERMOSTATS.items() for t in ts]
)
def test_ase_integrator_internals(ensemble: str, thermostat: str) -> None:
    """softcalc checkpoints private variables of ASE's integrators (no public API holds them; tested with
    ASE 3.29.0). This fails when an ASE release renames, drops or adds one: update INTEGRATOR_STATE."""
    import ase
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms = CU.copy()
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(1))
    dyn = make_dynamics(atoms, EnsembleSettings(ensemble, thermostat, temperature_K=500.0),
                        np.random.default_rng(0))
    before = _numbers(dyn)
    dyn.run(5)
    after = _numbers(dyn)
    changed = {k for k, v in after.items() if k not in before or not np.array_equal(before[k], v)}
    state = set(state_attributes(dyn))
    assert changed - REBUILT_EACH_RUN == state, (
        f"ASE {ase.__version__} {type(dyn).__name__}: its state variables are now "
        f"{sorted(changed - REBUILT_EACH_RUN)}, softcalc checkpoints {sorted(state)} (tested: ASE 3.29.0)"
    )
    assert set(integrator_state(dyn)) == state


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    traj = tmp_path / "a.h5"
    run_md(CU, corrected_emt(), steps=10, traj=traj, **NVT)
    with pytest.raises(TrajectoryFileError, match="timestep_fs"):
        run_md(CU, corrected_emt(), steps=20, traj=traj, resume=True, **{**NVT, "timestep_fs": 1.0})
    with pytest.raises(TrajectoryFileError, match="exists"):
        run_md(CU, corrected_emt(), steps=20, traj=traj, **NVT)
    assert run_md(CU, corrected_emt(), steps=5, traj=traj, overwrite=True, **{**NVT, "every": 1}).frames == 6


def test_nve_conserves_energy_and_velocities_are_stored_in_angstrom_per_fs(tmp_path: Path) -> None:
    traj = tmp_path / "nve.h5"
    run_md(CU, corrected_emt(), ensemble="nve", temperature_K=300, timestep_fs=1.0, steps=100, every=10,
           traj=traj, seed=1, progress=False)
    with Trajectory(traj) as t:
        total = t.array("potential_energy") + t.array("kinetic_energy")
        kinetic = t.array("kinetic_energy")
        v = t.array("velocities")
        masses = t.masses
    assert np.ptp(total) < 0.02 * np.ptp(kinetic)
    ke_from_v = 0.5 * np.einsum("i,fij->f", masses, (v / units.fs) ** 2)
    np.testing.assert_allclose(ke_from_v, kinetic, rtol=1e-10)


def test_exploding_run_stops_cleanly_with_a_valid_file(tmp_path: Path) -> None:
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [4.0, 0, 0]])
    dimer.set_velocities(np.array([[0.5, 0, 0], [-0.5, 0, 0]]) / units.fs)  # head-on at 1 Å/fs
    calc = SoftCorrectedCalc(MorsePotential(epsilon=1.0, r0=2.5, rho0=6.0), scale=0.9)
    traj = tmp_path / "boom.h5"
    with pytest.raises(MDInstabilityError, match="blow"):
        run_md(dimer, calc, ensemble="nve", timestep_fs=0.5, steps=200, every=1, traj=traj, progress=False)
    with Trajectory(traj) as t:
        assert t.metadata["status"].startswith("unstable")
        assert len(t) >= 3
        assert np.isfinite(t.array("positions")).all()
        assert t.array("step")[-1] < 200


def test_unwritable_path_and_full_disk_fail_before_the_run(tmp_path: Path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(TrajectoryFileError, match="cannot write"):
        run_md(CU, corrected_emt(), steps=10, traj=blocker / "x.h5", progress=False)

    class Usage:
        free = 1000

    monkeypatch.setattr("softcalc.md.trajectory.shutil.disk_usage", lambda path: Usage())
    with pytest.raises(TrajectoryFileError, match="MiB are free"):
        run_md(CU, corrected_emt(), steps=10, traj=tmp_path / "full.h5", progress=False)
    assert not (tmp_path / "full.h5").exists()


def test_cli_md_and_export_round_trip(tmp_path: Path, capsys) -> None:
    structure = tmp_path / "si.vasp"
    bulk("Si", "diamond", a=5.43, cubic=True).write(structure, format="vasp")
    traj, xyz = tmp_path / "si.h5", tmp_path / "si.xyz"
    args = ["md", "--model", "toy-morse", "--scale", "1.1", "--structure", str(structure),
            "--ensemble", "nvt",
            "--temperature", "300", "--timestep", "1", "--steps", "20", "--every", "5", "--traj", str(traj),
            "--seed", "1", "--forces", "--quiet"]
    assert main(args) == 0
    assert main(["md-export", str(traj), str(xyz)]) == 0
    images = read(xyz, index=":")
    with Trajectory(traj) as t:
        assert t.metadata["model"] == "toy-morse"
        assert t.metadata["command"].startswith("softcalc")
        assert len(images) == len(t) == 5
        for image, frame in zip(images, t):
            np.testing.assert_allclose(image.positions, frame.positions, atol=1e-6)
            np.testing.assert_allclose(image.get_forces(), frame.get_forces(), atol=1e-6)
            assert image.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-6)
    unwritable = ["--traj", "/proc/softcalc/x.h5"]
    assert main([*args[: args.index("--traj")], *unwritable, "--quiet"]) == 2
    assert "cannot write the trajectory" in capsys.readouterr().err


def test_vdos_of_a_dimer_peaks_at_the_harmonic_frequency_and_scales_with_sqrt_lambda(tmp_path: Path) -> None:
    epsilon, r0, rho0 = 1.0, 2.5, 6.0  # Morse: curvature k = 2 ε ρ0² / r0² at r0
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [r0 + 0.02, 0, 0]])
    mu = dimer.get_masses()[0] / 2
    peaks = {}
    for lam in (1.0, 0.8):
        calc = SoftCorrectedCalc(MorsePotential(epsilon=epsilon, r0=r0, rho0=rho0), scale=lam)
        traj = tmp_path / f"dimer-{lam}.h5"
        run_md(dimer, calc, ensemble="nve", timestep_fs=1.0, steps=1000, every=5, flush_every=100, traj=traj,
               init_velocities=False, progress=False)
        with Trajectory(traj) as t:
            freq, dos = vdos(t.array("velocities"), dt_fs=5.0, masses=t.masses, max_lag=len(t) - 10)
        peaks[lam] = freq[np.argmax(dos)]
        k = lam * 2 * epsilon * rho0**2 / r0**2
        nu = np.sqrt(k / mu) * units.fs * 1e3 / (2 * np.pi)  # THz
        assert peaks[lam] == pytest.approx(nu, rel=0.02)
    assert peaks[0.8] / peaks[1.0] == pytest.approx(np.sqrt(0.8), rel=0.01)


def test_msd_and_rdf_of_a_crystal(tmp_path: Path) -> None:
    traj = tmp_path / "cu.h5"
    run_md(CU, corrected_emt(), steps=100, traj=traj, **NVT)
    with Trajectory(traj) as t:
        images = t.to_atoms()
        m = msd(t.array("positions"), t.array("cell"))
    r, g = rdf(images, r_max=3.0, n_bins=60)
    first_peak = r[np.argmax(g)]
    assert first_peak == pytest.approx(3.61 / np.sqrt(2), abs=0.1)
    assert g[r < 2.0].max() == 0
    assert m[0] == 0 and 0 < m[-1] < 0.5  # a vibrating solid: bounded, sub-Å² displacements


def test_vdos_comparison_with_the_dft_phonon_dos(data_dir: Path, tmp_path: Path) -> None:
    from softcalc.md.compare import compare_vdos, harmonic_dos, mean_frequency

    dft = harmonic_dos(data_dir / "phonons/phonopy-examples/Si", mesh=(8, 8, 8))
    assert np.trapezoid(dft[1], dft[0]) == pytest.approx(1.0)
    soft = (0.9 * dft[0], dft[1] / 0.9)  # the same DOS with every frequency softened by 10 %
    out = compare_vdos({"soft": soft, "same": dft}, dft, png=tmp_path / "vdos.png")
    assert out["mean_frequency_ratio"]["soft"] == pytest.approx(0.9, rel=1e-3)
    assert out["overlap"]["same"] == pytest.approx(1.0, abs=1e-6)
    assert out["overlap"]["soft"] < 0.9
    assert mean_frequency(dft) > 5.0  # Si phonons span 0-16 THz
    assert (tmp_path / "vdos.png").stat().st_size > 0


def test_disk_full_during_the_run_keeps_committed_frames(tmp_path: Path, monkeypatch) -> None:
    import softcalc.md.trajectory as trajectory

    real, calls = trajectory._write_checkpoint, []

    def fill_up(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        real(*args, **kwargs)

    monkeypatch.setattr(trajectory, "_write_checkpoint", fill_up)
    traj = tmp_path / "full.h5"
    with pytest.raises(TrajectoryFileError, match="No space left.*--resume"):
        run_md(CU, corrected_emt(), steps=50, traj=traj, **NVT)
    monkeypatch.undo()
    with Trajectory(traj) as t:
        np.testing.assert_array_equal(t.array("step"), [0, 5, 10])  # frame 0, then one commit of 2 frames
    run_md(CU, corrected_emt(), steps=50, traj=traj, resume=True, **NVT)
    with Trajectory(traj) as t:
        np.testing.assert_array_equal(t.array("step"), np.arange(0, 51, 5))


def test_global_lambda_nve_is_the_bare_dynamics_on_a_rescaled_clock() -> None:
    """E' = E_ref + λ(E − E_ref) makes velocity Verlet at Δt from v₀ the bare run at Δt·√λ from v₀/√λ.

    So a global correction cannot change how well NVE conserves energy beyond what the bare model does
    at a √λ longer step on that trajectory: positions agree step by step and E' − E_ref = λ (E − E_ref).
    """
    from ase.md.verlet import VelocityVerlet

    lam, dt, steps = 1.15, 2.0 * units.fs, 40
    zero = {"Cu": 0.0}
    start = CU.copy()
    start.rattle(0.05, seed=4)
    start.set_velocities(np.random.default_rng(4).normal(0, 0.02, (len(CU), 3)))
    corrected, bare = start.copy(), start.copy()
    corrected.calc = SoftCorrectedCalc(EMT(), scale=lam, reference_energies=zero)
    bare.set_velocities(start.get_velocities() / np.sqrt(lam))
    bare.calc = EMT()
    md_corrected = VelocityVerlet(corrected, timestep=dt)
    md_bare = VelocityVerlet(bare, timestep=dt * np.sqrt(lam))
    for _ in range(steps):
        md_corrected.run(1)
        md_bare.run(1)
        np.testing.assert_allclose(corrected.positions, bare.positions, atol=1e-9)
        assert corrected.get_potential_energy() == pytest.approx(lam * bare.get_potential_energy(), abs=1e-9)
    assert np.abs(corrected.positions - start.positions).max() > 0.05  # the atoms really moved
