"""Command-line options: range checks by the argument parser, model options, structure reading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from softcalc.cli import build_parser, main
from softcalc.cli.common import read_structure
from softcalc.errors import DataError

CALIBRATE = ["calibrate", "--model", "toy-morse", "--data", "d.extxyz", "--out", "c.json"]
SOFTENING = ["bench", "softening", "--models", "toy-morse", "--out", "out"]
PHONONS = ["bench", "phonons", "--models", "toy-morse", "--out", "out"]
MD = ["md", "--model", "toy-morse", "--structure", "si.xyz", "--steps", "10", "--traj", "t.h5"]
HESSIAN = ["hessian", "si.xyz", "--model", "toy-morse", "--out", "h.h5"]


def rejected(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse's message for ``argv``, which must end the command with exit code 2."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [CALIBRATE, SOFTENING, PHONONS], ids=["calibrate", "bench-softening", "bench-phonons"]
)
@pytest.mark.parametrize("value", ["0", "-5"])
def test_bootstrap_must_be_positive(command, value, capsys) -> None:
    err = rejected([*command, "--bootstrap", value], capsys)
    assert f"argument --bootstrap: must be an integer >= 1, got {value}" in err


@pytest.mark.parametrize(
    ("argv", "option", "allowed"),
    [
        ([*SOFTENING, "--draws", "0"], "--draws", ">= 1"),
        ([*SOFTENING, "--frames", "1,0,5"], "--frames", ">= 1"),
        ([*SOFTENING, "--seed", "-1"], "--seed", ">= 0"),
        ([*CALIBRATE, "--frames", "0"], "--frames", ">= 1"),
        ([*MD, "--timestep", "0"], "--timestep", "> 0"),
        ([*MD, "--timestep", "nan"], "--timestep", "> 0"),
        ([*MD, "--temperature", "-300"], "--temperature", ">= 0"),
        ([*MD, "--every", "0"], "--every", ">= 1"),
        ([*MD, "--repeat", "2", "0", "2"], "--repeat", ">= 1"),
        ([*MD[:-4], "--steps", "-10", "--traj", "t.h5"], "--steps", ">= 0"),
        (["md-analyze", "t.h5", "--out", "o", "--skip", "-1"], "--skip", ">= 0"),
        ([*HESSIAN, "--delta", "-0.01"], "--delta", "> 0"),
        ([*HESSIAN, "--batch-size", "0"], "--batch-size", ">= 1"),
        ([*HESSIAN, "--scale", "0"], "--scale", "> 0"),
        ([*HESSIAN, "--scale", "1e308"], "--scale", "outside [0.1, 10]"),
        ([*HESSIAN, "--scale", "0.01"], "--scale", "outside [0.1, 10]"),
    ],
)
def test_out_of_range_values_are_rejected(argv, option, allowed, capsys) -> None:
    err = rejected(argv, capsys)
    assert f"argument {option}" in err and allowed in err


def test_non_numbers_are_rejected(capsys) -> None:
    err = rejected([*CALIBRATE, "--bootstrap", "many"], capsys)
    assert "argument --bootstrap: expected an integer >= 1, got 'many'" in err


def test_values_in_range_parse_as_before() -> None:
    args = build_parser().parse_args([*SOFTENING, "--frames", "1,3", "--draws", "2", "--bootstrap", "7"])
    assert (args.frames, args.draws, args.bootstrap, args.seed) == ([1, 3], 2, 7, 0)
    assert (args.models, args.device, args.dtype) == ("toy-morse", "cpu", None)
    args = build_parser().parse_args([*MD, "--temperature", "0", "--timestep", "0.5", "--seed", "0"])
    assert (args.temperature, args.timestep, args.seed, args.steps) == (0.0, 0.5, 0, 10)
    args = build_parser().parse_args(["bench", "softening", "--from-h5", "p.h5"])
    assert args.models is None


def test_read_structure_names_file_problem_and_fix(tmp_path) -> None:
    good = tmp_path / "si.extxyz"
    write(good, bulk("Si"))
    assert len(read_structure(good)) == 2
    (tmp_path / "empty.xyz").write_text("")
    (tmp_path / "bad.xyz").write_text("not a structure\n")
    for path, problem in [
        (tmp_path / "missing.xyz", "does not exist"),
        (tmp_path, "is a folder"),
        (tmp_path / "empty.xyz", "cannot read a structure"),
        (tmp_path / "bad.xyz", "cannot read a structure"),
    ]:
        with pytest.raises(DataError, match=problem) as exc:
            read_structure(path)
        assert str(path) in str(exc.value) and "Fix:" in str(exc.value)


@pytest.mark.parametrize("command", ["hessian", "md"])
def test_commands_report_unreadable_structures_alike(command, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.xyz"
    bad.write_text("not a structure\n")
    argv = {
        "hessian": ["hessian", str(bad), "--model", "toy-morse", "--out", str(tmp_path / "h.h5")],
        "md": [*MD[:4], str(bad), *MD[5:]],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"softcalc {command}: error: cannot read a structure from {bad}")


def test_evaluate_refuses_a_scale_that_overflows(tmp_path, capsys) -> None:
    """`softcalc evaluate --scale 1e308` used to report MAE = inf with exit 0."""
    data = tmp_path / "dft.extxyz"
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.full((len(atoms), 3), 0.1))
    write(data, atoms, format="extxyz")
    out = tmp_path / "out.json"
    argv = ["evaluate", "--model", "toy-morse", "--data", str(data), "--json", str(out), "--quiet"]
    err = rejected([*argv, "--scale", "1e308"], capsys)
    lines = err.strip().splitlines()
    assert "argument --scale: scale λ = 1e+308 is outside [0.1, 10]" in lines[-1]
    assert "Fix: give a λ between 0.1 and 10" in lines[-1]
    assert not out.exists()
    assert main([*argv, "--scale", "1.2"]) == 0
    assert np.isfinite(json.loads(out.read_text())["mae"])
