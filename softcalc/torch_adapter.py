"""TorchAdapter: the shared base of plugin adapters whose model is a torch module with per-atom energies.

What the base provides, once for every such plugin (CHGNet, matgl, MACE):

- the precision table (``"float32"`` / ``"float64"`` -> torch dtype) and the device, and
  :meth:`TorchAdapter._frozen` to move a module there in eval mode without parameter gradients;
- :meth:`~TorchAdapter.compute`, :meth:`~TorchAdapter.compute_many` (chunks of at most
  :attr:`~TorchAdapter.max_atoms_per_batch` atoms from :func:`~softcalc.model.atom_batches`) and
  :meth:`~TorchAdapter.weighted_energy` (with its check of the weights' shape), all through one
  batched evaluation;
- the autograd step: with per-atom energies e_i and weights w_i (1 unless weighted), one backward
  pass of Σ w_i e_i gives F = -∂/∂R in eV/Å and, for 3D-periodic cells, σ = (1/V) ∂/∂ε in eV/Å³
  (Voigt xx yy zz yz xz xy, ASE sign) through :func:`softcalc.autograd.forces_and_stress`.

What a plugin still implements: its constructor (call ``super().__init__``, load the model, set
:attr:`info`) and :meth:`~TorchAdapter._forward`, one forward pass of a batch that returns the
per-atom energies with the position and strain tensors they depend on. A model that builds its own
geometry deforms it with :func:`softcalc.autograd.strained`; one that applies a strain itself
(CHGNet, MACE) returns that strain. :meth:`~TorchAdapter._reported_energies` may be overridden when
part of e_i is added outside the network.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from ase import Atoms

from softcalc.autograd import forces_and_stress
from softcalc.model import ModelAdapter, atom_batches
from softcalc.structure import check_structure

#: precision names accepted by ``dtype`` arguments
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


@dataclass
class ForwardPass:
    """The per-atom energies of one batch and the tensors to differentiate them by.

    Attributes:
        energies: (N,) e_i in eV for all atoms of the batch, structure after structure; differentiable.
        positions: the Cartesian position tensors (Å) the energies depend on: one (N, 3) tensor for the
            batch, or one (n_k, 3) tensor per structure, in order.
        strains: the zero strain tensors the geometry was deformed by: one (B, 3, 3) tensor or one
            (3, 3) tensor per structure, in order; empty when no stress is wanted.
    """

    energies: torch.Tensor
    positions: list[torch.Tensor]
    strains: list[torch.Tensor] = field(default_factory=list)


class TorchAdapter(ModelAdapter):
    """A torch model with differentiable per-atom energies, evaluated in batches.

    Args:
        device: torch device string (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        dtype: ``"float32"`` or ``"float64"``.
        max_atoms_per_batch: at most this many atoms per forward pass in :meth:`compute_many` (a larger
            structure is evaluated alone).
    """

    supports_per_atom_energies = True
    checks_structures = True

    def __init__(self, device: str, dtype: str, max_atoms_per_batch: int) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype]
        self.max_atoms_per_batch = max_atoms_per_batch

    def _frozen(self, module: ModuleT) -> ModuleT:
        """``module`` on :attr:`device` in :attr:`dtype`, in eval mode, its parameters without gradients."""
        module = module.to(device=self.device, dtype=self.dtype).eval()
        module.requires_grad_(False)
        return module

    @abstractmethod
    def _forward(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        """One forward pass of ``structures`` (checked already); strain the geometry when ``stress``."""

    def _reported_energies(
        self, structures: Sequence[Atoms], energies: torch.Tensor, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-atom energies e_i ((N,), eV) and per-structure Σ w_i e_i ((B,), eV) as returned.

        The default returns e_i as the network computed them and sums them in their own precision.
        """
        counts = torch.tensor([len(atoms) for atoms in structures], device=energies.device)
        owner = torch.repeat_interleave(torch.arange(len(structures), device=energies.device), counts)
        w = torch.as_tensor(weights, dtype=energies.dtype, device=energies.device)
        totals = energies.new_zeros(len(structures)).index_add(0, owner, (w * energies).detach())
        return energies.detach().cpu().double().numpy(), totals.cpu().double().numpy()

    def _evaluate(
        self,
        structures: Sequence[Atoms],
        weights: Sequence[np.ndarray] | None,
        properties: Sequence[str],
    ) -> list[dict[str, Any]]:
        """``energy`` Σ w_i e_i, ``forces``, ``stress`` (3D-periodic cells, when requested) and
        ``energies`` e_i (when requested) of ``structures`` in one forward and one backward pass.

        ``weights`` holds one (n_k,) array per structure; None weighs every atom 1.
        """
        for atoms in structures:
            check_structure(atoms, self.info)
        volumes = [atoms.get_volume() if atoms.pbc.all() else None for atoms in structures]
        stress = "stress" in properties and any(v is not None for v in volumes)
        n_atoms = [len(atoms) for atoms in structures]
        w = np.ones(sum(n_atoms)) if weights is None else np.concatenate(weights)
        with torch.enable_grad():
            forward = self._forward(structures, stress)
            e = forward.energies
            objective = (torch.as_tensor(w, dtype=e.dtype, device=e.device) * e).sum()
            forces, stresses = forces_and_stress(objective, forward.positions, forward.strains, volumes)
        energies, totals = self._reported_energies(structures, e, w)
        results = []
        start = 0
        for k, n in enumerate(n_atoms):
            res: dict[str, Any] = {"energy": float(totals[k]), "forces": forces[start : start + n]}
            if "energies" in properties:
                res["energies"] = energies[start : start + n]
            if stresses[k] is not None:
                res["stress"] = stresses[k]
            results.append(res)
            start += n
        return results

    def compute(self, atoms: Atoms, properties: Sequence[str]) -> dict[str, Any]:
        return self._evaluate([atoms], None, properties)[0]

    def compute_many(
        self, structures: Sequence[Atoms], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate ``structures`` in batched passes of at most :attr:`max_atoms_per_batch` atoms.

        Results are in input order, one dict per structure as :meth:`compute` returns it.
        """
        results: list[dict[str, Any]] = []
        for batch in atom_batches(structures, self.max_atoms_per_batch):
            results += self._evaluate(batch, None, properties)
        return results

    def weighted_energy(
        self, atoms: Atoms, atom_weights: np.ndarray, compute_stress: bool = True
    ) -> dict[str, Any]:
        if not self.supports_per_atom_energies:
            return super().weighted_energy(atoms, atom_weights, compute_stress)
        weights = np.asarray(atom_weights, dtype=float)
        if weights.shape != (len(atoms),):
            raise ValueError(f"atom_weights must have shape ({len(atoms)},), got {weights.shape}")
        properties = ["energy", "forces", "energies", *(["stress"] if compute_stress else [])]
        return self._evaluate([atoms], [weights], properties)[0]
