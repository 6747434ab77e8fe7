"""Forces and stress by automatic differentiation, for torch-based plugins.

A model that builds its own geometry deforms positions and cells by symmetric strains ε = 0 that
require grad (:func:`strained`); one backward pass of the energy then gives F = -∂E/∂R and
σ = (1/V) ∂E/∂ε of every structure of a batch (:func:`forces_and_stress`, which
:class:`softcalc.torch_adapter.TorchAdapter` runs for every plugin). torch is imported lazily: core
modules that do not differentiate never need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def strained(
    positions: torch.Tensor, cells: torch.Tensor, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deform a batch of structures by zero strains that require grad.

    Args:
        positions: (N, 3) Cartesian positions in Å (they must require grad already if forces are wanted).
        cells: (B, 3, 3) cells in Å (rows are lattice vectors).
        batch: (N,) index of each atom's structure.

    Returns:
        ``(strain, positions', cells')``: the (B, 3, 3) zero strain ε, and positions and cells multiplied
        by I + (ε + εᵀ)/2 of their structure.
    """
    import torch

    strain = torch.zeros_like(cells, requires_grad=True)
    deform = torch.eye(3, dtype=cells.dtype, device=cells.device) + 0.5 * (strain + strain.transpose(1, 2))
    return strain, torch.einsum("ni,nij->nj", positions, deform[batch]), cells @ deform


def forces_and_stress(
    energy: torch.Tensor,
    positions: Sequence[torch.Tensor],
    strains: Sequence[torch.Tensor],
    volumes: Sequence[float | None],
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Forces and per-structure stress of a batch from one backward pass of its scalar ``energy`` (eV).

    Args:
        energy: the scalar to differentiate (eV).
        positions: position tensors (Å) covering all N atoms in order: one (N, 3), or one (n_k, 3) per
            structure.
        strains: the zero strains the geometry was deformed by, in structure order: one (B, 3, 3) or one
            (3, 3) per structure; empty for no stress.
        volumes: cell volume (Å³) of each structure, None where it is not 3D periodic.

    Returns:
        F = -∂E/∂R ((N, 3), eV/Å) and, per structure, σ = (1/V) ∂E/∂ε (Voigt (6,), eV/Å³) or None (no
        strains, or not 3D periodic).
    """
    import torch

    grads = torch.autograd.grad(energy, [*positions, *strains], materialize_grads=True)
    forces = -torch.cat([g.reshape(-1, 3) for g in grads[: len(positions)]]).detach().cpu().double().numpy()
    if not strains:
        return forces, [None] * len(volumes)
    grad_strain = torch.cat([g.reshape(-1, 3, 3) for g in grads[len(positions) :]])
    grad_strain = grad_strain.detach().cpu().double().numpy()
    return forces, [None if v is None else voigt_stress(g, v) for g, v in zip(grad_strain, volumes)]


def voigt_stress(grad_strain: np.ndarray, volume: float) -> np.ndarray:
    """σ = (1/V) ∂E/∂ε in eV/Å³ as Voigt (6,) (xx yy zz yz xz xy), from ∂E/∂ε ((3, 3), eV), symmetrised."""
    s = np.asarray(grad_strain, dtype=float) / volume
    s = 0.5 * (s + s.T)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
