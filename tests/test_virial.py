"""Per-atom virials and ASE per-atom stresses (softcalc.virial, SoftCorrectedCalc ``stresses``).

Known answers: for the toy Morse pair potential the centroid virial is LAMMPS' pair form
W_i = ½ Σ_j r_ij ⊗ f_ij, computed here independently from φ'(r) by central differences; for a
many-body model (a random-weight float64 MACE, two message-passing layers) the per-atom virials sum
to the stress, and a supercell repeats the per-atom virials of its cell, which only holds when
every periodic image of an atom is folded back onto it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.emt import EMT
from ase.neighborlist import primitive_neighbor_list
from ase.stress import full_3x3_to_voigt_6_stress
from mace_models import save_random_mace
from softcalc_toy import CUTOFF, PARAMS

from softcalc import Correction, SoftCorrectedCalc
from softcalc.errors import PerAtomEnergyNotSupportedError
from softcalc.virial import image_cluster, per_atom_virials

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def morse_phi(r: np.ndarray, a: str, b: str) -> np.ndarray:
    """The toy's pair energy φ(r) (eV) for elements a, b (its documented mixing rules)."""
    (da, wa, ra), (db, wb, rb) = PARAMS[a], PARAMS[b]
    d, w, r0 = np.sqrt(da * db), 0.5 * (wa + wb), 0.5 * (ra + rb)
    fc = 0.5 * (np.cos(np.pi * r / CUTOFF) + 1.0)
    return d * ((1.0 - np.exp(-w * (r - r0))) ** 2 - 1.0) * fc


def pair_virials(atoms: Atoms, scales: dict[str, float]) -> np.ndarray:
    """The centroid virial W_i = Σ_j (r_j - r_i) ⊗ ∂U_j/∂r_i of U_j = μ + λ_j ½ Σ_k φ(r_jk):
    W_i = ½ Σ_j r_ij ⊗ f_ij with f_ij = -λ_j φ'(r) r̂_ij (λ of the atom whose energy moves)."""
    i, j, d = primitive_neighbor_list("ijD", atoms.pbc, np.asarray(atoms.cell), atoms.positions, CUTOFF)
    sym = np.array(atoms.get_chemical_symbols())
    r = np.linalg.norm(d, axis=1)
    h = 1e-6
    dphi = np.array(
        [(morse_phi(x + h, p, q) - morse_phi(x - h, p, q)) / (2 * h) for x, p, q in zip(r, sym[i], sym[j])]
    )
    lam = np.array([scales[s] for s in sym])
    r_ij = -d  # d = r_j - r_i
    f_ij = (-lam[j] * dphi / r)[:, None] * r_ij
    out = np.zeros((len(atoms), 3, 3))
    np.add.at(out, i, 0.5 * r_ij[:, :, None] * f_ij[:, None, :])
    return out


@pytest.fixture
def sige() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.45, cubic=True)
    atoms.symbols[[1, 6]] = "Ge"
    atoms.rattle(0.08, seed=3)
    atoms.set_cell(
        atoms.cell @ np.array([[1.0, 0.02, 0.0], [0.0, 0.99, 0.01], [0.03, 0.0, 1.01]]), scale_atoms=True
    )
    return atoms


@pytest.fixture(scope="module")
def random_mace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mace")
    return save_random_mace(tmp_path_factory.mktemp("mace") / "random_sige.model")


def test_pair_potential_virials_are_the_pair_form(sige: Atoms) -> None:
    scales = {"Si": 1.1, "Ge": 1.25}
    calc = SoftCorrectedCalc("toy-morse", correction=Correction(species_scales=scales))
    res = per_atom_virials(calc, sige)
    expected = pair_virials(sige, scales)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(res["virials"], expected, rtol=0, atol=1e-7)
    # an isolated cluster (no images): the same formula
    cluster = sige[:5]
    cluster.pbc = False
    got = calc.local_energy(cluster, virials=True)["virials"]
    np.testing.assert_allclose(got, pair_virials(cluster, scales), rtol=0, atol=1e-7)


def test_ase_stresses_sum_to_the_stress_and_leave_the_rest_unchanged(sige: Atoms) -> None:
    calc = SoftCorrectedCalc("toy-morse", scale=1.2)
    sige.calc = calc
    energy, forces, stress = sige.get_potential_energy(), sige.get_forces(), sige.get_stress()
    stresses = sige.get_stresses()
    assert stresses.shape == (len(sige), 6)
    np.testing.assert_allclose(stresses.sum(axis=0), stress, rtol=0, atol=1e-12)
    assert abs(sige.get_potential_energy() - energy) < 1e-10
    np.testing.assert_allclose(sige.get_forces(), forces, rtol=0, atol=1e-10)
    expected = pair_virials(sige, {"Si": 1.2, "Ge": 1.2})
    volume = sige.get_volume()
    np.testing.assert_allclose(
        stresses, [full_3x3_to_voigt_6_stress(-w / volume) for w in expected], rtol=0, atol=1e-9
    )


def test_many_body_virials_sum_to_the_stress_and_repeat_with_the_cell(random_mace: Path, sige: Atoms) -> None:
    calc = SoftCorrectedCalc(random_mace, correction=Correction(species_scales={"Si": 1.1, "Ge": 1.3}))
    assert calc.info.n_message_passing == 2 and calc.info.dtype == "float64"
    res = per_atom_virials(calc, sige)
    volume = sige.get_volume()
    sige.calc = calc
    np.testing.assert_allclose(
        -res["virials"].sum(axis=0) / volume, sige.get_stress(voigt=False), rtol=0, atol=1e-10
    )
    assert np.abs(res["virials"]).max() > 1e-2
    # a many-body W_i is not the pair form: it is not symmetric
    assert np.abs(res["virials"] - res["virials"].transpose(0, 2, 1)).max() > 1e-6
    bigger = sige.repeat((2, 1, 1))
    repeated = per_atom_virials(calc, bigger)["virials"]
    np.testing.assert_allclose(repeated, np.concatenate([res["virials"]] * 2), rtol=0, atol=1e-9)


def test_image_cluster_holds_every_image_within_the_radius() -> None:
    atoms = bulk("Si", "diamond", a=5.43)  # 2-atom primitive cell
    unfolded = image_cluster(atoms, 6.0)
    n = len(unfolded.atoms)
    assert not unfolded.atoms.pbc.any() and unfolded.home.sum() == 2
    shift = unfolded.atoms.positions[0] - atoms.positions[0]  # translated into its bounding box
    np.testing.assert_allclose(unfolded.atoms.positions[:2], atoms.positions + shift)
    d = np.linalg.norm(unfolded.atoms.positions[:, None] - shift - atoms.positions[None], axis=2).min(axis=1)
    assert d.max() <= 6.0 + 0.011
    # nothing within 6 Å is missing: count the images a brute-force search over shifts finds
    shifts = np.array(np.meshgrid(*[range(-5, 6)] * 3)).reshape(3, -1).T
    images = (atoms.positions[None, :, :] + (shifts @ atoms.cell)[:, None, :]).reshape(-1, 3)
    near = np.linalg.norm(images[:, None] - atoms.positions[None], axis=2).min(axis=1) <= 6.0
    assert n == near.sum()
    np.testing.assert_array_equal(np.bincount(unfolded.owner), [n // 2, n // 2])


def test_stresses_need_a_periodic_cell_and_a_softcalc_model(sige: Atoms) -> None:
    molecule = sige[:4]
    molecule.pbc = False
    molecule.calc = SoftCorrectedCalc("toy-morse", scale=1.1)
    with pytest.raises(PropertyNotImplementedError, match="3D periodic"):
        molecule.get_stresses()
    cu = bulk("Cu", "fcc", a=3.6)
    cu.calc = SoftCorrectedCalc(EMT(), scale=1.1)
    with pytest.raises(PerAtomEnergyNotSupportedError, match="per-atom stresses"):
        cu.get_stresses()


def test_virials_of_a_periodic_structure_are_refused_by_the_adapter(sige: Atoms) -> None:
    model = SoftCorrectedCalc("toy-morse").active.model
    with pytest.raises(PropertyNotImplementedError, match="non-periodic clusters"):
        model.weighted_energy(sige, np.ones(len(sige)), virials=True)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("interactions", [2, 3])
def test_exchanged_images_give_the_virials_of_the_whole_receptive_field(
    tmp_path: Path, sige: Atoms, interactions: int
) -> None:
    """A one-cutoff shell whose images take their features from their atoms (softcalc.exchange)
    equals the plain evaluation of every image out to the receptive field, atom by atom; with three
    interactions the image-shift corrections of two exchange points stack."""
    pytest.importorskip("mace")
    path = save_random_mace(tmp_path / "random.model", interactions=interactions)
    calc = SoftCorrectedCalc(path, correction=Correction(species_scales={"Si": 1.1, "Ge": 1.3}))
    assert len(calc.active.model.exchange_points()) == interactions - 1
    model = calc.active.model
    assert model.exchange_cutoff < calc.receptive_field
    unfolded = image_cluster(sige, calc.receptive_field)
    field = calc.local_energy(unfolded.atoms, unfolded.home, virials=True)
    expected = np.zeros((len(sige), 3, 3))
    np.add.at(expected, unfolded.owner, field["virials"])
    got = per_atom_virials(calc, sige)
    assert len(image_cluster(sige, model.exchange_cutoff).atoms) < len(unfolded.atoms)
    np.testing.assert_allclose(got["virials"], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["energies"], field["energies"][: len(sige)], rtol=0, atol=1e-10)
