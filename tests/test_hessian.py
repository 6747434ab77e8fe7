"""Finite-difference Hessians: ASE Vibrations parity, symmetry, sum rule, batched = serial, HDF5."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.vibrations import Vibrations

from softcalc import ModelCalculator, SoftCorrectedCalc
from softcalc.correction import Correction
from softcalc.forces import ForceEvaluator
from softcalc.hessian import (
    acoustic_sum_rule,
    fd_hessian,
    load_hessian,
    save_hessian,
    thz_to_cm1,
    vibrational_modes,
)


class Delegate(Calculator):
    """A foreign ASE calculator (not a softcalc one) around another: forces the serial path."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner: Calculator) -> None:
        super().__init__()
        self.inner = inner

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:  # noqa: ANN001
        super().calculate(atoms, properties, system_changes)
        self.inner.calculate(self.atoms, ["energy", "forces"], all_changes)
        self.results = {k: self.inner.results[k] for k in ("energy", "forces")}


@pytest.fixture(scope="module")
def toy() -> ModelCalculator:
    from softcalc_toy import ToyMorse  # the toy plugin's adapter, without discovering every plugin

    return ModelCalculator(ToyMorse())


@pytest.fixture(scope="module")
def si_cell() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=1)
    return atoms


def test_molecule_matches_ase_vibrations(tmp_path, monkeypatch) -> None:
    atoms = molecule("CH4")
    atoms.positions[1] += (0.02, -0.01, 0.03)  # off equilibrium: imaginary modes must agree too
    hessian = fd_hessian(atoms, EMT(), delta=0.01)
    freqs, modes = vibrational_modes(hessian, atoms.get_masses())
    monkeypatch.chdir(tmp_path)
    atoms.calc = EMT()
    vib = Vibrations(atoms, delta=0.01, nfree=2)
    vib.run()
    ase_cm1 = vib.get_frequencies()
    ase_signed = ase_cm1.real - ase_cm1.imag  # ASE: imaginary as complex, softcalc: negative
    np.testing.assert_allclose(np.sort(thz_to_cm1(freqs)), np.sort(ase_signed), rtol=1e-6, atol=1e-3)
    # normal modes are orthonormal eigenvectors of the mass-weighted Hessian
    flat = modes.reshape(len(freqs), -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(len(freqs)), atol=1e-10)


def test_symmetry_and_acoustic_sum_rule(toy, si_cell) -> None:
    raw = fd_hessian(si_cell, toy, delta=0.01, symmetrize=False)
    finer = fd_hessian(si_cell, toy, delta=0.005, symmetrize=False)
    scale = np.abs(raw).max()
    asymmetry = np.abs(raw - raw.T).max()
    assert asymmetry < 1e-4 * scale
    # central differences: the asymmetry is the O(δ²) error, a quarter at half the step
    assert 3.0 < asymmetry / np.abs(finer - finer.T).max() < 5.0
    n = len(si_cell)
    blocks = raw.reshape(n, 3, n, 3).sum(axis=2)  # Newton's third law: rows sum to zero
    assert np.abs(blocks).max() < 1e-8 * scale
    noisy = raw + np.random.default_rng(0).normal(scale=1e-3, size=raw.shape)
    fixed = acoustic_sum_rule(noisy)
    np.testing.assert_allclose(fixed, fixed.T, atol=1e-14)
    assert np.abs(fixed.reshape(n, 3, n, 3).sum(axis=2)).max() < 1e-12
    assert np.abs(noisy.reshape(n, 3, n, 3).sum(axis=2)).max() > 1e-3  # it did have something to fix
    assert np.abs(fixed - noisy).max() < 1e-2
    # the three rigid translations are now exact zero modes of the mass-weighted Hessian
    freqs, _ = vibrational_modes(acoustic_sum_rule(raw), si_cell.get_masses())
    assert np.sort(np.abs(freqs))[:3].max() < 1e-5


def test_fd_hessian_matches_analytic_second_derivative() -> None:
    """Diatomic Morse-like check through EMT: FD Hessian equals the FD derivative of the force."""
    atoms = Atoms("Cu2", positions=[(0, 0, 0), (0, 0, 2.4)])
    hessian = fd_hessian(atoms, EMT(), delta=1e-3)
    calc = EMT()
    forces = []
    for dz in (1e-4, -1e-4):
        a = atoms.copy()
        a.positions[1, 2] += dz
        a.calc = calc
        forces.append(a.get_forces()[1, 2])
    k = -(forces[0] - forces[1]) / 2e-4
    assert hessian[5, 5] == pytest.approx(k, rel=1e-5)
    assert hessian[2, 5] == pytest.approx(-k, rel=1e-5)


def test_batched_equals_serial(toy, si_cell, monkeypatch) -> None:
    calls = []
    original = toy.model.compute_many
    monkeypatch.setattr(toy.model, "compute_many", lambda s, p: calls.append(len(s)) or original(s, p))
    assert ForceEvaluator(toy).batched and not ForceEvaluator(Delegate(toy)).batched
    batched = fd_hessian(si_cell, toy, batch_size=5)
    assert calls == [5, 5, 2]
    serial = fd_hessian(si_cell, Delegate(toy))
    np.testing.assert_allclose(batched, serial, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("device", "size"), [("cpu", 1), ("cuda", 8), ("cuda:1", 8), ("mps", 1)])
def test_default_batch_follows_the_device(toy, si_cell, monkeypatch, device: str, size: int) -> None:
    """CPU: one displaced cell per model call (batching was slower on 2 cores); CUDA: 8 (not measured)."""
    import dataclasses

    from softcalc.phonons.force_constants import fd_batch_size

    calls = []
    original = toy.model.compute_many
    monkeypatch.setattr(toy.model, "compute_many", lambda s, p: calls.append(len(s)) or original(s, p))
    monkeypatch.setattr(toy.model, "info", dataclasses.replace(toy.model.info, device=device))
    corrected = SoftCorrectedCalc(toy, scale=1.1)
    assert fd_batch_size(toy) == fd_batch_size(corrected) == size
    assert fd_batch_size(EMT()) == 1  # a foreign calculator runs where it runs: counted as CPU
    n_cells = 6 * len(si_cell)  # 12
    fd_hessian(si_cell, toy)
    assert calls == [size] * (n_cells // size) + ([n_cells % size] if n_cells % size else [])
    calls.clear()
    fd_hessian(si_cell, corrected, batch_size=5)  # an explicit batch size still wins
    assert calls == [5, 5, 2]


def test_soft_corrected_hessian(toy, si_cell) -> None:
    lam = 1.17
    corrected = SoftCorrectedCalc(toy, scale=lam)
    evaluator = ForceEvaluator(corrected)
    assert evaluator.batched
    h_base = fd_hessian(si_cell, toy)
    h_soft = fd_hessian(si_cell, corrected)
    np.testing.assert_allclose(h_soft, lam * h_base, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_soft, fd_hessian(si_cell, Delegate(corrected)), atol=1e-10)
    per_species = SoftCorrectedCalc(toy, Correction(species_scales={"Si": lam}), check_model=False)
    assert not ForceEvaluator(per_species).batched
    np.testing.assert_allclose(fd_hessian(si_cell, per_species), h_soft, atol=1e-9)


def test_hdf5_round_trip(tmp_path, toy) -> None:
    atoms = molecule("H2O")
    atoms.symbols[0] = "O"
    hessian = np.random.default_rng(2).normal(size=(9, 9))
    path = tmp_path / "h.h5"
    save_hessian(path, hessian, atoms, {"model": "toy-morse", "delta": 0.01})
    h2, a2, meta = load_hessian(path)
    np.testing.assert_array_equal(h2, hessian)
    np.testing.assert_array_equal(a2.numbers, atoms.numbers)
    np.testing.assert_allclose(a2.positions, atoms.positions)
    np.testing.assert_allclose(a2.get_masses(), atoms.get_masses())
    assert meta == {"units": "eV/Angstrom^2", "model": "toy-morse", "delta": 0.01}
    with pytest.raises(ValueError, match="does not match"):
        save_hessian(path, hessian[:6, :6], atoms)


def test_cli_hessian(tmp_path, toy, si_cell) -> None:
    import json

    from ase.io import write

    from softcalc.cli import main

    write(tmp_path / "si.extxyz", si_cell)
    out, summary = tmp_path / "h.h5", tmp_path / "h.json"
    args = ["hessian", str(tmp_path / "si.extxyz"), "--model", "toy-morse", "--scale", "1.1"]
    assert main([*args, "--out", str(out), "--json", str(summary), "--quiet"]) == 0
    hessian, atoms, meta = load_hessian(out)
    assert meta["scale"] == 1.1 and meta["delta_angstrom"] == 0.01
    np.testing.assert_allclose(hessian, 1.1 * fd_hessian(si_cell, toy), atol=1e-9)
    freqs = json.loads(summary.read_text())["frequencies_thz"]
    np.testing.assert_allclose(freqs, vibrational_modes(hessian, atoms.get_masses())[0], atol=1e-9)
    assert main(["hessian", str(tmp_path / "missing.xyz"), "--model", "toy-morse", "--out", str(out)]) == 2
