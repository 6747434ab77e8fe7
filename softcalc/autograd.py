"""Forces and stress by automatic differentiation, shared by torch-based plugins.

A plugin builds its energy from ``positions @ (I + ε)`` and ``cell @ (I + ε)`` with a symmetric
strain ε = 0 that requires grad (see :func:`strained`); :func:`forces_and_stress` then returns
F = -∂E/∂R and σ = (1/V) ∂E/∂ε in ASE conventions. torch is imported lazily: core modules that do
not differentiate never need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def strained(positions: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(strain, positions', cell')`` with a zero strain that requires grad.

    ``positions`` must require grad already if forces are wanted.
    """
    import torch

    strain = torch.zeros((3, 3), dtype=positions.dtype, device=positions.device, requires_grad=True)
    sym = 0.5 * (strain + strain.T)
    eye = torch.eye(3, dtype=positions.dtype, device=positions.device)
    return strain, positions @ (eye + sym), cell @ (eye + sym)


def forces_and_stress(
    energy: torch.Tensor,
    positions: torch.Tensor,
    strain: torch.Tensor | None,
    volume: float,
) -> tuple[np.ndarray, np.ndarray | None]:
    """F = -∂E/∂R in eV/Å ((N, 3)) and σ = (1/V) ∂E/∂ε in eV/Å³ (Voigt (6,), or None)."""
    import torch

    inputs = [positions] if strain is None else [positions, strain]
    grads = torch.autograd.grad(energy, inputs, allow_unused=True)
    grad_pos = grads[0] if grads[0] is not None else torch.zeros_like(positions)
    forces = -grad_pos.detach().cpu().double().numpy()
    if strain is None:
        return forces, None
    grad_eps = grads[1] if grads[1] is not None else torch.zeros_like(strain)
    return forces, voigt_stress(grad_eps.detach().cpu().double().numpy(), volume)


def voigt_stress(grad_strain: np.ndarray, volume: float) -> np.ndarray:
    """σ = (1/V) ∂E/∂ε in eV/Å³ as Voigt (6,) (xx yy zz yz xz xy), from ∂E/∂ε ((3, 3), eV), symmetrised."""
    s = np.asarray(grad_strain, dtype=float) / volume
    s = 0.5 * (s + s.T)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
