"""MD resume checks: another model, correction, structure or settings is refused; so is a missing file."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential

from softcalc import SoftCorrectedCalc, load_model
from softcalc.cli import main
from softcalc.md import MDSettingsError, ResumeMismatchError, Trajectory, TrajectoryFileError, run_md

SI = bulk("Si", "diamond", a=5.43, cubic=True)
CU = bulk("Cu", "fcc", a=3.61, cubic=True)
NVE = dict(ensemble="nve", temperature_K=300.0, timestep_fs=1.0, every=5, flush_every=1, seed=3,
           progress=False)


def toy(scale: float | None = None):
    """The toy Morse model, bare or with a global scale."""
    calc = load_model("toy-morse")
    return calc if scale is None else SoftCorrectedCalc(calc, scale=scale)


def started(tmp_path: Path, atoms: Atoms = SI, calc=None, **kw) -> Path:
    """A 10-step trajectory of ``atoms`` (toy model by default) to resume."""
    traj = tmp_path / "run.h5"
    run_md(atoms, calc or toy(), steps=10, traj=traj, **{**NVE, **kw})
    return traj


def refused(traj: Path, atoms: Atoms, calc, **kw) -> str:
    """The message of the refused resume, after checking that the file was left as it was."""
    before = traj.read_bytes()
    with pytest.raises(ResumeMismatchError) as exc:
        run_md(atoms, calc, steps=20, traj=traj, resume=True, **{**NVE, **kw})
    assert traj.read_bytes() == before
    message = str(exc.value)
    assert message.startswith(f"cannot resume {traj}: ")
    assert "Fix: resume with the model, correction, structure and settings of the original run" in message
    assert "--overwrite" in message
    return message


def assert_same_frames(a: Path, b: Path) -> None:
    with Trajectory(a) as ta, Trajectory(b) as tb:
        assert len(ta) == len(tb)
        for name in ("step", "time", "positions", "velocities", "potential_energy", "cell"):
            np.testing.assert_array_equal(ta.array(name), tb.array(name), err_msg=name)


def test_another_structure_is_refused(tmp_path: Path) -> None:
    traj = started(tmp_path)
    ge = SI.copy()
    ge.symbols[:] = "Ge"
    message = refused(traj, ge, toy())
    assert ("atomic numbers: file has Si8 (8 atoms), given Ge8 (8 atoms), first difference at atom 0: "
            "Si in the file, Ge given") in message
    swapped = SI.copy()
    swapped.symbols[3] = "Ge"
    assert "first difference at atom 3: Si in the file, Ge given" in refused(traj, swapped, toy())
    assert "file has Si8 (8 atoms), given Si16 (16 atoms)" in refused(traj, SI.repeat((2, 1, 1)), toy())


def test_another_cell_is_refused_in_nve_but_npt_may_change_it(tmp_path: Path) -> None:
    traj = started(tmp_path)
    strained = SI.copy()
    strained.set_cell(SI.cell * 1.01, scale_atoms=True)
    message = refused(traj, strained, toy())
    assert "cell (Å): file has [[5.43, 0.0, 0.0]" in message and "given [[5.4843, 0.0, 0.0]" in message
    assert "NVE keeps the cell fixed" in message

    npt = dict(ensemble="npt", thermostat="nose-hoover", every=5, flush_every=1, seed=3, progress=False)
    whole, split = tmp_path / "whole.h5", tmp_path / "split.h5"
    run_md(CU, EMT(), steps=20, traj=whole, **npt)
    run_md(CU, EMT(), steps=10, traj=split, **npt)
    bigger = CU.copy()
    bigger.set_cell(CU.cell * 1.02, scale_atoms=True)  # e.g. the last frame: the checkpoint's cell is used
    run_md(bigger, EMT(), steps=20, traj=split, resume=True, **npt)
    assert_same_frames(whole, split)


def test_another_model_is_refused(tmp_path: Path) -> None:
    traj = started(tmp_path)
    other = toy()
    other.model.info = dataclasses.replace(other.info, name="toy-morse-2", weights_sha256="ab" * 32)
    message = refused(traj, SI, other)
    assert "model: file has 'toy-morse', given 'toy-morse-2'" in message
    assert f"model weights sha256: file has None, given '{'ab' * 32}'" in message

    cu = started(tmp_path / "cu", CU, EMT())
    message = refused(cu, CU, MorsePotential())
    assert "calculator: file has 'EMT', given 'MorsePotential'" in message


def test_another_correction_is_refused(tmp_path: Path) -> None:
    bare = started(tmp_path / "bare")
    message = refused(bare, SI, toy(1.1))
    assert "correction: file has none (bare model), given global scale 1.1" in message
    corrected = started(tmp_path / "corrected", calc=toy(1.1))
    assert "correction: file has global scale 1.1, given none (bare model)" in refused(corrected, SI, toy())
    assert "correction scale: file has 1.1, given 1.2" in refused(corrected, SI, toy(1.2))
    anchored = SoftCorrectedCalc(load_model("toy-morse"), scale=1.1, reference_energies={"Si": -1.0})
    assert ("reference energies μ_Z (eV/atom): file has {'Si': -0.8}, given {'Si': -1.0}"
            in refused(corrected, SI, anchored))


def test_other_settings_are_refused_each_named(tmp_path: Path) -> None:
    traj = started(tmp_path)
    assert "timestep_fs: file has 1.0, given 2.0" in refused(traj, SI, toy(), timestep_fs=2.0)
    message = refused(traj, SI, toy(), ensemble="nvt", thermostat="nose-hoover")
    assert "ensemble: file has 'nve', given 'nvt'" in message
    assert "thermostat: file has 'none', given 'nose-hoover'" in message
    assert "every: file has 5, given 10" in refused(traj, SI, toy(), every=10)
    nvt = started(tmp_path / "nvt", ensemble="nvt", thermostat="langevin")
    kw = dict(ensemble="nvt", thermostat="langevin")
    assert "friction_per_fs: file has 0.01, given 0.02" in refused(nvt, SI, toy(), friction_per_fs=0.02, **kw)
    assert "temperature_K: file has 300.0, given 400.0" in refused(nvt, SI, toy(), temperature_K=400.0, **kw)


def test_every_mismatch_is_named_in_one_message(tmp_path: Path) -> None:
    traj = started(tmp_path)
    ge = bulk("Ge", "diamond", a=5.66, cubic=True)  # the case: a Si run resumed with a Ge POSCAR
    message = refused(traj, ge, toy(1.1), timestep_fs=2.0)
    for what in ("atomic numbers", "cell (Å)", "correction: file has none", "timestep_fs"):
        assert what in message


def test_a_matching_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    kw = {**NVE, "ensemble": "nvt", "thermostat": "langevin", "temperature_K": 500.0}
    whole, split = tmp_path / "whole.h5", tmp_path / "split.h5"
    run_md(SI, toy(1.1), steps=30, traj=whole, **kw)
    run_md(SI, toy(1.1), steps=15, traj=split, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file with every record resumes without warnings
        run_md(SI, toy(1.1), steps=30, traj=split, resume=True, command="softcalc md --resume", **kw)
    assert_same_frames(whole, split)
    with Trajectory(split) as t:
        meta = t.metadata
    assert meta["fingerprint"] == {
        "calculator": "ModelCalculator", "family": "toy", "name": "toy-morse", "weights_sha256": None,
        "correction": {"kind": "global", "scale": 1.1, "reference_energies": {"Si": -0.8}},
    }
    assert meta["status"] == "complete"
    assert [(r["step"], r["command"]) for r in meta["resumed"]] == [(15, "softcalc md --resume")]


def test_an_older_file_resumes_with_a_warning_naming_what_was_not_checked(tmp_path: Path) -> None:
    traj = started(tmp_path, calc=toy(1.1))
    with h5py.File(traj, "r+") as h5:
        del h5.attrs["fingerprint"]  # as written before softcalc recorded it
    message = refused(traj, SI, toy(1.2))
    assert "correction scale: file has 1.1, given 1.2" in message
    with pytest.warns(UserWarning, match="did not record: reference energies μ_Z. The resume"):
        assert run_md(SI, toy(1.1), steps=20, traj=traj, resume=True, **NVE).step == 20


def test_resume_of_a_missing_file(tmp_path: Path) -> None:
    traj = tmp_path / "missing.h5"
    with pytest.raises(TrajectoryFileError, match="no such trajectory.*--resume-or-new"):
        run_md(SI, toy(), steps=10, traj=traj, resume=True, **NVE)
    assert not traj.exists()
    assert run_md(SI, toy(), steps=10, traj=traj, resume="if-exists", **NVE).steps_run == 10
    assert run_md(SI, toy(), steps=20, traj=traj, resume="if-exists", **NVE).steps_run == 10
    with pytest.raises(MDSettingsError, match="exclude each other"):
        run_md(SI, toy(), steps=20, traj=traj, resume=True, overwrite=True, **NVE)
    with pytest.raises(MDSettingsError, match="resume must be one of"):
        run_md(SI, toy(), steps=20, traj=traj, resume="yes", **NVE)


def test_cli_refuses_a_missing_file_and_a_ge_structure_unless_asked(tmp_path: Path, capsys) -> None:
    si, ge = tmp_path / "Si.vasp", tmp_path / "Ge.vasp"
    SI.write(si, format="vasp")
    bulk("Ge", "diamond", a=5.66, cubic=True).write(ge, format="vasp")
    traj = tmp_path / "si.h5"
    args = ["md", "--model", "toy-morse", "--timestep", "1", "--every", "5", "--traj", str(traj),
            "--seed", "1", "--quiet"]
    assert main([*args, "--structure", str(si), "--steps", "10", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"softcalc md: error: cannot resume {traj}: no such trajectory. Fix: drop --resume" in err
    assert "--resume-or-new" in err
    assert not traj.exists()

    assert main([*args, "--structure", str(si), "--steps", "10", "--resume-or-new"]) == 0
    assert main([*args, "--structure", str(ge), "--steps", "20", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "atomic numbers: file has Si8 (8 atoms), given Ge8 (8 atoms)" in err
    assert "(it was started with: softcalc" in err
    assert main([*args, "--structure", str(si), "--steps", "20", "--resume"]) == 0
    with Trajectory(traj) as t:
        np.testing.assert_array_equal(t.array("step"), [0, 5, 10, 15, 20])
    with pytest.raises(SystemExit):
        main([*args, "--structure", str(si), "--steps", "20", "--resume", "--overwrite"])
    assert "not allowed with argument" in capsys.readouterr().err


def holding(path: Path, mode: str) -> subprocess.Popen:
    """Another process with ``path`` open in HDF5 ``mode`` (``r+``: as a running MD writes it); it closes
    the file and exits when its stdin is closed (:func:`release`)."""
    code = (f"import sys, h5py; f = h5py.File({str(path)!r}, {mode!r}); print('open', flush=True); "
            "sys.stdin.read(); f.close()")
    pipe = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=pipe, stdout=pipe, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def test_a_trajectory_another_process_writes_is_refused_by_name(tmp_path: Path, capsys) -> None:
    """Not HDF5's 'unable to lock file, errno = 11': the file, who holds it, and the fix."""
    traj = started(tmp_path)
    si = tmp_path / "Si.vasp"
    SI.write(si, format="vasp")
    before = traj.read_bytes()
    writer = holding(traj, "r+")
    try:
        with pytest.raises(TrajectoryFileError) as exc:
            run_md(SI, toy(), steps=20, traj=traj, resume=True, **NVE)
        message = str(exc.value)
        assert message.startswith(f"cannot read the trajectory {traj}: it is being written by another")
        assert "Fix: wait for that process to finish, or stop it" in message and "copy the file" in message
        with pytest.raises(TrajectoryFileError, match="it is being written by another process"):
            Trajectory(traj)
        with pytest.raises(TrajectoryFileError) as exc:
            run_md(SI, toy(), steps=10, traj=traj, overwrite=True, **NVE)
        assert str(exc.value).startswith(f"cannot create the trajectory {traj}: it is being written")
        args = ["md", "--model", "toy-morse", "--structure", str(si), "--steps", "20", "--timestep", "1",
                "--every", "5", "--traj", str(traj), "--seed", "3", "--quiet", "--resume"]
        assert main(args) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"softcalc md: error: cannot read the trajectory {traj}: it is being written")
    finally:
        release(writer)
    assert traj.read_bytes() == before
    reader = holding(traj, "r")  # a reader (md-analyze) blocks the resume's write, not its read
    try:
        with pytest.raises(TrajectoryFileError) as exc:
            run_md(SI, toy(), steps=20, traj=traj, resume=True, **NVE)
        assert str(exc.value).startswith(
            f"cannot resume {traj}: it is being written by another process, or another process has it open"
        )
    finally:
        release(reader)
    assert traj.read_bytes() == before
    assert run_md(SI, toy(), steps=20, traj=traj, resume=True, **NVE).step == 20  # once the others let go
