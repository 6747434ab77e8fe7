"""Periodic phonons: parity with phonopy on the same force constants, own displacement pipelines
against phonopy's, thermal properties, DOS, bands, file interop."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

phonopy = pytest.importorskip("phonopy")

from softcalc.model import ModelCalculator  # noqa: E402
from softcalc.phonons import Phonons, acoustic_sum_rule, mesh_qpoints, read_force_constants  # noqa: E402
from softcalc.phonons.phonopy_io import from_phonopy_atoms, read_phonopy  # noqa: E402

EXAMPLES = "phonons/phonopy-examples"
MESH = [8, 8, 8]


def phonopy_mesh(ph, mesh=MESH) -> tuple[np.ndarray, np.ndarray]:
    """phonopy's full Γ-centred mesh: (qpoints, frequencies)."""
    ph.run_mesh(mesh, is_mesh_symmetry=False, is_gamma_center=True)
    return ph.mesh.qpoints, ph.mesh.frequencies


def phonopy_pipeline(unitcell: Atoms, supercell_matrix, calculator, delta: float = 0.01) -> phonopy.Phonopy:
    """phonopy's own workflow: its ± displacements, forces from an ASE calculator, its fit."""
    from softcalc.phonons.phonopy_io import to_phonopy_atoms

    ph = phonopy.Phonopy(
        to_phonopy_atoms(unitcell), supercell_matrix=supercell_matrix, primitive_matrix="auto"
    )
    ph.generate_displacements(distance=delta, is_plusminus=True)
    forces = []
    for cell in ph.supercells_with_displacements:
        atoms = from_phonopy_atoms(cell)
        atoms.calc = calculator
        forces.append(atoms.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    return ph


@pytest.mark.parametrize("material", ["Si", "NaCl", "MgB2", "SiO2-HP"])
def test_same_force_constants_same_frequencies(data_dir, material) -> None:
    ph = read_phonopy(data_dir / EXAMPLES / material)
    ours = Phonons.from_phonopy(ph)
    assert ours.force_constants is not None and len(ours.primitive) == len(ph.primitive)
    q, reference = phonopy_mesh(ph)
    np.testing.assert_allclose(ours.frequencies(q), reference, rtol=0, atol=1e-6)
    ph.run_qpoints([[0, 0, 0]])
    np.testing.assert_allclose(ours.frequencies([0, 0, 0]), ph.qpoints.frequencies, rtol=0, atol=1e-6)
    # the periodic images are phonopy's
    _, multi = ph.primitive.get_smallest_vectors()
    np.testing.assert_array_equal(ours._require_fc().multiplicity, multi[:, :, 0])
    # softcalc's own mesh is the same set of q-points (mod reciprocal lattice vectors)
    mesh = ours.mesh(MESH)
    key = lambda qs: np.sort(np.round(np.mod(qs, 1.0), 9) % 1.0, axis=0)  # noqa: E731
    np.testing.assert_allclose(key(mesh.qpoints), key(q), atol=1e-9)
    np.testing.assert_allclose(np.sort(mesh.frequencies.ravel()), np.sort(reference.ravel()), atol=1e-6)


def test_thermal_properties_and_dos_match_phonopy(data_dir) -> None:
    ph = read_phonopy(data_dir / EXAMPLES / "NaCl")
    ours = Phonons.from_phonopy(ph)
    temps = [0.0, 50.0, 300.0, 1000.0]
    phonopy_mesh(ph)
    ph.run_thermal_properties(temperatures=temps, cutoff_frequency=1e-3)
    ref = ph.thermal_properties
    tp = ours.thermal_properties(temps, mesh=MESH, cutoff_frequency=1e-3)
    np.testing.assert_allclose(tp.free_energy, ref.free_energy, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tp.entropy, ref.entropy, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tp.heat_capacity, ref.heat_capacity, rtol=1e-9, atol=1e-9)
    assert tp.heat_capacity[-1] == pytest.approx(6 * 8.314462, rel=0.01)  # Dulong-Petit, 2 atoms
    ph.run_total_dos(sigma=0.2, freq_min=-1.0, freq_max=8.0, freq_pitch=0.05, use_tetrahedron_method=False)
    points = ph.total_dos.frequency_points
    dos = ours.dos(MESH, sigma=0.2, frequency_points=points)
    np.testing.assert_allclose(dos.dos, ph.total_dos.dos, rtol=1e-8, atol=1e-10)
    assert np.trapezoid(dos.dos, points) == pytest.approx(6.0, rel=1e-3)


def test_band_structure_matches_phonopy(data_dir) -> None:
    ph = read_phonopy(data_dir / EXAMPLES / "MgB2")
    ours = Phonons.from_phonopy(ph)
    path = [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0], [0, 0, 0], [0, 0, 0.5]]
    bands = ours.band_structure(path, npoints=11)
    ph.run_band_structure(bands.qpoints)
    reference = ph.band_structure
    for ours_f, ref_f in zip(bands.frequencies, reference.frequencies):
        np.testing.assert_allclose(ours_f, ref_f, atol=1e-6)
    for ours_d, ref_d in zip(bands.distances, reference.distances):
        np.testing.assert_allclose(ours_d, ref_d, atol=1e-10)
    auto = ours.band_structure(npoints=5)
    assert auto.labels and len(auto.frequencies) == len(auto.qpoints)


@pytest.mark.parametrize("method", ["compact", "full", "symmetry"])
def test_emt_copper_against_phonopy_pipeline(method) -> None:
    unitcell = bulk("Cu", "fcc", a=3.6)
    ours = Phonons(unitcell, [3, 3, 3])
    ours.compute_force_constants(EMT(), method=method, delta=0.01)
    reference = phonopy_pipeline(unitcell, [3, 3, 3], EMT())
    q, ref = phonopy_mesh(reference)
    freqs = ours.frequencies(q)
    np.testing.assert_allclose(freqs, ref, atol=1e-3)
    assert ref.max() > 5.0  # a real spectrum, not zeros


def test_toy_model_batched_against_phonopy_pipeline() -> None:
    from softcalc_toy import ToyMorse

    toy = ModelCalculator(ToyMorse())
    unitcell = bulk("Si", "diamond", a=5.43)
    ours = Phonons(unitcell, [2, 2, 2])
    # phonopy displaces along [011], softcalc along x, y, z: both differ from the exact constants by
    # O(δ²) anharmonic terms (1.3e-3 THz at δ = 0.01 Å for this strongly anharmonic toy), so use small δ
    fc = ours.compute_force_constants(toy, "compact", delta=0.003, batch_size=4, acoustic_sum_rule=True)
    assert fc.shape == (2, 16, 3, 3)
    np.testing.assert_allclose(fc.sum(axis=1), 0.0, atol=1e-12)
    reference = phonopy_pipeline(unitcell, [2, 2, 2], toy, delta=0.003)
    q, ref = phonopy_mesh(reference, [4, 4, 4])
    np.testing.assert_allclose(ours.frequencies(q), ref, atol=1e-3)
    assert np.abs(ours.frequencies([0, 0, 0])[0, :3]).max() < 1e-5  # acoustic modes at Γ


def test_full_and_compact_agree_and_sum_rule() -> None:
    unitcell = bulk("Al", "fcc", a=4.05)
    ours = Phonons(unitcell, [2, 2, 2])
    full = ours.compute_force_constants(EMT(), method="full")
    compact = ours.compute_force_constants(EMT(), method="compact")
    np.testing.assert_allclose(full[ours.p2s], compact, atol=1e-12)
    noisy = full + np.random.default_rng(3).normal(scale=1e-3, size=full.shape)
    fixed = acoustic_sum_rule(noisy, ours.p2s)
    np.testing.assert_allclose(fixed.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(fixed, fixed.transpose(1, 0, 3, 2), atol=1e-14)


def test_interop_round_trips(tmp_path, data_dir) -> None:
    ph = read_phonopy(data_dir / EXAMPLES / "SiO2-HP")
    ours = Phonons.from_phonopy(ph)
    q = mesh_qpoints([3, 3, 2], shift=(0.5, 0.5, 0.5))
    expected = ours.frequencies(q)
    # to_phonopy: phonopy computes the same frequencies from softcalc's force constants
    back = ours.to_phonopy()
    back.run_qpoints(q)
    np.testing.assert_allclose(back.qpoints.frequencies, expected, atol=1e-6)
    # FORCE_CONSTANTS text file (compact here) and HDF5
    ours.write_force_constants(tmp_path / "FORCE_CONSTANTS")
    np.testing.assert_allclose(
        read_force_constants(tmp_path / "FORCE_CONSTANTS"), ours.force_constants, atol=1e-12
    )
    from_file = read_phonopy(
        data_dir / EXAMPLES / "SiO2-HP" / "phonopy_disp.yaml", force_constants=tmp_path / "FORCE_CONSTANTS"
    )
    np.testing.assert_allclose(Phonons.from_phonopy(from_file).frequencies(q), expected, atol=1e-6)
    ours.save(tmp_path / "fc.h5", metadata={"source": "test"})
    loaded = Phonons.load(tmp_path / "fc.h5")
    np.testing.assert_allclose(loaded.frequencies(q), expected, atol=1e-10)
    np.testing.assert_allclose(loaded.unitcell.get_masses(), ours.unitcell.get_masses())
