"""Forces and stress by automatic differentiation, for torch-based plugins.

A model that builds its own geometry deforms positions and cells by symmetric strains ε = 0 that
require grad (:func:`strained`); one backward pass of the energy then gives F = -∂E/∂R and
σ = (1/V) ∂E/∂ε of every structure of a batch. :func:`energy_derivatives` returns them as tensors,
differentiable again with ``create_graph=True`` (fine-tuning on forces and stress, see
:mod:`softcalc.finetune`); :func:`forces_and_stress` returns them as arrays (what
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


def energy_derivatives(
    energy: torch.Tensor,
    positions: Sequence[torch.Tensor],
    strains: Sequence[torch.Tensor],
    create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """F = -∂E/∂R and ∂E/∂ε of a batch from one backward pass of its scalar ``energy`` (eV), as tensors.

    Args:
        energy: the scalar to differentiate (eV).
        positions: position tensors (Å) covering all N atoms in order: one (N, 3), or one (n_k, 3) per
            structure.
        strains: the zero strains the geometry was deformed by, in structure order: one (B, 3, 3) or one
            (3, 3) per structure; empty for no stress.
        create_graph: keep the graph of the derivatives, so that a loss on forces or stress can be
            differentiated by the model's parameters.

    Returns:
        forces ((N, 3), eV/Å) and ∂E/∂ε ((B, 3, 3), eV; None without strains).
    """
    import torch

    grads = torch.autograd.grad(
        energy, [*positions, *strains], materialize_grads=True, create_graph=create_graph
    )
    forces = -torch.cat([g.reshape(-1, 3) for g in grads[: len(positions)]])
    if not strains:
        return forces, None
    return forces, torch.cat([g.reshape(-1, 3, 3) for g in grads[len(positions) :]])


def voigt_stresses(grad_strain: torch.Tensor, volumes: torch.Tensor) -> torch.Tensor:
    """σ = (1/V) ∂E/∂ε, symmetrised, as Voigt (B, 6) in eV/Å³ (xx yy zz yz xz xy, ASE sign).

    Args:
        grad_strain: (B, 3, 3) ∂E/∂ε in eV.
        volumes: (B,) cell volumes in Å³.
    """
    s = grad_strain / volumes[:, None, None]
    s = 0.5 * (s + s.transpose(1, 2))
    return s[:, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]


def forces_and_stress(
    energy: torch.Tensor,
    positions: Sequence[torch.Tensor],
    strains: Sequence[torch.Tensor],
    volumes: Sequence[float | None],
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Forces and per-structure stress of a batch from one backward pass of its scalar ``energy`` (eV).

    Arguments as for :func:`energy_derivatives`, and ``volumes``: the cell volume (Å³) of each
    structure, None where it is not 3D periodic.

    Returns:
        F = -∂E/∂R ((N, 3), eV/Å) and, per structure, σ = (1/V) ∂E/∂ε (Voigt (6,), eV/Å³) or None (no
        strains, or not 3D periodic).
    """
    forces, grad_strain = energy_derivatives(energy, positions, strains)
    forces_np = forces.detach().cpu().double().numpy()
    if grad_strain is None:
        return forces_np, [None] * len(volumes)
    grad_strain = grad_strain.detach().cpu().double()
    stress = voigt_stresses(grad_strain, grad_strain.new_tensor([v or 1.0 for v in volumes])).numpy()
    return forces_np, [None if v is None else s for s, v in zip(stress, volumes)]
