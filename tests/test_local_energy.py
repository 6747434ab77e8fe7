"""SoftCorrectedCalc.local_energy: the corrected energy of owned atoms in a ghost-shell cluster.

A periodic box is split into two spatial domains; each domain's owned atoms plus every periodic image
within one receptive field form a non-periodic cluster (what LAMMPS' decomposed pair style sees).
Summed over domains, energies, forces folded onto their owners, per-atom energies and the virial
Σ r·f must reproduce the periodic calculation.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from softcalc import Correction, SoftCorrectedCalc


@pytest.fixture(scope="module")
def sige() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.5).repeat(3)  # 54 atoms, 11.7 Å fcc-primitive cell
    atoms.symbols[np.random.default_rng(3).permutation(len(atoms))[:20]] = "Ge"
    atoms.rattle(0.05, seed=5)
    return atoms


def domain_cluster(atoms: Atoms, owned: np.ndarray, shell: float) -> tuple[Atoms, np.ndarray, np.ndarray]:
    """Owned atoms first, then the images (3×3×3 supercell) within ``shell`` Å of an owned atom.

    Returns the non-periodic cluster, the owner index (into ``atoms``) of each cluster atom and the
    owned mask.
    """
    n = len(atoms)
    shifts = np.array([(i, j, k) for i in (0, -1, 1) for j in (0, -1, 1) for k in (0, -1, 1)])
    images = (atoms.positions[None] + (shifts @ atoms.cell)[:, None]).reshape(-1, 3)  # home image first
    owner = np.tile(np.arange(n), len(shifts))
    home = np.flatnonzero(owned)
    dist = np.linalg.norm(images[:, None] - atoms.positions[home][None], axis=2).min(axis=1)
    ghosts = np.setdiff1d(np.flatnonzero(dist < shell), home)
    keep = np.concatenate([home, ghosts])
    cluster = Atoms(numbers=atoms.numbers[owner[keep]], positions=images[keep], pbc=False)
    return cluster, owner[keep], np.arange(len(keep)) < len(home)


@pytest.mark.parametrize(
    "correction",
    [Correction(scale=1.15), Correction(species_scales={"Si": 1.1, "Ge": 1.25})],
    ids=["global", "per-species"],
)
def test_domains_reproduce_the_periodic_box(sige: Atoms, correction: Correction) -> None:
    calc = SoftCorrectedCalc("toy-morse", correction=correction)
    periodic = calc.local_energy(sige, compute_stress=True)
    shell = calc.info.receptive_field
    frac_x = sige.get_scaled_positions()[:, 0]
    energy, forces, energies, virial = 0.0, np.zeros((len(sige), 3)), np.zeros(len(sige)), np.zeros((3, 3))
    for owned in (frac_x < 0.5, frac_x >= 0.5):
        cluster, owner, mask = domain_cluster(sige, owned, shell)
        assert (~mask).sum() > mask.sum()  # a real ghost shell
        res = calc.local_energy(cluster, mask)
        energy += res["energy"]
        np.add.at(forces, owner, res["forces"])
        energies[owner[mask]] += res["energies"][mask]
        assert np.all(res["energies"][~mask] == 0.0)
        virial += cluster.positions.T @ res["forces"]  # Σ r ⊗ f over owned and ghost atoms
    assert energy == pytest.approx(periodic["energy"], abs=1e-9)
    np.testing.assert_allclose(forces, periodic["forces"], atol=1e-9)
    np.testing.assert_allclose(energies, periodic["energies"], atol=1e-9)
    stress = -virial / sige.get_volume()  # ASE stress = -(1/V) Σ r ⊗ f
    voigt = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    np.testing.assert_allclose(voigt, periodic["stress"], atol=1e-9)
    assert np.abs(periodic["forces"]).max() > 0.1 and np.abs(periodic["stress"]).max() > 1e-3


def test_local_energy_matches_the_calculator(sige: Atoms) -> None:
    """All atoms owned: the ASE calculator's corrected energy, forces and per-atom energies."""
    calc = SoftCorrectedCalc("toy-morse", scale=1.2)
    res = calc.local_energy(sige)
    atoms = sige.copy()
    atoms.calc = calc
    assert res["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(res["forces"], atoms.get_forces(), atol=1e-9)
    np.testing.assert_allclose(res["energies"], calc.get_property("energies", atoms), atol=1e-9)


def test_bridge_cluster_box_changes_nothing_but_speed(sige: Atoms) -> None:
    """The LAMMPS bridge puts each ghost-shell cluster in a bounding box: same energies and forces."""
    from softcalc.virial import cluster_atoms

    owned = sige.get_scaled_positions()[:, 0] < 0.5
    cluster, _, mask = domain_cluster(sige, owned, shell=5.0)
    cluster.positions -= 40.0  # LAMMPS ghosts sit anywhere, here far outside any box at the origin
    boxed = cluster_atoms(cluster.numbers, cluster.positions)
    assert not boxed.pbc.any()
    frac = boxed.get_scaled_positions(wrap=False)
    assert (frac > 0).all() and (frac < 1).all()
    calc = SoftCorrectedCalc("toy-morse", Correction(species_scales={"Si": 1.1, "Ge": 1.25}))
    loose, tight = calc.local_energy(cluster, mask), calc.local_energy(boxed, mask)
    assert tight["energy"] == pytest.approx(loose["energy"], abs=1e-10)
    np.testing.assert_allclose(tight["forces"], loose["forces"], atol=1e-10)
    np.testing.assert_allclose(tight["energies"], loose["energies"], atol=1e-10)
