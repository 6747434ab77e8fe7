"""SoftCorrectedCalc on the toy Morse plugin: anchoring, conservativeness, caching, errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.optimize import BFGS
from finite_differences import fd_forces, fd_stress

import softcalc
from softcalc import Correction, SoftCorrectedCalc
from softcalc.errors import (
    CorrectionMismatchError,
    InvalidStructureError,
    PerAtomEnergyNotSupportedError,
    UnsupportedElementsError,
)


@pytest.fixture
def sige() -> Atoms:
    atoms = bulk("Si", "diamond", 5.45, cubic=True)
    atoms.symbols[[1, 6]] = "Ge"
    atoms.rattle(0.08, seed=3)
    atoms.set_cell(
        atoms.cell @ np.array([[1.0, 0.02, 0.0], [0.0, 0.99, 0.01], [0.03, 0.0, 1.01]]), scale_atoms=True
    )
    return atoms


def test_scale_one_returns_base_results_unchanged(sige: Atoms) -> None:
    base = softcalc.load_model("toy-morse")
    ref = sige.copy()
    ref.calc = base
    wrapped = sige.copy()
    wrapped.calc = SoftCorrectedCalc(base, scale=1.0)
    assert wrapped.get_potential_energy() == ref.get_potential_energy()
    assert np.array_equal(wrapped.get_forces(), ref.get_forces())
    assert np.array_equal(wrapped.get_stress(), ref.get_stress())


def test_global_scale_is_anchored(sige: Atoms) -> None:
    base = softcalc.load_model("toy-morse")
    mu = base.info.reference_energies
    e_ref = sum(mu[s] for s in sige.get_chemical_symbols())
    ref = sige.copy()
    ref.calc = base
    e0, f0, s0 = ref.get_potential_energy(), ref.get_forces(), ref.get_stress()
    atoms = sige.copy()
    atoms.calc = SoftCorrectedCalc(base, scale=1.15)
    assert atoms.get_potential_energy() == pytest.approx(e_ref + 1.15 * (e0 - e_ref), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), 1.15 * f0, atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(), 1.15 * s0, atol=1e-12)
    energies = atoms.get_potential_energies()
    assert energies.sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-9)


@pytest.mark.parametrize(
    "correction",
    [Correction(scale=1.2), Correction(scale=1.0, species_scales={"Si": 1.25, "Ge": 0.9})],
    ids=["global", "per-species"],
)
def test_corrected_forces_and_stress_are_conservative(sige: Atoms, correction: Correction) -> None:
    """float64 toy model: F' = −∂E'/∂R and σ' = (1/V)∂E'/∂ε to 1e-6 (central differences)."""
    calc = SoftCorrectedCalc("toy-morse", correction=correction)
    atoms = sige.copy()
    atoms.calc = calc
    np.testing.assert_allclose(atoms.get_forces(), fd_forces(sige, calc, h=1e-4), atol=1e-6)
    np.testing.assert_allclose(atoms.get_stress(), fd_stress(sige, calc, h=1e-5), atol=1e-7)


def test_per_species_with_equal_scales_equals_global(sige: Atoms) -> None:
    glob = sige.copy()
    glob.calc = SoftCorrectedCalc("toy-morse", scale=1.1)
    spec = sige.copy()
    spec.calc = SoftCorrectedCalc("toy-morse", correction=Correction(species_scales={"Si": 1.1, "Ge": 1.1}))
    assert spec.get_potential_energy() == pytest.approx(glob.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(spec.get_forces(), glob.get_forces(), atol=1e-10)
    np.testing.assert_allclose(spec.get_stress(), glob.get_stress(), atol=1e-12)


def test_caching_and_recalculation(sige: Atoms) -> None:
    calc = SoftCorrectedCalc("toy-morse", scale=1.1)
    atoms = sige.copy()
    atoms.calc = calc
    e1 = atoms.get_potential_energy()
    results = calc.results
    atoms.get_potential_energy()
    assert calc.results is results  # nothing changed: cached
    atoms.positions[0, 0] += 0.05
    assert atoms.get_potential_energy() != e1


def test_optimiser_and_molecule_without_stress() -> None:
    """A global scale moves no minimum: BFGS finds the bare model's bond length."""
    lengths = []
    for calc in (softcalc.load_model("toy-morse"), SoftCorrectedCalc("toy-morse", scale=1.2)):
        mol = Atoms("C2", positions=[[0, 0, 0], [1.7, 0.1, 0]])
        mol.calc = calc
        BFGS(mol, logfile=None).run(fmax=1e-5, steps=200)
        lengths.append(mol.get_distance(0, 1))
    assert lengths[1] == pytest.approx(lengths[0], abs=1e-4)
    assert 1.3 < lengths[0] < 1.6
    with pytest.raises(Exception, match="periodic"):
        mol.get_stress()


def test_foreign_ase_calculator_global_scale() -> None:
    atoms = bulk("Cu", "fcc", 3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    ref = atoms.copy()
    ref.calc = EMT()
    atoms.calc = SoftCorrectedCalc(EMT(), scale=0.9, reference_energies={"Cu": 0.1})
    e_ref = 0.1 * len(atoms)
    assert atoms.get_potential_energy() == pytest.approx(e_ref + 0.9 * (ref.get_potential_energy() - e_ref))
    np.testing.assert_allclose(atoms.get_forces(), 0.9 * ref.get_forces(), atol=1e-12)
    with pytest.raises(PerAtomEnergyNotSupportedError, match="global scale"):
        SoftCorrectedCalc(EMT(), correction=Correction(species_scales={"Cu": 1.1}))


def test_nan_positions_give_clear_error(sige: Atoms) -> None:
    sige.positions[2, 1] = np.nan
    sige.calc = SoftCorrectedCalc("toy-morse", scale=1.1)
    with pytest.raises(InvalidStructureError, match=r"atom\(s\) \[2\] are NaN"):
        sige.get_forces()


def test_unsupported_element_is_named() -> None:
    atoms = molecule("H2O")
    atoms.calc = SoftCorrectedCalc("toy-morse", scale=1.1)
    with pytest.raises(UnsupportedElementsError, match="H"):
        atoms.get_potential_energy()


def test_correction_for_another_model_is_refused(tmp_path) -> None:
    corr = Correction(scale=1.1, model={"family": "chgnet", "name": "chgnet-0.3.0", "weights_sha256": "abc"})
    corr.save(tmp_path / "c.json")
    with pytest.raises(CorrectionMismatchError, match="chgnet-0.3.0"):
        SoftCorrectedCalc("toy-morse", correction=tmp_path / "c.json")
    SoftCorrectedCalc("toy-morse", correction=tmp_path / "c.json", check_model=False)


def test_not_recommended_correction_warns() -> None:
    with pytest.warns(UserWarning, match="not recommended"):
        SoftCorrectedCalc("toy-morse", correction=Correction(scale=1.3, recommended=False))


def test_one_model_call_serves_energy_forces_stress(sige: Atoms, monkeypatch) -> None:
    """ASE getters called one after another must not re-run the model (MD and NPT call them all)."""
    calc = SoftCorrectedCalc("toy-morse", scale=1.1)
    model = calc.base.model
    calls = []
    original = model.compute
    monkeypatch.setattr(model, "compute", lambda atoms, props: calls.append(props) or original(atoms, props))
    sige.calc = calc
    sige.get_potential_energy()
    sige.get_forces()
    sige.get_stress()
    sige.get_potential_energies()
    assert len(calls) == 1


def test_atom_batches_bound_atoms_and_keep_order() -> None:
    from softcalc.model import atom_batches

    sizes = [8, 8, 4, 16, 40, 2]
    structures = [Atoms("H" * n) for n in sizes]
    batches = list(atom_batches(structures, 17))
    assert [[len(a) for a in b] for b in batches] == [[8, 8], [4], [16], [40], [2]]
    assert [a for b in batches for a in b] == structures


def test_cell_filter_relaxes_to_a_minimum_of_the_corrected_energy() -> None:
    """FrechetCellFilter + BFGS with a per-species correction: where forces and stress vanish, E' is minimal.

    Per-species λ moves the minimum, so the relaxation only lands on a true minimum of E' if the
    stress is the strain derivative of the corrected energy.
    """
    from ase.filters import FrechetCellFilter

    atoms = bulk("Si", "fcc", a=3.45, cubic=True).repeat((2, 1, 1))
    atoms.symbols[[0, 5]] = "Ge"
    atoms.rattle(0.05, seed=2)
    atoms.set_cell(atoms.cell @ np.diag([1.03, 0.98, 1.01]), scale_atoms=True)
    atoms.calc = SoftCorrectedCalc("toy-morse", Correction(species_scales={"Si": 1.1, "Ge": 1.4}))
    start = atoms.get_potential_energy()
    assert BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=500)
    assert np.abs(atoms.get_forces()).max() < 1e-4 and np.abs(atoms.get_stress()).max() < 1e-5
    e_min = atoms.get_potential_energy()
    assert e_min < start - 0.05
    for v in range(6):  # every small strain raises E'
        for sign in (1, -1):
            strained = atoms.copy()
            eps = np.zeros((3, 3))
            i, j = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)][v]
            eps[i, j] = eps[j, i] = sign * 2e-3
            strained.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
            strained.calc = atoms.calc
            assert strained.get_potential_energy() > e_min


def test_neb_barrier_scales_with_a_global_lambda() -> None:
    """Au hop on Al(100) with EMT: a global λ keeps the minimum-energy path and scales the barrier by λ."""
    from ase.build import add_adsorbate, fcc100
    from ase.constraints import FixAtoms
    from ase.mep import NEB

    slab = fcc100("Al", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "Au", 1.7, "hollow")
    slab.set_constraint(FixAtoms(mask=[a.tag > 1 for a in slab]))
    final = slab.copy()
    final[-1].x += slab.cell[0, 0] / 2

    def barrier(make_calc) -> tuple[float, np.ndarray]:
        ends = []
        for end in (slab, final):
            end = end.copy()
            end.calc = make_calc()
            BFGS(end, logfile=None).run(fmax=1e-3)
            ends.append(end)
        images = [ends[0]] + [ends[0].copy() for _ in range(3)] + [ends[1]]
        for image in images[1:-1]:
            image.calc = make_calc()
        neb = NEB(images, method="improvedtangent")
        neb.interpolate()
        BFGS(neb, logfile=None).run(fmax=2e-3, steps=400)
        energies = [image.get_potential_energy() for image in images]
        return max(energies) - energies[0], images[2].positions[-1]

    bare, mid_bare = barrier(EMT)
    zero = {"Al": 0.0, "Au": 0.0}
    scaled, mid_scaled = barrier(lambda: SoftCorrectedCalc(EMT(), scale=1.25, reference_energies=zero))
    assert bare > 0.1
    assert scaled == pytest.approx(1.25 * bare, rel=2e-3)
    np.testing.assert_allclose(mid_scaled, mid_bare, atol=5e-3)
