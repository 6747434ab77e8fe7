"""The CHGNet plugin: parity with CHGNet's own calculator, conservative corrections, batching, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from finite_differences import energy_of, fd_forces, fd_stress

pytest.importorskip("chgnet")
#: 8-atom cells gain nothing from threads, and on a shared CPU extra threads spin and slow down
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from softcalc_chgnet import ChgnetPlugin  # noqa: E402
from softcalc_chgnet import _plugin as chgnet_plugin  # noqa: E402

import softcalc  # noqa: E402
from softcalc import Correction, SoftCorrectedCalc  # noqa: E402
from softcalc.errors import InvalidStructureError, UnknownModelError, WeightsNotFoundError  # noqa: E402
from softcalc.model import atom_batches  # noqa: E402
from softcalc.weight_files import weights_sha256  # noqa: E402

#: float32 central differences (steps in Å and in strain): rounding of ~1e-6 eV per site energy against the
#: O(h²) truncation; measured errors ≤ 6e-4 eV/Å and ≤ 2e-5 eV/Å³ on these cells (forces ~1 eV/Å)
FD32 = {"h_pos": 3e-3, "h_strain": 1e-3, "force_atol": 1.5e-3, "stress_atol": 4e-5}
#: float64 central differences: truncation error O(h²) only; measured ≤ 3e-7 eV/Å and ≤ 7e-8 eV/Å³
FD64 = {"h_pos": 1e-4, "h_strain": 1e-4, "force_atol": 1e-6, "stress_atol": 3e-7}


@pytest.fixture(scope="module")
def calc32() -> softcalc.ModelCalculator:
    return softcalc.load_model("chgnet")


@pytest.fixture(scope="module")
def chgnet_calc():
    """CHGNet's own ASE calculator (the reference), 0.3.0 weights, with site energies."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu", return_site_energies=True)


@pytest.fixture(scope="module")
def calc64() -> softcalc.ModelCalculator:
    return softcalc.load_model("chgnet", dtype="float64")


def rattled_si() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.set_cell(atoms.cell[:] @ np.array([[1.01, 0.01, 0.0], [0.0, 0.99, 0.0], [0.0, 0.02, 1.0]]), True)
    return atoms


def rattled_lif() -> Atoms:
    atoms = bulk("LiF", "rocksalt", a=4.03, cubic=True)
    atoms.rattle(0.05, seed=2)
    return atoms


def rattled_gaas() -> Atoms:
    atoms = bulk("GaAs", "zincblende", a=5.65).repeat((2, 1, 1))
    atoms.rattle(0.04, seed=3)
    return atoms


def evaluate(calc, atoms: Atoms) -> dict[str, np.ndarray | float]:
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, Voigt) from one calculate() call."""
    calc.calculate(atoms.copy(), ["energy", "forces", "stress"], all_changes)
    stress = np.asarray(calc.results["stress"])  # CHGNetCalculator stores a 3x3 tensor
    stress = full_3x3_to_voigt_6_stress(stress) if stress.shape == (3, 3) else stress
    return {"energy": calc.results["energy"], "forces": calc.results["forces"], "stress": stress}


def test_names_and_model_info(calc32, chgnet_calc) -> None:
    assert {"chgnet", "chgnet-0.3.0", "chgnet-0.2.0", "chgnet-r2scan"} <= set(ChgnetPlugin().names())
    info = calc32.info
    ref = chgnet_calc.model
    assert info.name == "chgnet-0.3.0" and info.family == "chgnet"
    assert info.cutoff == ref.graph_converter.atom_graph_cutoff
    assert info.n_message_passing == ref.n_conv == len(ref.atom_conv_layers)
    assert len(info.elements) == ref.atom_embedding.embedding.num_embeddings
    weights = ref.composition_model.fc.weight.detach().numpy()[0]
    for symbol, z in (("Si", 14), ("Li", 3), ("F", 9), ("Ga", 31)):
        assert info.reference_energies[symbol] == pytest.approx(float(weights[z - 1]), abs=1e-7)
    assert info.weights_sha256 == weights_sha256(info.weights)
    assert info.dtype == "float32" and info.device == "cpu"


@pytest.mark.parametrize("make", [rattled_si, rattled_lif, rattled_gaas])
def test_matches_chgnet_calculator(calc32, chgnet_calc, make) -> None:
    """Same energy, site energies, forces and stress (eV/Å³) as CHGNetCalculator, to float32 rounding."""
    atoms = make()
    ours = evaluate(calc32, atoms)
    energies = calc32.model.compute(atoms, ("energy", "forces", "energies"))["energies"]
    theirs = evaluate(chgnet_calc, atoms)
    assert ours["energy"] == pytest.approx(theirs["energy"], abs=2e-6 * len(atoms))
    np.testing.assert_allclose(ours["forces"], theirs["forces"], atol=2e-5)
    np.testing.assert_allclose(ours["stress"], theirs["stress"], atol=1e-6)
    np.testing.assert_allclose(energies, chgnet_calc.results["energies"], atol=2e-6)
    assert energies.sum() == pytest.approx(ours["energy"], abs=1e-9)
    assert np.abs(ours["stress"]).max() > 1e-3  # a strained, rattled cell: the comparison is not trivial


def test_scale_one_reproduces_base(calc32) -> None:
    atoms = rattled_lif()
    base = evaluate(calc32, atoms)
    corrected = evaluate(SoftCorrectedCalc(calc32, scale=1.0), atoms)
    for key in base:
        np.testing.assert_array_equal(corrected[key], base[key])


def check_conservative(
    calc, atoms: Atoms, h_pos: float, h_strain: float, force_atol: float, stress_atol: float
) -> None:
    """F = -∂E/∂R and σ = (1/V) ∂E/∂ε by central differences, on a few components."""
    ref = evaluate(calc, atoms)
    components = [(0, 0), (3, 1), (len(atoms) - 1, 2)]
    fd = fd_forces(atoms, calc, h_pos, components=components)
    np.testing.assert_allclose([ref["forces"][i, k] for i, k in components], fd, rtol=0, atol=force_atol)
    fd = fd_stress(atoms, calc, h_strain, voigt=[0, 5])
    np.testing.assert_allclose(ref["stress"][[0, 5]], fd, rtol=0, atol=stress_atol)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_global_scale_is_conservative(calc32, calc64, precision) -> None:
    calc, tol = (calc32, FD32) if precision == "float32" else (calc64, FD64)
    corrected = SoftCorrectedCalc(calc, scale=1.2)
    atoms = rattled_si()
    check_conservative(corrected, atoms, **tol)
    base = evaluate(calc, atoms)
    np.testing.assert_allclose(evaluate(corrected, atoms)["forces"], 1.2 * base["forces"], rtol=1e-12)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_per_species_correction_is_conservative(calc32, calc64, precision) -> None:
    calc, tol = (calc32, FD32) if precision == "float32" else (calc64, FD64)
    corrected = SoftCorrectedCalc(calc, Correction(species_scales={"Li": 1.3, "F": 0.9}))
    atoms = rattled_lif()
    check_conservative(corrected, atoms, **tol)
    # the per-species forces are not a uniform rescaling of the base forces
    base = evaluate(calc, atoms)["forces"]
    forces = evaluate(corrected, atoms)["forces"]
    assert not np.allclose(forces, 1.3 * base, atol=1e-3) and not np.allclose(forces, 0.9 * base, atol=1e-3)


def test_float64_agrees_with_float32(calc32, calc64) -> None:
    atoms = rattled_gaas()
    r32, r64 = evaluate(calc32, atoms), evaluate(calc64, atoms)
    assert r64["energy"] == pytest.approx(r32["energy"], abs=1e-5 * len(atoms))
    np.testing.assert_allclose(r64["forces"], r32["forces"], atol=1e-4)
    np.testing.assert_allclose(r64["stress"], r32["stress"], atol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_compute_many_matches_compute(calc32, calc64, precision) -> None:
    calc, atol = (calc32, 2e-5) if precision == "float32" else (calc64, 1e-10)
    model = calc.model
    structures = [rattled_si(), rattled_lif(), rattled_gaas(), rattled_si().repeat((1, 1, 2))]
    props = ("energy", "forces", "stress", "energies")
    single = [model.compute(a, props) for a in structures]
    batched = model.compute_many(structures, props)
    model.max_atoms_per_batch, saved = 17, model.max_atoms_per_batch  # chunks of 8+8, 4, 16
    try:
        assert [len(c) for c in atom_batches(structures, model.max_atoms_per_batch)] == [2, 1, 1]
        chunked = model.compute_many(structures, props)
    finally:
        model.max_atoms_per_batch = saved
    for one, many, chunk in zip(single, batched, chunked):
        for key in props:
            np.testing.assert_allclose(many[key], one[key], atol=atol * np.size(one[key]) ** 0.5)
            np.testing.assert_allclose(chunk[key], one[key], atol=atol * np.size(one[key]) ** 0.5)


def test_weighted_energy_with_unit_weights_is_compute(calc32) -> None:
    atoms = rattled_lif()
    model = calc32.model
    plain = model.compute(atoms, ("energy", "forces", "stress", "energies"))
    weighted = model.weighted_energy(atoms, np.ones(len(atoms)), compute_stress=True)
    for key in ("energy", "forces", "stress", "energies"):
        np.testing.assert_allclose(weighted[key], plain[key], rtol=0, atol=1e-12)


def test_non_periodic_structure_equals_isolated_cell(calc64) -> None:
    """A cluster without pbc equals the same cluster periodic in a box wider than the receptive field."""
    cluster = bulk("Si", "diamond", a=5.43, cubic=True)
    cluster.rattle(0.05, seed=4)
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    boxed = cluster.copy()
    boxed.cell = np.eye(3) * 40.0
    boxed.pbc = True
    isolated = calc64.model.compute(cluster, ("energy", "forces"))
    periodic = calc64.model.compute(boxed, ("energy", "forces"))
    assert isolated["energy"] == pytest.approx(periodic["energy"], abs=1e-9)
    np.testing.assert_allclose(isolated["forces"], periodic["forces"], atol=1e-9)
    slab = boxed.copy()
    slab.pbc = (True, True, False)
    with pytest.raises(InvalidStructureError, match="pbc"):
        calc64.model.compute(slab, ("energy", "forces"))


def test_load_by_checkpoint_path(calc32, tmp_path) -> None:
    copy = tmp_path / "my_chgnet.pt"
    shutil.copy(calc32.info.weights, copy)
    assert ChgnetPlugin().claims_path(copy)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert not ChgnetPlugin().claims_path(junk)
    calc = softcalc.load_model(copy)
    assert calc.info.weights_sha256 == calc32.info.weights_sha256
    atoms = rattled_si()
    assert energy_of(atoms, calc) == pytest.approx(energy_of(atoms, calc32), abs=1e-9)


def test_missing_checkpoint_lists_paths_searched(tmp_path, monkeypatch) -> None:
    missing = tmp_path / "nowhere" / "model.pth.tar"
    with pytest.raises(WeightsNotFoundError, match="nowhere"):
        softcalc.load_model(f"chgnet:{missing}")
    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(chgnet_plugin, "packaged_dir", lambda: tmp_path / "wheel")
    with pytest.raises(WeightsNotFoundError) as err:
        softcalc.load_model("chgnet-0.2.0")
    searched = err.value.searched
    assert str(tmp_path / "models" / "chgnet" / "0.2.0" / "chgnet_0.2.0_e30f77s348m32.pth.tar") in searched
    assert str(tmp_path / "wheel" / "0.2.0" / "chgnet_0.2.0_e30f77s348m32.pth.tar") in searched
    assert all(path in str(err.value) for path in searched)


def test_unknown_name() -> None:
    with pytest.raises(UnknownModelError, match="chgnet-0.3.0"):
        softcalc.load_model("chgnet-9.9")
    with pytest.raises(UnknownModelError, match="Known names"):
        ChgnetPlugin().load("chgnet-9.9")


def test_chgnet_private_api_the_plugin_relies_on(calc32) -> None:
    """The adapter's forward pass calls ``CHGNet._compute(batch, return_site_energies=True)`` and reads its
    ``site_energies``: a private method, so pyproject bounds chgnet (<0.5) and this test names the change."""
    import importlib.metadata
    import inspect

    from chgnet.model.model import BatchedGraph, CHGNet
    from pymatgen.io.ase import AseAtomsAdaptor

    where = f"chgnet {importlib.metadata.version('chgnet')}: update softcalc_chgnet/_adapter.py forward_pass"
    assert callable(getattr(CHGNet, "_compute", None)), f"{where} (CHGNet._compute is gone)"
    params = inspect.signature(CHGNet._compute).parameters
    assert list(params)[:2] == ["self", "g"], f"{where} (CHGNet._compute takes {list(params)})"
    site = params.get("return_site_energies")
    assert site is not None and site.kind is inspect.Parameter.KEYWORD_ONLY, f"{where} ({params})"
    model, atoms = calc32.model.module, rattled_si()
    graph = model.graph_converter(AseAtomsAdaptor.get_structure(atoms))
    batch = BatchedGraph.from_graphs(
        [graph],
        bond_basis_expansion=model.bond_basis_expansion,
        angle_basis_expansion=model.angle_basis_expansion,
        compute_stress=False,
    )
    out = model._compute(batch, return_site_energies=True)
    assert "site_energies" in out, f"{where} (_compute returns {sorted(out)})"
    assert tuple(out["site_energies"][0].shape) == (len(atoms),), f"{where} (site energies per structure)"
