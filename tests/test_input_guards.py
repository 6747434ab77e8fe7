"""Input guards: corrections that do not belong to the model or structure, and unphysical geometries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, diamond100, molecule
from ase.calculators.calculator import CalculatorError
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

import softcalc
from softcalc import Correction, SoftCorrectedCalc
from softcalc.cli import main
from softcalc.errors import (
    CorrectionFileError,
    CorrectionMismatchError,
    InvalidStructureError,
    SettingsError,
)
from softcalc.lammps.bridge import PairBridge
from softcalc.structure import MAX_DENSITY, check_structure

TOY = {"family": "toy", "name": "toy-morse", "weights_sha256": None}


@pytest.fixture(scope="module")
def toy() -> softcalc.ModelCalculator:
    return softcalc.load_model("toy-morse")


@pytest.fixture
def sige() -> Atoms:
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.symbols[[0, 5]] = "Ge"
    atoms.rattle(0.05, seed=1)
    return atoms


def fitted(**changes) -> Correction:
    """A correction as `softcalc calibrate` writes it for the toy model."""
    fields = {"scale": 1.1, "model": TOY, "regime": "own-material", "statistics": {"scale_std": 0.01}}
    return Correction(**{**fields, **changes})


def without_model_block(tmp_path: Path, model: object = "delete") -> Path:
    """A calibrated correction file whose 'model' block was deleted (or replaced by ``model``)."""
    path = tmp_path / "fitted.json"
    fitted().save(path)
    data = json.loads(path.read_text())
    if model == "delete":
        del data["model"]
    else:
        data["model"] = model
    path.write_text(json.dumps(data))
    return path


# --- corrections without a model fingerprint --------------------------------------------------------


@pytest.mark.parametrize("model", ["delete", None, {"family": None, "name": None, "weights_sha256": None}])
def test_fitted_correction_file_without_model_is_refused(tmp_path: Path, toy, model) -> None:
    path = without_model_block(tmp_path, model)
    with pytest.raises(CorrectionMismatchError, match="names no model") as caught:
        SoftCorrectedCalc(toy, correction=path)
    message = str(caught.value)
    assert str(path) in message
    assert "softcalc calibrate --model toy-morse" in message and "'model' block" in message
    assert "check_model=False" in message and "--allow-any-model" in message
    loaded = Correction.load(path)  # the file is valid; only applying it to a model is refused
    with pytest.raises(CorrectionMismatchError, match=str(path)):
        SoftCorrectedCalc(toy, correction=loaded)


def test_fitted_correction_object_without_model_is_refused(toy) -> None:
    for correction in (fitted(model=None), Correction(scale=1.1, regime="transfer")):
        with pytest.raises(CorrectionMismatchError, match="this correction was fitted on data"):
            SoftCorrectedCalc(toy, correction=correction)


def test_explicit_override_applies_it(tmp_path: Path, toy, sige: Atoms) -> None:
    calc = SoftCorrectedCalc(toy, correction=without_model_block(tmp_path), check_model=False)
    np.testing.assert_allclose(calc.get_forces(sige), 1.1 * toy.get_forces(sige), atol=1e-12)


def test_manual_scales_need_no_fingerprint(tmp_path: Path, toy, sige: Atoms) -> None:
    path = tmp_path / "manual.json"
    Correction(scale=1.1).save(path)
    for calc in (
        SoftCorrectedCalc(toy, scale=1.1),
        SoftCorrectedCalc(toy, correction=Correction(scale=1.1)),
        SoftCorrectedCalc(toy, correction=path),
        SoftCorrectedCalc(toy, correction=fitted()),  # fitted, with the right fingerprint
    ):
        np.testing.assert_allclose(calc.get_forces(sige), 1.1 * toy.get_forces(sige), atol=1e-12)


def write_dft_data(path: Path) -> None:
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.rattle(0.1, seed=2)
    forces = softcalc.load_model("toy-morse").get_forces(atoms) * 0.9
    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=forces)
    write(path, atoms, format="extxyz")


def test_cli_refuses_it_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = without_model_block(tmp_path)
    write_dft_data(tmp_path / "dft.extxyz")
    argv = [
        "evaluate",
        "--model",
        "toy-morse",
        "--correction",
        str(path),
        "--data",
        str(tmp_path / "dft.extxyz"),
    ]
    assert main([*argv, "--json", str(tmp_path / "refused.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "names no model" in err and str(path) in err and "--allow-any-model" in err
    assert not (tmp_path / "refused.json").exists()
    assert main([*argv, "--allow-any-model", "--json", str(tmp_path / "allowed.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "allowed.json").read_text())["corrected"] is True


def test_lammps_bridge_refuses_it_unless_allowed(tmp_path: Path) -> None:
    path = without_model_block(tmp_path)
    with pytest.raises(CorrectionMismatchError, match=str(path)):
        PairBridge("toy-morse", ["Si", "Ge"], correction=path)
    bridge = PairBridge("toy-morse", ["Si", "Ge"], correction=path, check_model=False)
    assert bridge.calc.correction.scale == 1.1


# --- the range of a scale set by hand -----------------------------------------------------------------


@pytest.mark.parametrize("value", [1e308, 10.5, 0.09, 1e-300])
def test_manual_scale_outside_its_range_is_refused_everywhere(tmp_path: Path, value: float) -> None:
    """One rule (softcalc.correction.MANUAL_SCALE_RANGE) for Python, correction files and LAMMPS."""
    path = tmp_path / "manual.json"
    path.write_text(json.dumps({"schema": "softcalc.correction/1", "scale": value}))
    attempts = {
        "Correction": lambda: Correction(scale=value),
        "SoftCorrectedCalc": lambda: SoftCorrectedCalc("toy-morse", scale=value),
        "per-species": lambda: Correction(species_scales={"Si": 1.1, "Ge": value}),
        "file": lambda: SoftCorrectedCalc("toy-morse", correction=path),
        "LAMMPS": lambda: PairBridge("toy-morse", ["Si", "Ge"], scale=value),
    }
    for name, attempt in attempts.items():
        with pytest.raises(CorrectionFileError, match=r"outside \[0\.1, 10\]") as caught:
            attempt()
        message = str(caught.value)
        assert f"λ = {value:g}" in message and "Fix: give a λ between 0.1 and 10" in message, name
    assert "species scale of Ge" in str(pytest.raises(CorrectionFileError, attempts["per-species"]).value)
    assert str(path) in str(pytest.raises(CorrectionFileError, attempts["file"]).value)


@pytest.mark.parametrize("value", [0.1, 0.5, 2.5, 10.0])
def test_manual_scale_inside_its_range_is_applied(toy, sige: Atoms, value: float) -> None:
    calc = SoftCorrectedCalc(toy, scale=value)
    forces = calc.get_forces(sige)
    assert np.isfinite(forces).all()
    np.testing.assert_allclose(forces, value * toy.get_forces(sige), atol=1e-12)


def test_fitted_scale_is_judged_by_calibration_not_refused(toy, sige: Atoms) -> None:
    """A fitted λ outside the manual range stays loadable: calibration marked it not recommended."""
    correction = fitted(scale=12.0, recommended=False)
    with pytest.warns(UserWarning, match="not recommended"):
        calc = SoftCorrectedCalc(toy, correction=correction)
    np.testing.assert_allclose(calc.get_forces(sige), 12.0 * toy.get_forces(sige), atol=1e-10)
    with pytest.raises(CorrectionFileError, match="finite positive"):
        fitted(scale=float("inf"))


def test_unknown_frame_order_is_a_settings_error() -> None:
    from softcalc.calibration.frames import ORDERS, select_frames
    from softcalc.data import ForceDataset, ForceFrame

    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    data = ForceDataset([ForceFrame(atoms, np.zeros((len(atoms), 3)))], source="one frame")
    assert len(select_frames(data, order="largest-force")) == 1
    with pytest.raises(SettingsError, match="unknown frame order 'biggest'") as caught:
        select_frames(data, order="biggest")
    assert isinstance(caught.value, ValueError)  # SettingsError keeps the builtin base callers catch
    assert all(repr(order) in str(caught.value) for order in ORDERS) and "Fix:" in str(caught.value)


# --- per-species corrections and the elements they cover -------------------------------------------


def test_per_species_correction_must_cover_every_element(sige: Atoms) -> None:
    calc = SoftCorrectedCalc("toy-morse", Correction(species_scales={"Si": 1.1}))
    sige.calc = calc
    with pytest.raises(CalculatorError, match=r"no scale for Ge \(it covers Si\)") as caught:
        sige.get_forces()
    assert isinstance(caught.value, CorrectionMismatchError)
    assert "silently get the bare model" in str(caught.value) and "fallback" in str(caught.value)
    si = bulk("Si", "diamond", 5.43, cubic=True)
    si.calc = calc
    si.get_forces()  # a structure it covers


def test_explicit_fallback_scale_covers_the_rest(sige: Atoms) -> None:
    fallback = SoftCorrectedCalc("toy-morse", Correction(scale=1.2, species_scales={"Si": 1.1}))
    explicit = SoftCorrectedCalc("toy-morse", Correction(species_scales={"Si": 1.1, "Ge": 1.2}))
    np.testing.assert_allclose(fallback.get_forces(sige), explicit.get_forces(sige), atol=1e-12)


# --- geometry ---------------------------------------------------------------------------------------


def scaled_si(factor: float) -> Atoms:
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.set_cell(atoms.cell * factor, scale_atoms=True)
    return atoms


@pytest.mark.parametrize(
    ("factor", "problem", "hint"),
    [
        (0.05, "far too small", "scaled by ≈×0.055"),
        (0.1, "far too small", "nm read as Å"),
        (1e4, "far too large", "scaled by ≈×1.1e+04"),
        (100, "far too large", "pm read as Å"),
    ],
)
def test_cells_scaled_by_a_unit_mistake_fail_fast(toy, factor: float, problem: str, hint: str) -> None:
    for calc in (toy, SoftCorrectedCalc(toy, scale=1.1)):
        atoms = scaled_si(factor)
        atoms.calc = calc
        start = time.perf_counter()
        with pytest.raises(InvalidStructureError, match=problem) as caught:
            atoms.get_forces()
        assert time.perf_counter() - start < 0.5
        message = str(caught.value)
        assert hint in message and "bound" in message and "Fix: give positions and cell in Å" in message


def test_overlapping_atoms_are_refused(toy) -> None:
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.positions[3] = atoms.positions[0] + [0.2, 0.1, 0.0]
    atoms.calc = toy
    with pytest.raises(
        InvalidStructureError, match=r"atoms overlap: atom 0 \(Si\) and atom 3 \(Si\) are 0.224 Å"
    ):
        atoms.get_potential_energy()
    tiny = Atoms("Si", cell=[0.3, 4, 4], pbc=True)  # an atom on top of its own periodic image
    with pytest.raises(InvalidStructureError, match="only 0.3 Å thick"):
        check_structure(tiny)


def test_fractional_coordinates_given_as_cartesian_are_named(toy) -> None:
    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(2)
    atoms.positions = atoms.get_scaled_positions()
    with pytest.raises(InvalidStructureError, match="fractional coordinates given as Cartesian"):
        check_structure(atoms, toy.info)


def test_squeezed_slab_and_cluster_are_refused_by_local_density(toy) -> None:
    slab = diamond100("Si", size=(2, 2, 8), vacuum=8.0)
    slab.set_cell(slab.cell * 0.28, scale_atoms=True)  # every distance above 0.5 Å, yet 5x denser than Si
    with pytest.raises(InvalidStructureError, match="neighbours per atom within its 5 Å cutoff"):
        check_structure(slab, toy.info)
    cluster = bulk("Si", "diamond", 5.43, cubic=True).repeat(5)
    cluster.pbc = False
    cluster.positions *= 0.28
    with pytest.raises(InvalidStructureError, match=f"above the bound of {MAX_DENSITY} atoms/Å³"):
        check_structure(cluster)


def co2_in_box() -> Atoms:
    atoms = molecule("CO2")
    atoms.center(vacuum=10.0)  # 20 Å box
    atoms.pbc = True
    return atoms


def compressed_hydrogen() -> Atoms:
    """fcc hydrogen at 0.7 atoms/Å³, about the density of metallic hydrogen near 500 GPa."""
    return bulk("H", "fcc", a=(4 / 0.7) ** (1 / 3), cubic=True).repeat(2)


@pytest.mark.parametrize(
    ("atoms", "calc"),
    [
        (co2_in_box(), "toy"),
        (diamond100("Si", size=(2, 2, 4), vacuum=8.0), "toy"),
        (scaled_si(0.8), "toy"),  # V/V0 = 0.5, beyond any pressure Si survives
        (Atoms("C", cell=[40.0] * 3, pbc=True), "toy"),  # one atom in a 40 Å box
        (Atoms("Si", cell=[2.2, 2.2, 2.2], pbc=True), "toy"),  # one-atom cell, atom next to its images
        (molecule("H2"), "emt"),
        (molecule("H2O"), "emt"),
        (bulk("Cu", "fcc", a=3.61), "emt"),
        (compressed_hydrogen(), None),
    ],
    ids=[
        "CO2-in-20A-box",
        "slab",
        "Si-V0.5",
        "atom-in-40A-box",
        "1-atom-cell",
        "H2",
        "H2O",
        "Cu-1-atom",
        "H-0.7-per-A3",
    ],
)
def test_valid_structures_pass(toy, atoms: Atoms, calc: str | None) -> None:
    if calc is None:
        check_structure(atoms)
        return
    atoms.calc = SoftCorrectedCalc(toy if calc == "toy" else EMT(), scale=1.1)
    assert np.isfinite(atoms.get_potential_energy())
