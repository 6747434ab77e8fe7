"""Faults a user meets: damaged weights, malformed phonopy folders, unwritable outputs, and what the
command line makes of every error (one line and exit code 2 for a user mistake, a traceback and a
request to report it for a bug).

Damaged weights are copies of the shared models in a temporary folder, truncated, overwritten with
random bytes or with a few bytes changed; loading stops at the damage, so these tests are fast.
Malformed phonopy folders are copies of the shared Si example. Models elsewhere are the toy Morse.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import softcalc
from softcalc.cli import BUG_REPORT, main
from softcalc.errors import CorruptWeightsError, DataError, SoftcalcError, UnknownModelError
from softcalc.fileio import OutputPathError, check_outputs, check_writable
from softcalc.weight_files import loading_weights, weights_damage

SI = "phonons/phonopy-examples/Si"
NACL = "phonons/phonopy-examples/NaCl"
M3GNET = "matgl/M3GNet-MP-2021.2.8-PES"


# ---------------------------------------------------------------------------------------- helpers
def writable_copy(src: Path, dst: Path) -> Path:
    """A copy of a (read-only) shared file or folder that the test may change."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=shutil.copyfile)
        os.chmod(dst, 0o755)
    else:
        shutil.copyfile(src, dst)
    return dst


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def randomize(path: Path, size: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(size))
    return path


def overwrite_middle(path: Path, n: int = 64) -> Path:
    """Change n bytes in the middle of the file: the size stays, the content is wrong."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + n] = bytes(255 - b for b in data[middle : middle + n])
    path.write_bytes(bytes(data))
    return path


def one_line_error(err: str, command: str) -> str:
    """The error line of ``err`` (stderr of a failed command); checks there is one and no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"softcalc {command}: error: ")]
    assert len(lines) == 1, err
    assert "Fix:" in lines[0], err
    return lines[0]


def assert_damaged(error: pytest.ExceptionInfo, file: Path, problem: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert str(file) in message and "damaged" in message and problem in message, message
    assert "Fix:" in message
    assert error.value.path == str(file)


# --------------------------------------------------------------------------------- 1. weights
@pytest.fixture(scope="module")
def chgnet_checkpoint() -> Path:
    pytest.importorskip("chgnet")
    from softcalc_chgnet._plugin import find_checkpoint

    return find_checkpoint("chgnet")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(truncate, "truncated"), (randomize, "not a torch file"), (lambda p: truncate(p, 0), "empty")],
    ids=["truncated", "random-bytes", "empty"],
)
def test_damaged_mace_model_names_the_file(model_dir, tmp_path, damage, problem) -> None:
    pytest.importorskip("mace")
    path = damage(writable_copy(model_dir / "mace/mace_swa.model", tmp_path / "gst.model"))
    with pytest.raises(CorruptWeightsError) as error:
        softcalc.load_model(path)
    assert_damaged(error, path, problem)
    assert "MACE" in str(error.value) and "get gst.model again" in str(error.value)


def test_damaged_foundation_model_in_model_dir_says_where_to_copy_it(model_dir, tmp_path, monkeypatch):
    pytest.importorskip("mace")
    from softcalc_mace._names import FOUNDATION_MODELS

    name, model = next(iter(FOUNDATION_MODELS.items()))
    target = tmp_path / "mace" / model.file
    target.parent.mkdir()
    truncate(writable_copy(model_dir / "mace/mace_swa.model", target))
    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path))
    with pytest.raises(CorruptWeightsError) as error:
        softcalc.load_model(name)
    assert_damaged(error, target, "truncated")
    assert f"copy {model.file} again into {target.parent}" in str(error.value)


@pytest.mark.parametrize(
    ("file", "damage", "problem"),
    [
        ("state.pt", truncate, "truncated"),
        ("model.pt", truncate, "truncated"),
        ("state.pt", randomize, "not a torch file"),
        ("model.json", truncate, "not valid JSON"),
        ("model.pt", overwrite_middle, "fails its checksum"),
    ],
    ids=["state-truncated", "model-truncated", "state-random", "json-truncated", "model-overwritten"],
)
def test_damaged_matgl_folder_names_the_damaged_file(model_dir, tmp_path, file, damage, problem) -> None:
    pytest.importorskip("matgl")
    folder = writable_copy(model_dir / M3GNET, tmp_path / "M3GNet-copy")
    damage(folder / file)
    with pytest.raises(CorruptWeightsError) as error:
        softcalc.load_model(folder)
    assert_damaged(error, folder / file, problem)
    assert f"replace {folder} by a good copy" in str(error.value)


@pytest.mark.parametrize(
    ("name", "damage", "problem"),
    [("c.pth.tar", truncate, "truncated"), ("c.pth.tar", randomize, "not a torch file"),
     ("c.pt", truncate, "truncated")],
    ids=["pth.tar-truncated", "pth.tar-random", "pt-truncated"],
)
def test_damaged_chgnet_checkpoint_names_the_file(chgnet_checkpoint, tmp_path, name, damage, problem) -> None:
    """A damaged .pt is claimed by no plugin (CHGNet cannot open it to recognise it): the registry says
    it is damaged instead of 'no plugin recognises'."""
    path = damage(writable_copy(chgnet_checkpoint, tmp_path / name))
    with pytest.raises(CorruptWeightsError) as error:
        softcalc.load_model(path)
    assert_damaged(error, path, problem)


def test_damaged_pretrained_chgnet_in_model_dir_says_where_to_copy_it_from(
    chgnet_checkpoint, tmp_path, monkeypatch
) -> None:
    target = tmp_path / "chgnet" / chgnet_checkpoint.name
    target.parent.mkdir()
    truncate(writable_copy(chgnet_checkpoint, target))
    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path))
    with pytest.raises(CorruptWeightsError) as error:
        softcalc.load_model("chgnet")
    assert_damaged(error, target, "truncated")
    assert "from the chgnet wheel" in str(error.value)


def test_loading_weights_converts_loader_errors_and_passes_others(tmp_path) -> None:
    good = tmp_path / "w.bin"  # not a suffix weights_damage checks: the loader's error decides
    good.write_bytes(b"x")
    for raised in [RuntimeError("Unknown error occurred while loading model"), EOFError("Ran out of input"),
                   KeyError("state_dict"), ValueError("Bad serialized model")]:
        with pytest.raises(CorruptWeightsError, match="w.bin") as error, loading_weights(good, "toy", "redo"):
            raise raised
        assert str(error.value).endswith("Fix: redo.") and error.value.__cause__ is raised
    for passed in [ImportError("no module named e3nn"), MemoryError(), UnknownModelError("not a model")]:
        with pytest.raises(type(passed)), loading_weights(good, "toy"):
            raise passed
    assert weights_damage(good) is None


def test_healthy_shared_weights_show_no_damage(model_dir) -> None:
    assert weights_damage(model_dir / M3GNET) is None
    assert weights_damage(model_dir / "mace/mace_swa.model") is None


def test_cli_reports_damaged_weights_in_one_line(chgnet_checkpoint, tmp_path, capsys) -> None:
    path = truncate(writable_copy(chgnet_checkpoint, tmp_path / "c.pth.tar"))
    structure = tmp_path / "si.xyz"
    structure.write_text("2\n\nSi 0 0 0\nSi 1.4 1.4 1.4\n")
    assert main(["hessian", str(structure), "--model", str(path), "--out", str(tmp_path / "h.h5")]) == 2
    line = one_line_error(capsys.readouterr().err, "hessian")
    assert str(path) in line and "damaged" in line


# --------------------------------------------------------------------------------- 2. phonopy
@pytest.fixture
def si_copy(data_dir, tmp_path) -> Path:
    return writable_copy(data_dir / SI, tmp_path / "Si")


def _nacl_force_sets(folder: Path, data_dir: Path) -> None:
    shutil.copyfile(data_dir / NACL / "FORCE_SETS", folder / "FORCE_SETS")


def _truncated_force_sets(folder: Path, data_dir: Path) -> None:
    lines = (folder / "FORCE_SETS").read_text().splitlines()
    (folder / "FORCE_SETS").write_text("\n".join(lines[: len(lines) // 2]) + "\n")


def _empty_force_sets(folder: Path, data_dir: Path) -> None:
    (folder / "FORCE_SETS").write_text("")


def _header_only_force_sets(folder: Path, data_dir: Path) -> None:  # displacements, no forces
    lines = (folder / "FORCE_SETS").read_text().splitlines()
    (folder / "FORCE_SETS").write_text("\n".join(lines[:5]) + "\n")


def _nan_force(folder: Path, data_dir: Path) -> None:
    text = (folder / "FORCE_SETS").read_text()
    (folder / "FORCE_SETS").write_text(text.replace("-0.0941483300", "nan", 1))


def _garbage_force_sets(folder: Path, data_dir: Path) -> None:
    (folder / "FORCE_SETS").write_text("forces are in OUTCAR\n")


def _empty_yaml(folder: Path, data_dir: Path) -> None:
    (folder / "phonopy_disp.yaml").write_text("")


def _garbage_yaml(folder: Path, data_dir: Path) -> None:
    (folder / "phonopy_disp.yaml").write_text("phonopy: [unclosed\n  \tdim: 2 2 2\n")


def _yaml_without_structure(folder: Path, data_dir: Path) -> None:
    (folder / "phonopy_disp.yaml").write_text("phonopy:\n  version: 2.20.0\n")


MALFORMED = {
    "nacl-force-sets": (_nacl_force_sets, "holds forces on 64 atoms but the supercell"),
    "truncated-force-sets": (_truncated_force_sets, "is truncated"),
    "empty-force-sets": (_empty_force_sets, "FORCE_SETS is empty"),
    "forces-missing": (_header_only_force_sets, "is truncated"),
    "nan-force": (_nan_force, "is not finite"),
    "garbage-force-sets": (_garbage_force_sets, "is not a phonopy FORCE_SETS"),
    "empty-yaml": (_empty_yaml, "phonopy_disp.yaml cannot be used: it is empty"),
    "garbage-yaml": (_garbage_yaml, "is not valid YAML"),
    "yaml-without-structure": (_yaml_without_structure, "holds no structure"),
}


@pytest.mark.parametrize("fault", MALFORMED)
def test_malformed_phonopy_folder_is_a_data_error(si_copy, data_dir, fault) -> None:
    from softcalc.data.phonopy_sets import phonopy_force_frames
    from softcalc.phonons.phonopy_io import read_phonopy

    damage, problem = MALFORMED[fault]
    damage(si_copy, data_dir)
    for load in (phonopy_force_frames, read_phonopy):
        with pytest.raises(DataError, match="Fix:") as error:
            load(si_copy)
        message = str(error.value)
        assert problem in message and str(si_copy) in message and "\n" not in message, message


@pytest.mark.parametrize("fault", ["nacl-force-sets", "truncated-force-sets", "empty-yaml", "garbage-yaml"])
def test_phonons_command_reports_malformed_folder(si_copy, data_dir, tmp_path, fault, capsys) -> None:
    damage, problem = MALFORMED[fault]
    damage(si_copy, data_dir)
    out = tmp_path / "o.json"
    argv = ["phonons", "--model", "toy-morse", "--phonopy-dir", str(si_copy), "--json", str(out)]
    assert main([*argv, "--quiet"]) == 2
    assert problem in one_line_error(capsys.readouterr().err, "phonons")
    assert not out.exists()


def test_force_sets_in_the_working_directory_are_never_mixed_in(si_copy, data_dir, tmp_path, monkeypatch):
    """phonopy reads ./FORCE_SETS when it is given none; softcalc must not let it."""
    from softcalc.phonons.phonopy_io import read_phonopy

    (si_copy / "FORCE_SETS").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(data_dir / SI / "FORCE_SETS", elsewhere / "FORCE_SETS")
    monkeypatch.chdir(elsewhere)
    phonon = read_phonopy(si_copy)
    assert all("forces" not in d for d in phonon.dataset["first_atoms"])
    assert phonon.force_constants is None
    assert Path.cwd() == elsewhere


# --------------------------------------------------------------------------- 3. writable outputs
def test_check_writable(tmp_path, monkeypatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    assert check_writable(tmp_path / "new" / "deeper" / "out.json") == tmp_path / "new/deeper/out.json"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    check_writable(tmp_path / "out", folder=True)
    for path, folder, problem in [
        (tmp_path, False, "is a folder, but a file is expected"),
        (afile, True, "is a file, but a folder is expected"),
        (afile / "out.json", False, f"{afile} is a file, not a folder"),
    ]:
        with pytest.raises(OutputPathError, match=problem):
            check_writable(path, "--out", folder=folder)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("softcalc.fileio.tempfile.mkstemp", refuse)
    with pytest.raises(OutputPathError, match="--json .* is not writable \\(Permission denied\\)"):
        check_writable(tmp_path / "o.json", "--json")


def test_check_outputs_refuses_one_path_twice_and_inputs(tmp_path) -> None:
    data = tmp_path / "d.extxyz"
    data.write_text("")
    with pytest.raises(OutputPathError, match="--out and --json both name"):
        check_outputs({"--out": tmp_path / "c.json", "--json": str(tmp_path / "c.json"), "--plot": None})
    with pytest.raises(OutputPathError, match="also an input"):
        check_outputs({"--out": data}, inputs=[str(data)])
    check_outputs({"--out": tmp_path / "c.json", "--plot": None}, inputs=[data])


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads a model (the output check must come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the outputs were checked")

    monkeypatch.setattr("softcalc.cli.common.load_model", refuse)
    monkeypatch.setattr("softcalc.registry.load_model", refuse)


def _commands(bad: str, data: str) -> dict[str, list[str]]:
    model = ["--model", "toy-morse"]
    models = ["--models", "toy-morse"]
    return {
        "calibrate --out": ["calibrate", *model, "--data", data, "--out", bad],
        "calibrate --json": ["calibrate", *model, "--data", data, "--out", "c.json", "--json", bad],
        "calibrate --plot": ["calibrate", *model, "--data", data, "--out", "c.json", "--plot", bad],
        "evaluate --json": ["evaluate", *model, "--data", data, "--json", bad],
        "evaluate --plot": ["evaluate", *model, "--data", data, "--json", "e.json", "--plot", bad],
        "phonons --json": ["phonons", *model, "--phonopy-dir", data, "--json", bad],
        "phonons --plot": ["phonons", *model, "--phonopy-dir", data, "--json", "p.json", "--plot", bad],
        "hessian --out": ["hessian", data, *model, "--out", bad],
        "hessian --json": ["hessian", data, *model, "--out", "h.h5", "--json", bad],
        "bench softening --out": ["bench", "softening", *models, "--data", data, "--out", bad],
        "bench phonons --out": ["bench", "phonons", *models, "--data", data, "--out", bad],
    }


@pytest.mark.parametrize("case", list(_commands("", "")))
def test_unwritable_output_fails_before_the_model_loads(case, tmp_path, monkeypatch, no_model, capsys):
    monkeypatch.chdir(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = _commands(str(afile / "out"), str(tmp_path / "data.extxyz"))[case]
    assert main(argv) == 2
    command = " ".join(argv[:2]) if argv[0] == "bench" else argv[0]
    line = one_line_error(capsys.readouterr().err, command)
    assert case.split()[-1] in line and "is a file, not a folder" in line


def test_output_over_an_input_is_refused(tmp_path, no_model, capsys) -> None:
    data = tmp_path / "data.extxyz"
    data.write_text("")
    argv = ["calibrate", "--model", "toy-morse", "--data", str(data), "--out", str(data)]
    assert main(argv) == 2
    assert "also an input" in one_line_error(capsys.readouterr().err, "calibrate")


# ------------------------------------------------------------------------ 4. CLI exit-code policy
@pytest.fixture
def models_command_raises(monkeypatch):
    """Make `softcalc models` raise the given exception."""

    def install(exc: BaseException) -> None:
        def run(args):
            """list available model families and names"""
            raise exc

        monkeypatch.setattr("softcalc.cli.models.run", run)

    return install


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (FileNotFoundError(2, "No such file or directory", "in.json"), "No such file or directory: in.json"),
        (PermissionError(13, "Permission denied", "/root/x"), "Permission denied: /root/x"),
        (IsADirectoryError(21, "Is a directory", "out"), "Is a directory: out. Fix: give the path of a file"),
        (OSError(28, "No space left on device"), "No space left on device. Fix: free disk space"),
        (DataError("the data are bad. Fix: better data."), "the data are bad"),
    ],
    ids=["missing", "permission", "folder", "disk-full", "softcalc-error"],
)
def test_user_errors_are_one_line_with_exit_code_2(models_command_raises, exc, shown, capsys) -> None:
    models_command_raises(exc)
    assert main(["models"]) == 2
    assert shown in one_line_error(capsys.readouterr().err, "models")


def test_multi_line_messages_stay_one_error(models_command_raises, capsys) -> None:
    models_command_raises(SoftcalcError("weights not found. Searched:\n  - /a\n  - /b\nFix: set the path."))
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("softcalc models: error: weights not found. Searched:\n  - /a\n")
    assert err.count("error:") == 1 and "Traceback" not in err


def test_interrupt_is_one_line_with_exit_code_130(models_command_raises, capsys) -> None:
    models_command_raises(KeyboardInterrupt())
    assert main(["models"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "softcalc models: interrupted"


def test_a_bug_prints_the_traceback_and_asks_for_a_report(models_command_raises, capsys) -> None:
    models_command_raises(ZeroDivisionError("division by zero"))
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: division by zero" in err
    lines = err.strip().splitlines()
    assert lines[-2] == "softcalc models: command line: softcalc models"
    assert lines[-1] == f"softcalc models: {BUG_REPORT}"
    assert "error:" not in err


def test_real_user_mistakes_end_in_one_line(tmp_path, capsys) -> None:
    """A few mistakes through the real commands (the reliability probe runs many more)."""
    missing, out = str(tmp_path / "missing.extxyz"), str(tmp_path / "out.json")
    cases = {
        "evaluate": ["evaluate", "--model", "no-such-model", "--data", missing, "--json", out],
        "hessian": ["hessian", missing, "--model", "toy-morse", "--out", str(tmp_path / "h.h5")],
        "phonons": ["phonons", "--model", "toy-morse", "--phonopy-dir", missing, "--json", out],
    }
    for command, argv in cases.items():
        assert main(argv) == 2, command
        one_line_error(capsys.readouterr().err, command)


def test_duplicated_atom_is_named_not_a_math_error() -> None:
    """Two atoms on one position: a clear overlap error (the unit hint would take log(0))."""
    from ase import Atoms

    from softcalc.errors import InvalidStructureError
    from softcalc.structure import check_structure

    atoms = Atoms("Si3", positions=[(0, 0, 0), (0, 0, 0), (2.35, 0, 0)], cell=[10, 10, 10], pbc=True)
    with pytest.raises(InvalidStructureError, match="same position: an atom listed twice"):
        check_structure(atoms)


def test_md_analyze_of_a_too_short_run_is_one_line(tmp_path, capsys) -> None:
    from ase.build import bulk

    structure = tmp_path / "si.vasp"
    bulk("Si", "diamond", a=5.43, cubic=True).write(structure, format="vasp")
    traj = tmp_path / "short.h5"
    run = ["md", "--model", "toy-morse", "--structure", str(structure), "--ensemble", "nve", "--temperature",
           "300", "--steps", "4", "--every", "1", "--traj", str(traj), "--seed", "1", "--quiet"]
    assert main(run) == 0
    capsys.readouterr()
    assert main(["md-analyze", str(traj), "--out", str(tmp_path / "analysis")]) == 2
    line = one_line_error(capsys.readouterr().err, "md-analyze")
    assert "needs at least" in line and "Fix:" in line
