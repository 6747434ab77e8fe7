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
    retain_graph: bool | None = None,
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
        retain_graph: keep the graph of ``energy`` for further derivatives (default: ``create_graph``).

    Returns:
        forces ((N, 3), eV/Å) and ∂E/∂ε ((B, 3, 3), eV; None without strains).
    """
    import torch

    grads = torch.autograd.grad(
        energy,
        [*positions, *strains],
        materialize_grads=True,
        create_graph=create_graph,
        retain_graph=retain_graph,
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
    retain_graph: bool = False,
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Forces and per-structure stress of a batch from one backward pass of its scalar ``energy`` (eV).

    Arguments as for :func:`energy_derivatives`, and ``volumes``: the cell volume (Å³) of each
    structure, None where it is not 3D periodic.

    Returns:
        F = -∂E/∂R ((N, 3), eV/Å) and, per structure, σ = (1/V) ∂E/∂ε (Voigt (6,), eV/Å³) or None (no
        strains, or not 3D periodic).
    """
    forces, grad_strain = energy_derivatives(energy, positions, strains, retain_graph=retain_graph)
    forces_np = forces.detach().cpu().double().numpy()
    if grad_strain is None:
        return forces_np, [None] * len(volumes)
    grad_strain = grad_strain.detach().cpu().double()
    stress = voigt_stresses(grad_strain, grad_strain.new_tensor([v or 1.0 for v in volumes])).numpy()
    return forces_np, [None if v is None else s for s, v in zip(stress, volumes)]


def centroid_virials(
    site_energies: torch.Tensor,
    positions: Sequence[torch.Tensor],
    forces: np.ndarray,
    owner: torch.Tensor,
    origin: np.ndarray | None = None,
) -> np.ndarray:
    """Per-atom virials W_i^ab = Σ_j (r_j - r_i)^a ∂U_j/∂r_i^b (eV) of non-periodic structures.

    This is the centroid form: every atom's energy U_j is shared out to the atoms it depends on, so
    many-body models get the per-atom virial that the heat flux of Green-Kubo needs (LAMMPS
    ``centroid/stress/atom``; for a pair potential it is LAMMPS' ½ Σ_j r_ij ⊗ f_ij). Three backward
    passes beyond the forces' give it: with G_a = Σ_j x_j^a U_j (x_j held constant),
    W_i^ab = x_i^a F_i^b + ∂G_a/∂x_i^b. Σ_i W_i = Σ_i r_i ⊗ F_i, the virial of the structure.
    Positions are taken relative to each structure's centroid, or to ``origin``: any origin gives the
    same W_i as long as every U_j that depends on r_i is differentiated in one frame (LAMMPS' per-layer
    exchange differentiates the energies of other ranks' atoms too, so all ranks pass one origin).

    Args:
        site_energies: (N,) U_j in eV, the (weighted) per-atom energies whose sum the forces came from;
            the graph must still be held (``retain_graph``).
        positions: the position tensors (Å) of the batch, as in :func:`energy_derivatives`. Each
            structure must be non-periodic: for a periodic cell ∂U_j/∂r_i sums the images of i.
        forces: (N, 3) F = -∂(Σ U_j)/∂R in eV/Å.
        owner: (N,) index of each atom's structure.
        origin: (3,) Å, the origin of the positions in the tensors' frame; None: each structure's centroid.

    Returns:
        (N, 3, 3) W_i, first index the position component a, second the force component b.
    """
    import torch

    x = torch.cat([p.detach().reshape(-1, 3) for p in positions]).to(site_energies.dtype)
    if origin is not None:
        rel = x - torch.as_tensor(origin, dtype=x.dtype, device=x.device)
    else:
        count = torch.zeros(int(owner.max()) + 1, dtype=x.dtype, device=x.device).index_add(
            0, owner, torch.ones_like(x[:, 0])
        )
        center = torch.zeros(len(count), 3, dtype=x.dtype, device=x.device).index_add(0, owner, x)
        rel = x - (center / count[:, None])[owner]
    rows = []
    for a in range(3):
        grads = torch.autograd.grad(
            (rel[:, a] * site_energies).sum(), list(positions), materialize_grads=True, retain_graph=a < 2
        )
        rows.append(torch.cat([g.reshape(-1, 3) for g in grads]))
    d_g = torch.stack(rows, dim=1).detach().cpu().double().numpy()
    rel_np = rel.detach().cpu().double().numpy()
    return rel_np[:, :, None] * np.asarray(forces)[:, None, :] + d_g
