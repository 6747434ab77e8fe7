"""Errors of a model against DFT frames, differentiable by its weights: the fine-tuning loss.

:func:`batch_errors` runs one differentiable pass of a batch through the adapter
(:meth:`~softcalc.torch_adapter.TorchAdapter.energy_pass`), takes F = -∂E/∂R and σ = (1/V) ∂E/∂ε
with the graph kept (:func:`softcalc.autograd.energy_derivatives`), and returns the residuals with a
weight per term (:class:`Residuals`: the frame's weight); :meth:`Residuals.loss` weighs them as
:mod:`softcalc.finetune.settings` describes (squared or Huber, :func:`penalty`). Units: energies per atom
in eV/atom, forces in eV/Å, stress in GPa.
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


def penalty(residual: torch.Tensor, delta: float | None) -> torch.Tensor:
    """Elementwise r² (``delta`` None), or the Huber ρ_δ(r): r² for |r| <= δ, 2δ|r| - δ² beyond (twice
    torch's ``huber_loss``, so that it equals r² below δ)."""
    if delta is None:
        return residual**2
    return 2.0 * torch.nn.functional.huber_loss(
        residual, torch.zeros_like(residual), reduction="none", delta=delta
    )


@dataclass
class Residuals:
    """Residuals (model - DFT) over a set of frames, each term with its frame's weight.

    Attributes:
        energy, energy_weight: per-atom energy errors (eV/atom) of the frames with a DFT energy.
        force, force_weight: force-component errors (eV/Å), flattened.
        stress, stress_weight: Voigt stress-component errors (GPa) of 3D-periodic frames with a DFT stress.
    """

    energy: torch.Tensor
    energy_weight: torch.Tensor
    force: torch.Tensor
    force_weight: torch.Tensor
    stress: torch.Tensor
    stress_weight: torch.Tensor

    def detach(self) -> Residuals:
        """The same residuals, without their graph (for accumulating evaluations)."""
        return Residuals(*(t.detach() for t in self._tensors()))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (
            self.energy,
            self.energy_weight,
            self.force,
            self.force_weight,
            self.stress,
            self.stress_weight,
        )

    def __add__(self, other: Residuals) -> Residuals:
        return Residuals(*(torch.cat([a, b]) for a, b in zip(self._tensors(), other._tensors())))

    @property
    def n_energy(self) -> int:
        return self.energy.numel()

    @property
    def n_force(self) -> int:
        return self.force.numel()

    @property
    def n_stress(self) -> int:
        return self.stress.numel()

    def loss(self, settings: FineTuneSettings) -> torch.Tensor:
        """Σ_q w_q Σ_i ω_i ρ(r_i) / n_q over energy, force and stress (each only where it has data): the
        weighted mean of squared (or Huber) errors, divided by the number of terms, not by the weights."""
        deltas = settings.huber_deltas or (None, None, None)
        terms = [
            (settings.energy_weight, self.energy, self.energy_weight, deltas[0]),
            (settings.force_weight, self.force, self.force_weight, deltas[1]),
            (settings.stress_weight, self.stress, self.stress_weight, deltas[2]),
        ]
        return sum(
            (w * (omega * penalty(r, d)).sum() / r.numel() for w, r, omega, d in terms if r.numel() and w),
            self.force.new_zeros(()),
        )

    @property
    def force_mae(self) -> float | None:
        """Mean absolute force-component error (eV/Å, unweighted), None without forces."""
        return float(self.force.abs().mean()) if self.n_force else None

    @property
    def energy_mae(self) -> float | None:
        """Mean absolute per-atom energy error (eV/atom, unweighted), None without DFT energies."""
        return float(self.energy.abs().mean()) if self.n_energy else None


def batch_errors(
    adapter: TorchAdapter,
    frames: Sequence[ForceFrame],
    create_graph: bool,
    weights: Sequence[float] | None = None,
    use_forces: Sequence[bool] | None = None,
) -> Residuals:
    """Residuals of ``adapter`` on ``frames`` (checked already) from one forward and one backward pass.

    With ``create_graph`` they stay differentiable by the model's weights (a training step); without it
    they can only be read (an evaluation). ``weights``: one per frame (default 1); ``use_forces``: per
    frame, False leaves its forces out (default: all in).
    """
    structures = [frame.atoms for frame in frames]
    stressed = [k for k, f in enumerate(frames) if f.stress is not None and f.atoms.pbc.all()]
    energies, forward = adapter.energy_pass(structures, stress=bool(stressed))
    forces, grad_strain = energy_derivatives(energies.sum(), forward.positions, forward.strains, create_graph)
    omega = np.ones(len(frames)) if weights is None else np.asarray(weights, dtype=float)
    keep = np.ones(len(frames), bool) if use_forces is None else np.asarray(use_forces, dtype=bool)

    def target(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=float), dtype=like.dtype, device=like.device)

    n_atoms = np.array([len(f.atoms) for f in frames])
    per_atom = np.repeat(keep, n_atoms)
    df = (forces - target(np.concatenate([f.forces for f in frames]), forces))[
        torch.as_tensor(per_atom, device=forces.device)
    ].reshape(-1)
    force_weight = target(np.repeat(np.repeat(omega, n_atoms)[per_atom], 3), df)
    with_energy = [k for k, f in enumerate(frames) if f.energy is not None]
    de = empty = df.new_zeros(0)
    if with_energy:
        counts = target(n_atoms[with_energy], energies)
        de = (energies[with_energy] - target([frames[k].energy for k in with_energy], energies)) / counts
    ds = empty
    if stressed:
        volumes = target([frames[k].atoms.get_volume() for k in stressed], grad_strain)
        model = voigt_stresses(grad_strain[stressed], volumes)
        ds = ((model - target(np.stack([frames[k].stress for k in stressed]), model)) / GPa).reshape(-1)
    return Residuals(
        energy=de.to(df.dtype),
        energy_weight=target(omega[with_energy], df),
        force=df,
        force_weight=force_weight,
        stress=ds.to(df.dtype),
        stress_weight=target(np.repeat(omega[stressed], 6), df),
    )


def evaluate_errors(
    adapter: TorchAdapter,
    frames: Sequence[ForceFrame],
    batch_size: int,
    weights: Sequence[float] | None = None,
    use_forces: Sequence[bool] | None = None,
) -> Residuals | None:
    """Residuals of ``adapter`` over all ``frames`` (checked already), in batches of ``batch_size``
    structures; None for no frames. ``weights`` and ``use_forces`` as in :func:`batch_errors`."""
    total: Residuals | None = None
    with torch.enable_grad():
        for start in range(0, len(frames), batch_size):
            part = slice(start, start + batch_size)
            sums = batch_errors(
                adapter,
                frames[part],
                create_graph=False,
                weights=None if weights is None else weights[part],
                use_forces=None if use_forces is None else use_forces[part],
            ).detach()
            total = sums if total is None else total + sums
    return total
