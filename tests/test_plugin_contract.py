"""The model-family contract as the README documents it ("Adding a model family").

:class:`GaussPairs` is a family written with only the documented hooks of
:class:`~softcalc.torch_adapter.TorchAdapter`: ``forward_pass`` (a Gaussian pair potential,
e_i = ½ Σ_j φ(r_ij)), ``energies_outside`` (the atom reference energies μ_Zi, added outside the network
as CHGNet adds its AtomRef), ``module``, ``tunable_groups`` and ``reference_energy_table``. It must
evaluate (forces and stress are derivatives of the energy it reports, μ_Z included), take per-species
λ_Z, and fine-tune end to end with the same energies in training as in evaluation. One check decides
everywhere whether a model can be fine-tuned (``supports_fine_tuning``), with one error class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.neighborlist import primitive_neighbor_list
from finite_differences import fd_forces, fd_stress

from softcalc import Correction, SoftCorrectedCalc
from softcalc.autograd import strained
from softcalc.data.dataset import ForceFrame
from softcalc.errors import CalculationSetupError
from softcalc.finetune import FineTuneSettings, fine_tune, load_tuned_weights, save_tuned_weights
from softcalc.info import ModelInfo
from softcalc.model import ModelAdapter, ModelCalculator, require_fine_tuning
from softcalc.torch_adapter import ForwardPass, TorchAdapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ELEMENTS = ("Si", "C")
#: μ_Z (eV/atom): large against the pair energies, so a missing μ_Z shows at once
MU = {"Si": -4.0, "C": -7.0}
CUTOFF = 4.0


class PairNet(torch.nn.Module):
    """φ(r) = -ε_ij exp(-(r/σ_ij)²) fc(r), ε_ij = √(ε_i ε_j) (eV), σ_ij = (σ_i + σ_j)/2 (Å); μ_Z (eV/atom)."""

    def __init__(self) -> None:
        super().__init__()
        self.epsilon = torch.nn.Parameter(torch.tensor([0.6, 0.9], dtype=torch.float64))
        self.sigma = torch.nn.Parameter(torch.tensor([2.4, 1.6], dtype=torch.float64))
        self.mu = torch.nn.Parameter(torch.tensor([MU[e] for e in ELEMENTS], dtype=torch.float64))


class GaussPairs(TorchAdapter):
    """A family implementing the README's hooks and nothing else."""

    def __init__(self) -> None:
        super().__init__("cpu", "float64", 1000)
        self.net = self.frozen(PairNet())
        self.index = {e: k for k, e in enumerate(ELEMENTS)}
        self.info = ModelInfo(
            name="gauss-pairs",
            family="gauss",
            weights=None,
            weights_sha256=None,
            elements=frozenset(ELEMENTS),
            cutoff=CUTOFF,
            n_message_passing=1,
            reference_energies=dict(MU),
            device="cpu",
            dtype="float64",
        )

    def _kinds(self, structures: Sequence[Atoms]) -> torch.Tensor:
        return torch.tensor([self.index[s] for atoms in structures for s in atoms.get_chemical_symbols()])

    def forward_pass(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        energies, positions, strains = [], [], []
        for atoms in structures:
            i, j, shifts = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell[:], atoms.positions, CUTOFF)
            pos = torch.tensor(atoms.positions, dtype=self.dtype, requires_grad=True)
            cell = torch.tensor(np.asarray(atoms.cell), dtype=self.dtype)[None]
            strain, pos_s, cell_s = strained(pos, cell, torch.zeros(len(atoms), dtype=torch.long))
            kind = self._kinds([atoms])
            ki, kj = kind[torch.as_tensor(i)], kind[torch.as_tensor(j)]
            eps = torch.sqrt(self.net.epsilon[ki] * self.net.epsilon[kj])
            sig = 0.5 * (self.net.sigma[ki] + self.net.sigma[kj])
            images = torch.as_tensor(shifts, dtype=self.dtype) @ cell_s[0]
            r = torch.linalg.norm(pos_s[j] - pos_s[i] + images, dim=1)
            phi = -eps * torch.exp(-((r / sig) ** 2)) * 0.5 * (torch.cos(torch.pi * r / CUTOFF) + 1.0)
            site = torch.zeros(len(atoms), dtype=self.dtype).index_add(0, torch.as_tensor(i), phi)
            energies.append(0.5 * site)
            positions.append(pos)
            strains.append(strain)
        return ForwardPass(torch.cat(energies), positions, strains if stress else [])

    def energies_outside(self, structures: Sequence[Atoms]) -> torch.Tensor:
        return self.net.mu[self._kinds(structures)]

    @property
    def module(self) -> PairNet:
        return self.net

    def tunable_groups(self) -> tuple[list[torch.nn.Parameter], list[list[torch.nn.Parameter]]]:
        return [self.net.epsilon], [[self.net.sigma]]

    def reference_energy_table(self) -> tuple[torch.Tensor, dict[str, int]]:
        return self.net.mu, dict(self.index)


class Untunable(GaussPairs):
    """The same family without ``module``: evaluates, but cannot be fine-tuned."""

    module = TorchAdapter.module  # type: ignore[assignment]


def sic(seed: int) -> Atoms:
    atoms = bulk("SiC", "zincblende", a=4.6, cubic=True)
    atoms.rattle(0.2, seed=seed)
    return atoms


def pair_energy(adapter: GaussPairs, atoms: Atoms) -> float:
    """Σ e_i of the network alone (no μ_Z), straight from ``forward_pass``."""
    with torch.no_grad():
        return float(adapter.forward_pass([atoms], stress=False).energies.sum())


def test_energies_include_what_is_added_outside_the_network() -> None:
    """The trap: μ_Z from ``energies_outside`` is in every evaluated energy, as in training."""
    model, atoms = GaussPairs(), sic(0)
    mu = sum(MU[s] for s in atoms.get_chemical_symbols())
    res = model.compute(atoms, ["energy", "forces", "energies"])
    assert res["energy"] == pytest.approx(pair_energy(model, atoms) + mu, abs=1e-10)
    assert res["energies"].sum() == pytest.approx(res["energy"], abs=1e-10)
    with torch.no_grad():
        trained = float(model.energy_pass([atoms], stress=False)[0][0])
    assert res["energy"] == pytest.approx(trained, abs=1e-10)
    weights = np.linspace(0.5, 1.5, len(atoms))
    weighted = model.weighted_energy(atoms, weights)
    assert weighted["energy"] == pytest.approx(float(weights @ res["energies"]), abs=1e-10)
    many = model.compute_many([atoms, sic(1)])
    assert many[0]["energy"] == pytest.approx(res["energy"], abs=1e-10)


def test_forces_and_stress_are_derivatives_of_the_energy() -> None:
    calc, atoms = ModelCalculator(GaussPairs()), sic(2)
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress()
    assert np.abs(forces).max() > 0.05
    np.testing.assert_allclose(forces, fd_forces(atoms, calc, 1e-4), atol=1e-7)
    np.testing.assert_allclose(stress, fd_stress(atoms, calc, 1e-4), atol=1e-8)


def test_per_species_scales_are_anchored_at_mu() -> None:
    atoms = sic(3)
    correction = Correction(species_scales={"Si": 1.4, "C": 1.1})
    corrected = SoftCorrectedCalc(ModelCalculator(GaussPairs()), correction=correction, check_model=False)
    atoms.calc = corrected
    lam = np.where(np.array(atoms.get_chemical_symbols()) == "Si", 1.4, 1.1)
    mu = np.array([MU[s] for s in atoms.get_chemical_symbols()])
    e = GaussPairs().compute(atoms, ["energy", "energies"])["energies"]
    assert atoms.get_potential_energy() == pytest.approx(float(np.sum(mu + lam * (e - mu))), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), fd_forces(atoms, corrected, 1e-4), atol=1e-7)


def test_fine_tunes_end_to_end_with_mu_in_evaluation(tmp_path) -> None:
    """Frames of a stiffer model with μ_Z 0.3 eV lower: the tuned model evaluates with the refitted μ_Z."""
    reference = GaussPairs()
    with torch.no_grad():
        reference.net.epsilon.mul_(1.3)
        reference.net.mu.sub_(0.3)
    frames = []
    for seed in range(5):
        atoms = sic(10 + seed)
        r = reference.compute(atoms, ["energy", "forces", "stress"])
        frames.append(ForceFrame(atoms, r["forces"], r["energy"], r["stress"]))
    base = GaussPairs()
    settings = FineTuneSettings(epochs=15, lr=0.02, lr_final=1e-3, freeze="all-but-readout")
    result = fine_tune(ModelCalculator(base), frames[:4], frames[4:], settings)
    tuned = result.adapter
    assert result.reference_shift["Si"] == pytest.approx(result.reference_shift["C"], abs=0.5)
    assert tuned.reference_energies()["Si"] < MU["Si"] - 0.1
    check = frames[4]
    bare_error = abs(base.compute(check.atoms, ["energy"])["energy"] - check.energy)
    res = tuned.compute(check.atoms, ["energy", "forces"])
    mu = sum(tuned.reference_energies()[s] for s in check.atoms.get_chemical_symbols())
    assert res["energy"] == pytest.approx(pair_energy(tuned, check.atoms) + mu, abs=1e-10)
    assert abs(res["energy"] - check.energy) < 0.2 * bare_error
    assert np.abs(res["forces"] - check.forces).mean() < 0.5 * np.abs(
        base.compute(check.atoms, ["forces"])["forces"] - check.forces
    ).mean()
    sha = save_tuned_weights(tuned, tmp_path / "tuned.pt")
    loaded = GaussPairs()
    load_tuned_weights(loaded, tmp_path / "tuned.pt", sha, "the test")
    assert loaded.compute(check.atoms, ["energy"])["energy"] == pytest.approx(res["energy"], abs=1e-12)


def test_one_check_decides_whether_a_model_can_be_fine_tuned() -> None:
    assert GaussPairs.supports_fine_tuning and not Untunable.supports_fine_tuning
    assert not ModelAdapter.supports_fine_tuning
    model = GaussPairs()
    assert require_fine_tuning(ModelCalculator(model), "x") is model
    frames = [ForceFrame(sic(0), np.zeros((8, 3)))]
    for what in (Untunable(), ModelCalculator(Untunable()), EMT()):
        with pytest.raises(CalculationSetupError, match=r"fine_tune needs a softcalc torch model.*Fix: "):
            fine_tune(what, frames, [], FineTuneSettings(epochs=1))
    with pytest.raises(CalculationSetupError, match=r"gauss-pairs.*TorchAdapter.module.*Fix: pass the model"):
        require_fine_tuning(Untunable(), "method 'finetune'", "pass the model by name")
