"""The matgl plugin: M3GNet energies with the trained (destination) message aggregation, conservative
forces and stress through SoftCorrectedCalc, batched evaluation, per-species corrections, errors.

Reference numbers are the README table of the shared models folder (``../shared/README.md``, "Known
issue"), measured with destination aggregation on ``ase.build.bulk`` primitive cells.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from finite_differences import fd_forces, fd_stress

pytest.importorskip("matgl")

from softcalc import SoftCorrectedCalc  # noqa: E402
from softcalc.correction import Correction  # noqa: E402
from softcalc.errors import UnsupportedElementsError, WeightsNotFoundError  # noqa: E402
from softcalc.registry import load_adapter, load_model  # noqa: E402

#: README "destination aggregation" column, eV/atom: (formula, crystal structure, a in Å, energy)
README_TABLE = [
    ("SiC", "zincblende", 4.38, -7.526),
    ("GaAs", "zincblende", 5.75, -4.183),
    ("NiAl", "cesiumchloride", 2.89, -5.423),
    ("LiF", "rocksalt", 4.07, -4.834),
    ("NaCl", "rocksalt", 5.69, -3.368),
    ("MgO", "rocksalt", 4.25, -5.956),
    ("Si", "diamond", 5.47, -5.419),
]
#: README "Materials Project PBE, for scale" column, eV/atom
MP_SCALE = {"MgO": -5.96, "LiF": -4.85, "NaCl": -3.39}

#: float32 finite-difference tolerances: energies are float32 sums of ~-12 eV (rounding ~1e-6 eV),
#: central differences over ±H give ~1e-4 eV/Å noise, plus O(H²) truncation.
H = 5e-3
FORCE_TOL = 3e-3  # eV/Å
STRESS_TOL = 3e-4  # eV/Å³ (≈ 0.05 GPa)


@pytest.fixture(scope="module")
def m3gnet(model_dir):
    return load_model("m3gnet")


def rattled_mgo() -> Atoms:
    atoms = bulk("MgO", "rocksalt", a=4.25)
    atoms.rattle(0.08, seed=3)
    atoms.set_cell(
        atoms.cell @ (np.eye(3) + 0.01 * np.array([[1, 0.2, 0], [0.2, -0.5, 0], [0, 0, 0.3]])), True
    )
    return atoms


@pytest.mark.parametrize(("formula", "structure", "a", "energy"), README_TABLE)
def test_readme_table_destination_aggregation(m3gnet, formula, structure, a, energy):
    atoms = bulk(formula, structure, a=a)
    atoms.calc = m3gnet
    assert atoms.get_potential_energy() / len(atoms) == pytest.approx(energy, abs=1e-3)


def test_info_and_per_atom_energies(m3gnet):
    info = m3gnet.info
    assert info.family == "matgl" and info.name == "m3gnet-mp-2021.2.8-pes"
    assert {"Mg", "O", "Pu"} <= info.elements and info.cutoff == 5.0
    # 3 blocks, each reaching cutoff + three-body cutoff (9 Å): 27 Å <= receptive field
    assert info.receptive_field >= 27.0
    assert len(info.weights_sha256) == 64
    atoms = rattled_mgo()
    res = m3gnet.model.compute(atoms, ["energy", "forces", "energies"])
    assert res["energies"].sum() == pytest.approx(res["energy"], abs=1e-4)
    # the per-atom energies carry the element references μ_Z, not just the network output
    mu = np.array([info.reference_energies[s] for s in atoms.get_chemical_symbols()])
    assert abs(res["energies"] - mu).max() < abs(mu).max()
    assert np.all(np.isfinite(res["energies"]))


def test_float64_agrees_with_float32(m3gnet, model_dir):
    double = load_adapter("m3gnet", dtype="float64")
    assert double.info.dtype == "float64" and double.info.fingerprint == m3gnet.info.fingerprint
    atoms = rattled_mgo()
    res64 = double.compute(atoms, ["energy", "forces", "stress"])
    res32 = m3gnet.model.compute(atoms, ["energy", "forces", "stress"])
    assert res64["energy"] == pytest.approx(res32["energy"], abs=1e-4)
    np.testing.assert_allclose(res64["forces"], res32["forces"], atol=1e-4)
    np.testing.assert_allclose(res64["stress"], res32["stress"], atol=1e-5)


def test_soft_corrected_forces_and_stress_are_conservative(m3gnet):
    calc = SoftCorrectedCalc(m3gnet, scale=1.1)
    atoms = rattled_mgo()
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress()
    assert np.abs(forces).max() > 0.1  # the rattle gives forces worth checking
    np.testing.assert_allclose(forces, fd_forces(atoms, calc, H), atol=FORCE_TOL)
    np.testing.assert_allclose(stress, fd_stress(atoms, calc, H), atol=STRESS_TOL)
    base = m3gnet.model.compute(atoms, ["energy", "forces", "stress"])
    np.testing.assert_allclose(forces, 1.1 * base["forces"], rtol=1e-6, atol=1e-7)


def test_per_species_correction_is_conservative(m3gnet):
    assert m3gnet.model.supports_per_atom_energies
    calc = SoftCorrectedCalc(m3gnet, correction=Correction(species_scales={"Mg": 1.25, "O": 0.9}))
    atoms = rattled_mgo()
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress()
    np.testing.assert_allclose(
        forces[0], fd_forces(atoms, calc, H, components=[(0, 0), (0, 1), (0, 2)]), atol=FORCE_TOL
    )
    np.testing.assert_allclose(stress, fd_stress(atoms, calc, H), atol=STRESS_TOL)
    # it differs from the mean uniform scale, so the species weights reach the gradient
    uniform = SoftCorrectedCalc(m3gnet, scale=1.075)
    assert np.abs(uniform.get_forces(atoms.copy()) - forces).max() > 10 * FORCE_TOL


def test_weighted_energy_with_unit_weights_is_compute(m3gnet):
    atoms = rattled_mgo()
    res = m3gnet.model.weighted_energy(atoms, np.ones(len(atoms)))
    ref = m3gnet.model.compute(atoms, ["energy", "forces", "stress", "energies"])
    assert res["energy"] == pytest.approx(ref["energy"], abs=1e-5)
    np.testing.assert_allclose(res["forces"], ref["forces"], atol=1e-6)
    np.testing.assert_allclose(res["stress"], ref["stress"], atol=1e-7)
    np.testing.assert_allclose(res["energies"], ref["energies"], atol=1e-6)


def test_compute_many_equals_compute(m3gnet):
    slab = bulk("Si", "diamond", a=5.47, cubic=True)
    slab.center(vacuum=4.0, axis=2)
    slab.pbc = (True, True, False)
    structures = [
        rattled_mgo(),
        bulk("LiF", "rocksalt", a=4.07).repeat((2, 1, 1)),
        slab,
        bulk("NiAl", "cesiumchloride", a=2.9),
    ]
    structures[1].rattle(0.03, seed=1)
    props = ["energy", "forces", "stress"]
    batched = m3gnet.model.compute_many(structures, props)
    for atoms, res in zip(structures, batched):
        single = m3gnet.model.compute(atoms, props)
        assert res["energy"] == pytest.approx(single["energy"], abs=2e-4)
        np.testing.assert_allclose(res["forces"], single["forces"], atol=2e-5)
        assert ("stress" in res) == bool(atoms.pbc.all())
        if atoms.pbc.all():
            np.testing.assert_allclose(res["stress"], single["stress"], atol=2e-6)


def test_matches_matgl_ase_calculator_with_stress_in_ev_per_a3(m3gnet):
    """Same numbers as matgl's own PESCalculator (eV/Å³ mode) on the repaired potential."""
    from matgl.ext.ase import PESCalculator

    atoms = rattled_mgo()
    atoms.calc = PESCalculator(m3gnet.model.potential, stress_unit="eV/A3")
    ours = m3gnet.model.compute(atoms, ["energy", "forces", "stress"])
    assert ours["energy"] == pytest.approx(atoms.get_potential_energy(), abs=2e-4)
    np.testing.assert_allclose(ours["forces"], atoms.get_forces(), atol=2e-5)
    np.testing.assert_allclose(ours["stress"], atoms.get_stress(), atol=2e-6)


def test_repair_is_idempotent(m3gnet):
    from softcalc_matgl import fix_message_aggregation

    assert fix_message_aggregation(m3gnet.model.potential.model) == []


@pytest.mark.parametrize("name", ["m3gnet-matpes-pbe-v2025.1-pes", "tensornet-matpes-pbe-v2025.1-pes"])
def test_matpes_models_give_materials_project_scale_energies(model_dir, name):
    adapter = load_adapter(name)
    assert adapter.info.name == name
    for formula, structure, a, _ in README_TABLE:
        if formula in MP_SCALE:
            atoms = bulk(formula, structure, a=a)
            energy = adapter.compute(atoms, ["energy", "forces"])["energy"] / len(atoms)
            assert np.isfinite(energy)
            # source aggregation puts these compounds 1.1-3.7 eV/atom too high
            assert energy == pytest.approx(MP_SCALE[formula], abs=0.1)


def test_unsupported_element_is_refused(m3gnet):
    atoms = Atoms("MgAm", positions=[[0, 0, 0], [2.1, 0, 0]], cell=[6, 6, 6], pbc=True)
    atoms.calc = m3gnet
    with pytest.raises(UnsupportedElementsError, match="Am"):
        atoms.get_potential_energy()
    with pytest.raises(UnsupportedElementsError, match="Am"):
        m3gnet.model.compute_many([atoms])


def test_missing_model_directory_lists_paths(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-model"
    with pytest.raises(WeightsNotFoundError) as err:
        load_model(f"matgl:{missing}")
    assert str(missing) in str(err.value)

    import matgl

    def offline(name, **kwargs):
        raise ValueError(f"no network for {name}")

    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path))
    monkeypatch.setattr(matgl, "load_model", offline)
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("m3gnet")
    assert str(tmp_path / "matgl" / "M3GNet-MP-2021.2.8-PES") in err.value.searched
    assert any("matgl.load_model" in p for p in err.value.searched)


def test_line_graph_is_matgls_and_the_owned_one_its_subset(m3gnet):
    """softcalc's vectorised three-body line graph holds exactly matgl's triples; restricted to the
    bonds that receive (those ending at owned atoms, placed first) it holds exactly their triples."""
    import torch
    from matgl.graph._compute import compute_pair_vector_and_distance, create_line_graph
    from softcalc_matgl._graph import build_graph_batch, owned_line_graph

    atoms = rattled_mgo().repeat((2, 2, 1))
    adapter = m3gnet.model
    graph = build_graph_batch([atoms], adapter.element_index, 5.0, torch.float64, "cpu")
    offsets = graph.shifts @ graph.cells[0]
    vectors, distances = compute_pair_vector_and_distance(graph.positions, graph.edge_index, offsets)
    theirs = create_line_graph(graph.edge_index, distances, vectors, offsets, len(atoms), 4.0)
    n_bonds = graph.edge_index.shape[1]
    ours = owned_line_graph(graph.edge_index, distances, 4.0, n_bonds)

    def triples(line_graph: dict) -> set[tuple[int, int]]:
        return set(map(tuple, line_graph["line_edge_index"].T.tolist()))

    assert len(triples(theirs)) > 1000 and triples(ours) == triples(theirs)
    assert ours["line_edge_index"].shape[1] == len(triples(ours))  # no triple twice
    assert torch.equal(ours["kept_edge_ids"], theirs["kept_edge_ids"])
    assert torch.equal(ours["n_triple_ij"], theirs["n_triple_ij"].long())
    receiving = n_bonds // 3
    owned = owned_line_graph(graph.edge_index, distances, 4.0, receiving)
    assert triples(owned) == {t for t in triples(theirs) if t[0] < receiving}


def test_exchange_updates_only_the_edges_ending_at_owned_atoms(m3gnet):
    """With exchanged ghost features (per-atom virials of a periodic cell) every block updates only
    the edges ending at the cell's own atoms, and the numbers stay those of the periodic cell."""
    from softcalc.virial import per_atom_virials

    calc = SoftCorrectedCalc("m3gnet", scale=1.1, dtype="float64")
    model = calc.active.model.potential.model
    atoms = rattled_mgo().repeat((2, 1, 1))
    given, updated = [], []
    handles = [model.graph_layers[0].register_forward_pre_hook(lambda _m, args: given.append(args[0]))]
    handles.append(
        model.graph_layers[0].conv.register_forward_hook(lambda _m, args, _o: updated.append(args[0]))
    )
    try:
        res = per_atom_virials(calc, atoms)
    finally:
        for handle in handles:
            handle.remove()
    edges = given[-1]
    to_owned = int((edges[1] < len(atoms)).sum())
    assert 0 < to_owned < edges.shape[1]  # the cluster holds three-body partners ending at images
    assert updated[-1].shape[1] == to_owned and bool((updated[-1][1] < len(atoms)).all())
    atoms.calc = calc
    assert res["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(res["forces"], atoms.get_forces(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(res["stress"], atoms.get_stress(), rtol=0, atol=1e-10)


def test_owned_edges_refuse_a_matgl_layout_they_do_not_know(m3gnet, monkeypatch):
    """Blocks called without their positional arguments, or whose arguments moved (another matgl
    layout), stop with the fix named: never an index error from inside a hook, never a wrong cut."""
    from softcalc_matgl._owned_edges import owned_edges_only

    from softcalc.errors import SoftcalcError

    model = m3gnet.model.potential.model
    with owned_edges_only(model, 3), pytest.raises(SoftcalcError, match="decompose no"):
        model.graph_layers[0](None, None)
    block = type(model.graph_layers[0])

    def moved(self, edge_feat, edge_index, node_feat, state_feat, rbf, node_batch, edge_batch, *rest):  # noqa: ANN001, ANN002, ANN202
        raise AssertionError("not called")

    monkeypatch.setattr(block, "forward", moved)
    with pytest.raises(SoftcalcError, match="edge_index, edge_feat at the positions 0, 1"):
        with owned_edges_only(model, 3):
            pass
    assert (
        not model.graph_layers[0]._forward_pre_hooks and not model.three_body_interactions[0]._forward_hooks
    )
