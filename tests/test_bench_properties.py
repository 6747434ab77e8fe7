"""`softcalc bench properties`: surface energies, strain curvature, held-out forces, phonons, skips, CLI,
and a property registered from outside (the ground-state energy per atom).

Known answers: the "DFT" data are ASE's EMT (Cu: strained cells along normal and shear modes, a
ground-state cell, rattled hot frames, slabs with vacuum) and the "model" is EMT scaled by C
(E = C·E_emt, F = C·F_emt). Surface energies, curvatures and forces of the model are then exactly C
times DFT's, so the γ slope, every curvature ratio and the force slope s must all be C, and a λ fitted
on forces or on energies must be 1/C and restore DFT (slope 1). The CLI test does the same with the
toy Morse plugin model on Si and the shared phonopy Si set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.io import read, write
from emt_frames import A_CU, MODES, STRAINS, TOL, C, ScaledEMT, cu_frames, labelled, rattled, strained

from softcalc.bench.properties import (
    Property,
    Source,
    register_property,
    registered_properties,
    run_properties,
    unregister_property,
)
from softcalc.bench.properties.materials import Material
from softcalc.bench.report import fmt_number
from softcalc.calculator import SoftCorrectedCalc
from softcalc.calibration.pipeline import Calibration
from softcalc.cli import main
from softcalc.correction import Correction
from softcalc.data.dataset import ForceFrame
from softcalc.errors import DataError
from softcalc.properties import (
    SlabGeometryError,
    deformation_kind,
    find_slabs,
    fit_quadratic,
    is_ground_state,
    same_stoichiometry,
    slab_geometry,
    strain_mode,
    surface_energy,
    zero_strain_energy,
)
from softcalc.registry import load_adapter


@pytest.fixture(scope="module")
def cu_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cu") / "data"
    folder.mkdir()
    write(folder / "Cu.xyz", cu_frames(EMT()), format="extxyz")
    return folder


@pytest.fixture(scope="module")
def cu_run(cu_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, ScaledEMT]:
    out = tmp_path_factory.mktemp("cu-out")
    model = ScaledEMT(C)
    summary = run_properties({"emt-scaled": model}, [cu_data], out, n_bootstrap=50, plots=True)
    return out, summary, model


# --- physics: slabs, surface energy, strain fits -------------------------------------------------


def test_slab_geometry_finds_the_vacuum_and_the_area() -> None:
    slab = fcc111("Cu", (2, 2, 3), a=A_CU, vacuum=5.0)
    g = slab_geometry(slab)
    assert g.axis == 2
    assert g.area == pytest.approx(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])), rel=1e-12)
    assert g.vacuum == pytest.approx(10.0, abs=1e-9)  # 5 Å on each side, joined across the boundary
    rolled = Atoms(
        slab.numbers, positions=slab.positions[:, [2, 0, 1]], cell=slab.cell[:, [2, 0, 1]][[2, 0, 1]]
    )
    assert slab_geometry(rolled).axis == 0  # the vacuum along the first lattice vector


def test_slab_geometry_refuses_bulk_and_clusters() -> None:
    with pytest.raises(SlabGeometryError, match="no vacuum"):
        slab_geometry(bulk("Cu", "fcc", a=A_CU, cubic=True) * (2, 2, 2))
    cluster = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[15, 15, 15])
    with pytest.raises(SlabGeometryError, match="along 3 lattice vectors"):
        slab_geometry(cluster)
    with pytest.raises(SlabGeometryError, match="no 3D cell"):
        slab_geometry(Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]]))


def test_surface_energy_and_stoichiometry() -> None:
    assert surface_energy(-100.0, 20, -5.5, 25.0) == pytest.approx((-100.0 + 110.0) / 50.0)
    assert same_stoichiometry(Atoms("Si2O4"), Atoms("SiO2"))
    assert not same_stoichiometry(Atoms("Si2O3"), Atoms("SiO2"))
    assert not same_stoichiometry(Atoms("Si2"), Atoms("SiO2"))


def test_find_slabs_records_why_a_slab_gives_no_surface_energy() -> None:
    cu = bulk("Cu", "fcc", a=A_CU, cubic=True)
    alloy = fcc111("Cu", (2, 2, 3), a=A_CU, vacuum=5.0)
    alloy.symbols[0] = "Au"
    frames = [
        ForceFrame(
            fcc111("Cu", (2, 2, 3), a=A_CU, vacuum=5.0), np.zeros((12, 3)), -1.0, group="Surface", label="ok"
        ),
        ForceFrame(alloy, np.zeros((12, 3)), -1.0, group="Surface", label="alloy"),
        ForceFrame(cu.copy(), np.zeros((4, 3)), None, group="Surface", label="no energy"),
    ]
    skipped: dict[str, str] = {}
    slabs = find_slabs(frames, cu, skipped)
    assert list(slabs) == [0] and slabs[0].axis == 2
    assert "not a multiple of the bulk's (Cu4)" in skipped["surface alloy"]
    assert skipped["surface no energy"] == "no DFT energy"
    without_bulk: dict[str, str] = {}
    assert find_slabs(frames, None, without_bulk) == {}
    assert "no bulk reference" in without_bulk["surfaces"]


def test_quadratic_fits_recover_known_curvatures() -> None:
    x = np.array([-0.1, -0.05, 0.02, 0.08])
    fit = fit_quadratic(x, -3.0 + 0.4 * x + 0.5 * 7.0 * x**2)
    assert (fit.curvature, fit.energy0, fit.slope) == pytest.approx((7.0, -3.0, 0.4), rel=1e-9)
    assert (fit.n_points, fit.n_strains) == (4, 4)
    with pytest.raises(DataError, match="2 distinct strain"):
        fit_quadratic(np.array([0.01, 0.01, 0.02]), np.zeros(3))
    curves = {"a": (x, -3.0 + x + 4 * x**2), "b": (x[:3] * 2, -3.0 - 2 * (2 * x[:3]) + 9 * (2 * x[:3]) ** 2)}
    assert zero_strain_energy(curves) == pytest.approx(-3.0, abs=1e-12)


def test_strain_labels_and_kinds() -> None:
    assert strain_mode("Si 2x2x2 cell, mode 3, strain -0.02") == "mode 3"
    assert strain_mode("AIMD NVT at 300 K") is None
    assert is_ground_state("Elastic", "Ground state crystal") and is_ground_state("ground_state", "")
    assert not is_ground_state("Elastic", "mode 0, strain 0.01")
    cell = bulk("Cu", "fcc", a=A_CU, cubic=True)
    for _, kind, voigt in MODES:
        assert deformation_kind(cell.cell, strained(cell, voigt, 0.05).cell) == kind


# --- the benchmark on EMT "DFT" with a scaled-EMT model -------------------------------------------


def test_surface_energies_scale_exactly(cu_run: tuple[Path, dict, ScaledEMT]) -> None:
    _, summary, _ = cu_run
    data = summary["data"]["Cu"]["surfaces"]
    assert "ground-state frame" in data["bulk_reference"]
    emt_bulk = bulk("Cu", "fcc", a=A_CU, cubic=True)
    emt_bulk.calc = EMT()
    assert data["bulk_energy"] == pytest.approx(emt_bulk.get_potential_energy() / len(emt_bulk), rel=1e-9)
    slab = fcc111("Cu", (2, 2, 4), a=A_CU, vacuum=6.0)
    slab.calc = EMT()
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    expected = (slab.get_potential_energy() - len(slab) * data["bulk_energy"]) / (2 * area)
    assert data["slabs"][0]["gamma"] == pytest.approx(expected, rel=1e-9)
    assert data["slabs"][0]["gamma"] > 0.02  # a real surface energy, eV/Å²
    bare = summary["results"]["emt-scaled"]["Cu"]["corrections"]["bare"]["surfaces"]
    assert bare["slope"] == pytest.approx(C, rel=1e-9)
    assert (bare["n_under"], bare["n_slabs"]) == (2, 2)
    gammas = np.array([s["gamma"] for s in data["slabs"]])
    assert bare["mae"] == pytest.approx((1 - C) * gammas.mean(), rel=1e-9)
    pooled = summary["pooled_surfaces"]["emt-scaled"]
    assert pooled["bare"]["slope"] == pytest.approx(C, rel=1e-9) and pooled["bare"]["n_under"] == 2
    assert pooled["energy"]["slope"] == pytest.approx(1.0, rel=TOL)


def test_curvature_ratios_and_force_slope_are_the_scale(cu_run: tuple[Path, dict, ScaledEMT]) -> None:
    _, summary, _ = cu_run
    dft = summary["data"]["Cu"]["strain"]
    assert {m: d["kind"] for m, d in dft.items()} == {f"mode {m}": kind for m, kind, _ in MODES}
    assert all(d["n_points"] == len(STRAINS) + 1 and d["with_ground_state"] for d in dft.values())
    assert all(d["curvature"] > 0.1 for d in dft.values())  # eV/atom: stiff along every mode
    bare = summary["results"]["emt-scaled"]["Cu"]["corrections"]["bare"]
    for mode in dft.values():
        assert mode["curvature"] > 0
    assert [m["ratio"] for m in bare["strain"]["modes"].values()] == pytest.approx([C] * len(MODES), rel=1e-9)
    assert bare["strain"]["mean_ratio"] == pytest.approx({"normal": C, "shear": C, "all": C}, rel=1e-9)
    assert bare["heldout_forces"]["softening_scale"] == pytest.approx(C, rel=TOL)


def test_fitted_corrections_restore_dft(cu_run: tuple[Path, dict, ScaledEMT]) -> None:
    _, summary, _ = cu_run
    corrections = summary["results"]["emt-scaled"]["Cu"]["corrections"]
    for key in ("forces", "forces:AIMD-NVT", "energy", "energy:Elastic"):
        c = corrections[key]
        assert c["scale"] == pytest.approx(1 / C, rel=TOL), key
        assert c["surfaces"]["slope"] == pytest.approx(1.0, rel=TOL), key
        assert c["strain"]["mean_ratio"]["all"] == pytest.approx(1.0, rel=TOL), key
        assert c["heldout_forces"]["mae"] < 1e-7, key
    assert corrections["bare"]["heldout_forces"]["mae"] > 0.01
    assert "single-element" in corrections["per-species"]["skipped"]
    assert "phonons" not in corrections  # no phonopy force set given


def test_each_structure_is_evaluated_once(cu_data: Path, cu_run: tuple[Path, dict, ScaledEMT]) -> None:
    _, _, model = cu_run
    assert model.calls == len(cu_frames(EMT()))  # every correction reused the one evaluation


def test_corrected_results_agree_with_softcorrectedcalc(
    cu_data: Path, cu_run: tuple[Path, dict, ScaledEMT]
) -> None:
    out, summary, _ = cu_run
    lam = summary["results"]["emt-scaled"]["Cu"]["corrections"]["forces"]["scale"]
    frames = read(cu_data / "Cu.xyz", ":")  # the geometries as stored (extxyz rounds positions)
    direct = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = SoftCorrectedCalc(ScaledEMT(C), scale=lam)
        direct.append(atoms.get_potential_energy())
    with h5py.File(out / "predictions.h5") as h5:
        assert h5["models/0"].attrs["name"] == "emt-scaled"
        stored = h5["models/0/Cu/forces/energy"][()]
        assert h5["data/Cu/dft_energy"].shape == (len(frames),)
        assert h5["models/0/Cu/bare/modes/mode 3/energy_per_atom"].shape == (len(STRAINS) + 1,)
    np.testing.assert_allclose(stored, direct, rtol=1e-12)


def test_outputs_are_written_and_deterministic(
    cu_data: Path, cu_run: tuple[Path, dict, ScaledEMT], tmp_path: Path
) -> None:
    out, summary, _ = cu_run
    for name in ("summary.json", "summary.md", "predictions.h5", "surface_parity.png", "curvature_ratio.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "summary.md").read_text()
    assert "| emt-scaled | Cu | 0.800 |" in md
    again = run_properties({"emt-scaled": ScaledEMT(C)}, [cu_data], tmp_path, n_bootstrap=50, plots=False)
    assert json.dumps(again) == json.dumps(summary)
    assert (tmp_path / "summary.json").read_bytes() == (out / "summary.json").read_bytes()


def test_zero_strain_fit_replaces_a_missing_ground_state(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "Cu.xyz", cu_frames(EMT(), ground_state=False), format="extxyz")
    summary = run_properties(
        {"m": ScaledEMT(C)}, [tmp_path / "data"], tmp_path / "out", n_bootstrap=20, plots=False
    )
    surfaces = summary["data"]["Cu"]["surfaces"]
    assert surfaces["bulk_reference"].startswith("zero-strain value")
    emt_bulk = bulk("Cu", "fcc", a=A_CU, cubic=True)
    emt_bulk.calc = EMT()
    assert surfaces["bulk_energy"] == pytest.approx(emt_bulk.get_potential_energy() / len(emt_bulk), abs=2e-4)
    bare = summary["results"]["m"]["Cu"]["corrections"]["bare"]
    assert bare["surfaces"]["slope"] == pytest.approx(C, rel=1e-9)
    assert all(not m["with_ground_state"] for m in summary["data"]["Cu"]["strain"].values())


# --- skips ----------------------------------------------------------------------------------------


def test_skips_are_recorded_not_raised(tmp_path: Path) -> None:
    emt = EMT()
    frames = cu_frames(emt, surfaces=False)
    cell = bulk("Cu", "fcc", a=A_CU, cubic=True) * (2, 2, 2)
    frames.insert(
        0, labelled(strained(cell, 2, 0.01), emt, "Elastic", "Cu 2x2x2 cell, mode 5, strain 0.01")
    )
    frames.insert(len(frames) // 2, labelled(rattled(cell, 20), emt, "Surface", "Cu_bulk_labelled_surface"))
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "Cu.xyz", frames, format="extxyz")
    no_energy = [labelled(rattled(cell, k), None, "AIMD-NVT", f"frame {k}") for k in range(4)]
    write(tmp_path / "data" / "noenergy.xyz", [a.copy() for a in no_energy], format="extxyz")
    summary = run_properties(
        {"m": ScaledEMT(C)}, [tmp_path / "data"], tmp_path / "out", n_bootstrap=20, plots=True
    )
    cu = summary["data"]["Cu"]["skipped"]
    assert "2 distinct strain(s)" in cu["mode 5"]  # one frame plus the ground state
    assert "no vacuum" in cu["surface Cu_bulk_labelled_surface"]
    assert "no slab gives a surface energy" in cu["surfaces"]
    assert "mode 5" not in summary["results"]["m"]["Cu"]["corrections"]["bare"]["strain"]["modes"]
    ag = summary["data"]["noenergy"]["skipped"]
    assert ag == {"surfaces": "the data carry no DFT energies", "strain": "the data carry no DFT energies"}
    ag_results = summary["results"]["m"]["noenergy"]["corrections"]
    assert "needs DFT energies" in ag_results["energy"]["skipped"]
    assert "surfaces" not in ag_results["bare"] and ag_results["bare"]["heldout_forces"]["n_frames"] == 2
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "| Cu | mode 5 |" in md and "| noenergy | m: correction energy | --target energy needs" in md


# --- the command line, with the toy Morse plugin model ----------------------------------------------


def test_cli_end_to_end_with_phonons_and_a_correction_file(data_dir: Path, tmp_path: Path) -> None:
    toy = load_adapter("toy-morse")

    class Stiffer(Calculator):  # "DFT": the toy model's energy and forces divided by C
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
            super().calculate(atoms, properties, system_changes)
            r = toy.compute(self.atoms, ["energy", "forces"])
            self.results = {"energy": r["energy"] / C, "forces": r["forces"] / C}

    si = bulk("Si", "diamond", a=5.43, cubic=True)
    frames, dft = [], Stiffer()
    for k in range(4):
        frames.append(labelled(rattled(si, k), dft, "AIMD-NVT", f"AIMD frame {k}"))
    for x in (-0.02, 0.01, 0.02):
        frames.append(labelled(strained(si, 0, x), dft, "Elastic", f"Si cell, mode 0, strain {x}"))
    frames.append(labelled(si, dft, "Elastic", "Ground state crystal"))
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "Si.xyz", frames, format="extxyz")
    Correction(scale=2.0).save(tmp_path / "double.json")
    other = {"family": "chgnet", "name": "chgnet-0.3.0", "weights_sha256": None}
    Correction(scale=1.1, model=other, regime="own-material").save(tmp_path / "chgnet.json")
    tuned = load_adapter("toy-morse")  # "fine-tuned" weights with 1.5x deeper wells: curvatures x1.5
    tuned.tuned_from = tuned.info.fingerprint
    with torch.no_grad():
        tuned.module.depth.mul_(1.5)
    tuned_file = Correction(model=tuned.info.fingerprint, regime="own-material", tuned=tuned)
    Calibration(tuned_file, {}).save(tmp_path / "tuned.json")
    out = tmp_path / "out"
    phonons = data_dir / "phonons" / "phonopy-examples" / "Si"
    files = f"{tmp_path / 'double.json'},{tmp_path / 'chgnet.json'},{tmp_path / 'tuned.json'}"
    args = ["bench", "properties", "--models", "toy-morse", "--data", str(tmp_path / "data")]
    args += ["--out", str(out), "--corrections", files, "--phonons", str(phonons), "--bootstrap", "20"]
    args += ["--quiet", "--no-plots"]
    code = main(args)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    corrections = summary["results"]["toy-morse"]["Si"]["corrections"]
    assert corrections["bare"]["strain"]["modes"]["mode 0"]["ratio"] == pytest.approx(C, rel=1e-9)
    assert corrections["file:double.json"]["scale"] == 2.0
    assert corrections["file:double.json"]["strain"]["modes"]["mode 0"]["ratio"] == pytest.approx(
        2 * C, rel=1e-9
    )
    assert "chgnet" in corrections["file:chgnet.json"]["skipped"]  # fitted for another model: refused
    tuned_ratio = corrections["file:tuned.json"]["strain"]["modes"]["mode 0"]["ratio"]
    assert tuned_ratio == pytest.approx(1.5 * C, rel=1e-9)  # the tuned weights ran, not the stored bare
    assert corrections["forces"]["scale"] == pytest.approx(1 / C, rel=TOL)
    bare_phonons, fitted = corrections["bare"]["phonons"], corrections["phonons"]
    assert bare_phonons["freq_mae_thz"] > 0 and fitted["scale"] > 0
    assert fitted["phonons"]["force_set_slope"] == pytest.approx(
        fitted["scale"] * bare_phonons["force_set_slope"]
    )
    assert "surfaces" in summary["data"]["Si"]["skipped"]
    assert not (out / "surface_parity.png").exists()


# --- a property registered from outside -------------------------------------------------------------


class GroundStateEnergy(Property):
    """Energy per atom (eV/atom) of the ground-state frame, model vs DFT."""

    name = "ground_state_energy"
    needs_energies = True
    note = "E/N of the ground state, eV/atom"
    headline_columns = ("E/N ground state − DFT",)
    correction_columns = ("E/N ground state",)

    def locate(self, material: Material) -> int | None:
        if material.ground_state is None:
            material.skipped[self.name] = "no ground-state frame"
        return material.ground_state

    def values(self, material: Material, located: int, source: Source) -> float:
        return float(source.energies[located]) / len(material.frames[located].atoms)

    def dft_summary(self, material: Material, located: int, dft: float) -> dict:
        return {"energy_per_atom": dft}

    def summary(self, material: Material, located: int, dft: float, model: float) -> dict:
        return {"energy_per_atom": model, "error": model - dft}

    def store(self, group: h5py.Group, values: float) -> None:
        group["ground_state_energy"] = values

    def headline(self, record: dict | None) -> dict:
        return {"ground_state_error": record["error"] if record else None}

    def headline_cells(self, row: dict) -> list[str]:
        return [fmt_number(row["ground_state_error"], 4)]

    def correction_cells(self, record: dict | None) -> list[str]:
        return [fmt_number(record["energy_per_atom"] if record else None, 4)]


@pytest.fixture
def ground_state_energy() -> Iterator[Property]:
    prop = register_property(GroundStateEnergy())
    yield prop
    unregister_property(prop.name)


def test_the_builtin_properties_are_registered_in_summary_order() -> None:
    names = [p.name for p in registered_properties()]
    assert names == ["heldout_forces", "surfaces", "strain", "phonons"]  # and nothing a test left behind
    with pytest.raises(ValueError, match="registered already"):
        register_property(registered_properties()[0])


def test_a_registered_property_is_reported(ground_state_energy: Property, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "Cu.xyz", cu_frames(EMT()), format="extxyz")
    write(
        tmp_path / "data" / "nogs.xyz", cu_frames(EMT(), ground_state=False, surfaces=False), format="extxyz"
    )
    out = tmp_path / "out"
    summary = run_properties({"m": ScaledEMT(C)}, [tmp_path / "data"], out, n_bootstrap=20, plots=False)
    cell = bulk("Cu", "fcc", a=A_CU, cubic=True) * (2, 2, 2)
    cell.calc = EMT()
    dft = cell.get_potential_energy() / len(cell)
    assert summary["data"]["Cu"]["ground_state_energy"]["energy_per_atom"] == pytest.approx(dft, rel=1e-9)
    corrections = summary["results"]["m"]["Cu"]["corrections"]
    assert list(corrections["bare"])[-1] == "ground_state_energy"  # after the built-in properties
    bare = corrections["bare"]["ground_state_energy"]
    assert bare["energy_per_atom"] == pytest.approx(C * dft, rel=1e-9)
    assert bare["error"] == pytest.approx((C - 1) * dft, rel=1e-9)
    # no anchors μ_Z for an ASE calculator: E' = λE, and λ = 1/C fitted on energies restores DFT
    assert corrections["energy"]["ground_state_energy"]["energy_per_atom"] == pytest.approx(dft, rel=TOL)
    rows = {r["material"]: r for r in summary["headline"]}
    assert rows["Cu"]["ground_state_error"] == pytest.approx((C - 1) * dft, rel=1e-9)
    assert rows["nogs"]["ground_state_error"] is None
    assert summary["data"]["nogs"]["skipped"]["ground_state_energy"] == "no ground-state frame"
    assert "ground_state_energy" not in summary["results"]["m"]["nogs"]["corrections"]["bare"]
    assert json.loads((out / "summary.json").read_text()) == summary
    md = (out / "summary.md").read_text()
    assert "E/N of the ground state, eV/atom)" in md and "| E/N ground state − DFT |" in md
    assert f"| {fmt_number((C - 1) * dft, 4)} |" in md and f"| {fmt_number(C * dft, 4)} |" in md
    with h5py.File(out / "predictions.h5") as h5:
        assert h5["data/Cu/ground_state_energy"][()] == pytest.approx(dft, rel=1e-9)
        assert h5["models/0/Cu/bare/ground_state_energy"][()] == pytest.approx(C * dft, rel=1e-9)
        assert "ground_state_energy" not in h5["data/nogs"]
