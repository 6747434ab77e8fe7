"""Errors of a model against DFT frames, differentiable by its weights: the fine-tuning loss.

:func:`batch_errors` runs one differentiable pass of a batch through the adapter
(:meth:`~softcalc.torch_adapter.TorchAdapter.energy_pass`), takes F = -∂E/∂R and σ = (1/V) ∂E/∂ε
with the graph kept (:func:`softcalc.autograd.energy_derivatives`), and returns the sums of squared
and absolute errors (:class:`ErrorSums`); :meth:`ErrorSums.loss` weighs them as
:mod:`softcalc.finetune.settings` describes. Units: energies per atom in eV/atom, forces in eV/Å,
stress in GPa.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase.units import GPa

from softcalc.autograd import energy_derivatives, voigt_stresses
from softcalc.data.dataset import ForceFrame
from softcalc.finetune.settings import FineTuneSettings
from softcalc.torch_adapter import TorchAdapter


@dataclass
class ErrorSums:
    """Sums of errors over a set of frames, with the number of terms in each sum.

    Attributes:
        energy_sq, energy_abs: Σ of squared ((eV/atom)²) and absolute (eV/atom) per-atom energy errors,
            over the ``n_energy`` frames with a DFT energy.
        force_sq, force_abs: Σ of squared ((eV/Å)²) and absolute (eV/Å) errors of the ``n_force`` force
            components.
        stress_sq: Σ of squared errors (GPa²) of the ``n_stress`` Voigt stress components (3D-periodic
            frames with a DFT stress).
    """

    energy_sq: torch.Tensor
    energy_abs: torch.Tensor
    n_energy: int
    force_sq: torch.Tensor
    force_abs: torch.Tensor
    n_force: int
    stress_sq: torch.Tensor
    n_stress: int

    def detach(self) -> ErrorSums:
        """The same sums, without their graph (for accumulating evaluations)."""
        return ErrorSums(
            self.energy_sq.detach(),
            self.energy_abs.detach(),
            self.n_energy,
            self.force_sq.detach(),
            self.force_abs.detach(),
            self.n_force,
            self.stress_sq.detach(),
            self.n_stress,
        )

    def __add__(self, other: ErrorSums) -> ErrorSums:
        return ErrorSums(
            self.energy_sq + other.energy_sq,
            self.energy_abs + other.energy_abs,
            self.n_energy + other.n_energy,
            self.force_sq + other.force_sq,
            self.force_abs + other.force_abs,
            self.n_force + other.n_force,
            self.stress_sq + other.stress_sq,
            self.n_stress + other.n_stress,
        )

    def loss(self, settings: FineTuneSettings) -> torch.Tensor:
        """w_E·MSE(E/n) + w_F·MSE(F) + w_σ·MSE(σ), each term only where it has data (a scalar tensor)."""
        terms = [
            (settings.energy_weight, self.energy_sq, self.n_energy),
            (settings.force_weight, self.force_sq, self.n_force),
            (settings.stress_weight, self.stress_sq, self.n_stress),
        ]
        return sum((w * sq / n for w, sq, n in terms if n and w), self.force_sq.new_zeros(()))

    @property
    def force_mae(self) -> float | None:
        """Mean absolute force-component error (eV/Å), None without forces."""
        return float(self.force_abs) / self.n_force if self.n_force else None

    @property
    def energy_mae(self) -> float | None:
        """Mean absolute per-atom energy error (eV/atom), None without DFT energies."""
        return float(self.energy_abs) / self.n_energy if self.n_energy else None


def batch_errors(adapter: TorchAdapter, frames: Sequence[ForceFrame], create_graph: bool) -> ErrorSums:
    """Error sums of ``adapter`` on ``frames`` (checked already) from one forward and one backward pass.

    With ``create_graph`` the sums stay differentiable by the model's weights (a training step);
    without it they can only be read (an evaluation).
    """
    structures = [frame.atoms for frame in frames]
    stressed = [k for k, f in enumerate(frames) if f.stress is not None and f.atoms.pbc.all()]
    energies, forward = adapter.energy_pass(structures, stress=bool(stressed))
    forces, grad_strain = energy_derivatives(energies.sum(), forward.positions, forward.strains, create_graph)

    def target(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=float), dtype=like.dtype, device=like.device)

    df = forces - target(np.concatenate([f.forces for f in frames]), forces)
    zero = df.new_zeros(())
    with_energy = [k for k, f in enumerate(frames) if f.energy is not None]
    e_sq = e_abs = zero
    if with_energy:
        n_atoms = target([len(frames[k].atoms) for k in with_energy], energies)
        de = (energies[with_energy] - target([frames[k].energy for k in with_energy], energies)) / n_atoms
        e_sq, e_abs = (de**2).sum(), de.abs().sum()
    s_sq = zero
    if stressed:
        volumes = target([frames[k].atoms.get_volume() for k in stressed], grad_strain)
        model = voigt_stresses(grad_strain[stressed], volumes)
        ds = (model - target(np.stack([frames[k].stress for k in stressed]), model)) / GPa
        s_sq = (ds**2).sum()
    return ErrorSums(
        energy_sq=e_sq,
        energy_abs=e_abs,
        n_energy=len(with_energy),
        force_sq=(df**2).sum(),
        force_abs=df.abs().sum(),
        n_force=df.numel(),
        stress_sq=s_sq,
        n_stress=6 * len(stressed),
    )


def evaluate_errors(adapter: TorchAdapter, frames: Sequence[ForceFrame], batch_size: int) -> ErrorSums | None:
    """Error sums of ``adapter`` over all ``frames`` (checked already), in batches of ``batch_size``
    structures; None for no frames."""
    total: ErrorSums | None = None
    with torch.enable_grad():
        for start in range(0, len(frames), batch_size):
            sums = batch_errors(adapter, frames[start : start + batch_size], create_graph=False).detach()
            total = sums if total is None else total + sums
    return total
