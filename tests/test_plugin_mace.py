"""The MACE plugin: parity with mace-torch's MACECalculator, conservative corrections by finite
differences, batching, weight lookup (never downloading in tests) and errors.

Models: the shared Ge-Sb-Te MACE (``$SOFTCALC_MODEL_DIR/mace/mace_swa.model``, float64 on disk) and
a random-weight float64 ScaleShiftMACE for Si/Ge built from mace-torch's classes (tests/mace_models.py).
Tolerances: float64 finite differences 1e-6 eV/Å and 1e-7 eV/Å³; the shared model run in float32
5e-3 eV/Å and 5e-5 eV/Å³ (float32 energies carry ~1e-5 eV of round-off).
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read
from finite_differences import fd_forces, fd_stress  # noqa: E402
from mace_models import RANDOM_CUTOFF, RANDOM_E0, save_random_mace  # noqa: E402

from softcalc import Correction, SoftCorrectedCalc, load_model  # noqa: E402
from softcalc.errors import UnknownModelError, UnsupportedElementsError, WeightsNotFoundError  # noqa: E402

pytest.importorskip("mace")

PROPS = ["energy", "forces", "stress", "energies"]
#: one torch thread: on a shared 2-core machine, two spinning threads make MACE ~20x slower
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def random_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_mace(tmp_path_factory.mktemp("mace") / "random_sige.model")


@pytest.fixture(scope="module")
def random_calc(random_path: Path):
    return load_model(random_path)


@pytest.fixture(scope="module")
def gst_path(model_dir: Path) -> Path:
    path = model_dir / "mace" / "mace_swa.model"
    if not path.is_file():
        pytest.skip(f"shared MACE model not found at {path}")
    return path


@pytest.fixture
def sige() -> Atoms:
    """8-atom Si/Ge diamond cell, rattled and sheared (no symmetry hides an error)."""
    atoms = bulk("Si", "diamond", 5.45, cubic=True)
    atoms.symbols[[1, 6]] = "Ge"
    atoms.rattle(0.08, seed=3)
    atoms.set_cell(atoms.cell @ np.array([[1.0, 0.02, 0.0], [0.0, 0.99, 0.01], [0.03, 0.0, 1.01]]),
                   scale_atoms=True)
    return atoms


@pytest.fixture
def gst() -> Atoms:
    """8-atom rock-salt Ge2Sb2Te4 cell, rattled and sheared, for the shared Ge-Sb-Te model."""
    atoms = bulk("GeTe", "rocksalt", 6.0, cubic=True)
    atoms.symbols[[2]] = "Sb"
    atoms.symbols[[6]] = "Sb"
    atoms.rattle(0.1, seed=5)
    atoms.set_cell(atoms.cell @ np.array([[1.0, 0.03, 0.0], [0.0, 1.0, 0.02], [0.01, 0.0, 0.98]]),
                   scale_atoms=True)
    return atoms


# -- loading and model information ---------------------------------------------------------------


def test_random_model_loads_through_load_model(random_calc, random_path: Path) -> None:
    info = random_calc.info
    assert info.family == "mace" and info.name == "random_sige"
    assert info.elements == frozenset({"Si", "Ge"})
    assert info.cutoff == pytest.approx(RANDOM_CUTOFF)
    assert info.n_message_passing == 2 and info.receptive_field == pytest.approx(2 * RANDOM_CUTOFF)
    assert info.reference_energies == pytest.approx(RANDOM_E0)
    assert info.dtype == "float64" and info.weights == str(random_path)
    assert info.weights_sha256 is not None and len(info.weights_sha256) == 64


def test_per_atom_energies_sum_to_energy(random_calc, sige: Atoms) -> None:
    res = random_calc.model.compute(sige, PROPS)
    assert res["energies"].shape == (len(sige),)
    assert res["energies"].sum() == pytest.approx(res["energy"], abs=1e-10)
    assert np.ptp(res["energies"]) > 1e-3  # per-atom, not the total spread evenly


def test_dtype_conversion(random_path: Path, sige: Atoms) -> None:
    ref = load_model(random_path).model.compute(sige, PROPS)
    low = load_model(random_path, dtype="float32").model
    assert low.info.dtype == "float32"
    res = low.compute(sige, PROPS)
    assert res["energy"] == pytest.approx(ref["energy"], abs=1e-4)
    assert np.abs(res["forces"] - ref["forces"]).max() < 1e-4


def test_names_match_mace_torch_download_table() -> None:
    from mace.calculators.foundations_models import mace_mp_urls
    from softcalc_mace import MacePlugin
    from softcalc_mace._names import FOUNDATION_MODELS

    for model in FOUNDATION_MODELS.values():
        assert mace_mp_urls[model.key].endswith("/" + model.file)
    names = MacePlugin().names()
    assert {"mace-mp-0", "mace-mp-0-small", "mace-mp-0-medium", "mace-mp-0-large"} <= set(names)


# -- parity with mace-torch ----------------------------------------------------------------------


def test_parity_with_mace_calculator_on_validation_frames(gst_path: Path) -> None:
    from mace.calculators import MACECalculator

    frames = read(gst_path.parent / "validate.xyz", index="0:2")
    ours = load_model(gst_path).model
    theirs = MACECalculator(model_paths=str(gst_path), device="cpu", default_dtype="float64")
    batched = ours.compute_many(frames, PROPS)
    for atoms, many in zip(frames, batched):
        a = atoms.copy()
        a.calc = theirs
        ref_e = a.get_potential_energy()
        res = ours.compute(atoms, PROPS)
        assert res["energy"] == pytest.approx(ref_e, abs=1e-8)
        assert np.abs(res["forces"] - a.get_forces()).max() < 1e-10
        assert np.abs(res["stress"] - a.get_stress()).max() < 1e-12
        assert np.abs(res["energies"] - theirs.results["energies"]).max() < 1e-10
        for key in PROPS:
            assert np.allclose(many[key], res[key], rtol=0, atol=1e-10), key


def test_compute_many_equals_compute_across_chunks(random_path: Path, sige: Atoms) -> None:
    adapter = load_model(random_path).model
    adapter.max_atoms_per_batch = 12  # forces several chunks
    structures = [sige, bulk("Ge", "diamond", 5.6), sige.copy()]
    structures[2].rattle(0.05, seed=1)
    molecule = Atoms("SiGe", positions=[[0, 0, 0], [0, 0, 2.4]])  # not periodic: no stress
    structures.append(molecule)
    many = adapter.compute_many(structures, PROPS)
    for atoms, res in zip(structures, many):
        one = adapter.compute(atoms, PROPS)
        assert set(res) == set(one)
        for key in one:
            assert np.allclose(res[key], one[key], rtol=0, atol=1e-12), key
    assert "stress" not in many[-1]


# -- conservative corrections --------------------------------------------------------------------


@pytest.mark.parametrize(
    "correction",
    [Correction(scale=1.17), Correction(species_scales={"Si": 1.1, "Ge": 1.3})],
    ids=["global", "per-species"],
)
def test_corrected_forces_and_stress_are_derivatives_float64(random_calc, sige: Atoms, correction) -> None:
    calc = SoftCorrectedCalc(random_calc, correction)
    a = sige.copy()
    a.calc = calc
    forces, stress = a.get_forces(), a.get_stress()
    assert np.abs(forces).max() > 0.1  # a test with vanishing forces could not fail
    assert np.abs(fd_forces(sige, calc, h=1e-4) - forces).max() < 1e-6
    assert np.abs(fd_stress(sige, calc, h=1e-5) - stress).max() < 1e-7


@pytest.mark.parametrize(
    "correction",
    [Correction(scale=1.2), Correction(species_scales={"Ge": 1.1, "Sb": 1.25, "Te": 1.15})],
    ids=["global", "per-species"],
)
def test_corrected_forces_and_stress_are_derivatives_float32(gst_path: Path, gst: Atoms, correction) -> None:
    calc = SoftCorrectedCalc(gst_path, correction, dtype="float32")
    assert calc.info.dtype == "float32"
    a = gst.copy()
    a.calc = calc
    forces, stress = a.get_forces(), a.get_stress()
    assert np.abs(forces).max() > 0.1
    comps = [(0, 0), (2, 1), (5, 2), (7, 0)]
    fd = fd_forces(gst, calc, h=1e-2, components=comps)
    assert np.abs(fd - np.array([forces[i, k] for i, k in comps])).max() < 5e-3
    assert np.abs(fd_stress(gst, calc, h=1e-3) - stress).max() < 5e-5


def test_scale_one_reproduces_base(random_calc, sige: Atoms) -> None:
    base = random_calc.model.compute(sige, PROPS)
    for correction in (Correction(scale=1.0), Correction(species_scales={"Si": 1.0, "Ge": 1.0})):
        a = sige.copy()
        a.calc = SoftCorrectedCalc(random_calc, correction)
        assert a.get_potential_energy() == pytest.approx(base["energy"], abs=1e-12)
        assert np.abs(a.get_forces() - base["forces"]).max() < 1e-12
        assert np.abs(a.get_stress() - base["stress"]).max() < 1e-14
        assert np.abs(a.calc.get_property("energies", a) - base["energies"]).max() < 1e-12


def test_global_scale_anchors_on_model_e0(random_calc, sige: Atoms) -> None:
    lam = 1.15
    base = random_calc.model.compute(sige, PROPS)
    a = sige.copy()
    a.calc = SoftCorrectedCalc(random_calc, scale=lam)
    e_ref = sum(RANDOM_E0[s] for s in sige.get_chemical_symbols())
    assert a.get_potential_energy() == pytest.approx(e_ref + lam * (base["energy"] - e_ref), abs=1e-10)
    assert np.abs(a.get_forces() - lam * base["forces"]).max() < 1e-12


# -- errors and weight lookup ----------------------------------------------------------------------


def test_element_not_in_model_is_named(gst_path: Path, gst: Atoms) -> None:
    calc = load_model(gst_path)
    atoms = gst.copy()
    atoms.symbols[0] = "O"
    atoms.calc = calc
    with pytest.raises(UnsupportedElementsError, match="O"):
        atoms.get_potential_energy()
    with pytest.raises(UnsupportedElementsError, match="O"):
        calc.model.compute_many([atoms])


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.model"
    with pytest.raises(WeightsNotFoundError, match="nowhere.model"):
        load_model(missing)
    with pytest.raises(WeightsNotFoundError, match="nowhere.model"):
        load_model(f"mace:{missing}")


def test_not_a_mace_model_file(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "weights.model"
    torch.save({"state": torch.zeros(3)}, path)
    with pytest.raises(UnknownModelError, match="not a MACE model"):
        load_model(path)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every urlopen: a test proves the plugin did or did not try the network."""
    calls: list[str] = []

    def refuse(url, *args, **kwargs):
        calls.append(str(getattr(url, "full_url", url)))
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_foundation_model_without_weights_lists_paths_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("mace-mp-0")
    searched = err.value.searched
    assert str(tmp_path / "models" / "mace" / "2023-12-03-mace-128-L1_epoch-199.model") in searched
    assert str(tmp_path / "cache" / "mace" / "20231203mace128L1_epoch199model") in searched
    assert "2023-12-03-mace-128-L1_epoch-199.model" in str(err.value)
    assert no_network == []


def test_foundation_model_found_in_model_dir_and_cache(
    random_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    (tmp_path / "models" / "mace").mkdir(parents=True)
    shutil.copy(random_path, tmp_path / "models" / "mace" / "2023-12-10-mace-128-L0_energy_epoch-249.model")
    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert load_model("mace-mp-0-small").info.name == "mace-mp-0-small"
    (tmp_path / "cache" / "mace").mkdir(parents=True)
    shutil.copy(random_path, tmp_path / "cache" / "mace" / "MACE_MPtrj_20229model")
    calc = load_model("mace-mp-0-large")
    assert calc.info.weights == str(tmp_path / "cache" / "mace" / "MACE_MPtrj_20229model")
    assert no_network == []


def test_download_only_without_model_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    monkeypatch.delenv("SOFTCALC_MODEL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsNotFoundError, match="download failed"):
        load_model("mace-mp-0-medium")
    assert len(no_network) == 1 and no_network[0].endswith("2023-12-03-mace-128-L1_epoch-199.model")
