"""MaceAdapter: one loaded MACE model (mace-torch), evaluated through mace's own graph utilities.

Every result comes from the model's node energies e_i (which include the E0s, so Σ e_i = E) by
autograd: F = -∂E/∂R and σ = (1/V) ∂E/∂ε with a symmetric strain ε applied through mace's
``displacement`` input. The same path gives weighted sums Σ w_i e_i (per-species corrections),
batched evaluation of many structures, and the Hessian ∂²E/∂R².

Units: energies eV, forces eV/Å, stress eV/Å³ (ASE sign, Voigt xx yy zz yz xz xy), Hessian eV/Å².
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from softcalc.autograd import voigt_stress
from softcalc.errors import UnknownModelError
from softcalc.model import ModelAdapter, ModelInfo, atom_batches
from softcalc.structure import check_structure
from softcalc.weights import weights_sha256

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _select_head(heads: Sequence[str]) -> str:
    """The head to evaluate: the only one, else the one named 'default', else the first (with a warning)."""
    if len(heads) == 1:
        return heads[0]
    for head in heads:
        if head.lower() == "default":
            return head
    warnings.warn(f"multi-head MACE model without a 'default' head; using {heads[0]!r} of {list(heads)}",
                  stacklevel=3)
    return heads[0]


class MaceAdapter(ModelAdapter):
    """A MACE model (``MACE`` / ``ScaleShiftMACE`` from mace-torch) behind softcalc's adapter contract.

    Args:
        model: the torch module (moved to ``device`` and ``dtype``; its parameters are frozen).
        name: model name for :class:`ModelInfo`.
        weights: path of the file it was loaded from (None for an in-memory model).
        device: torch device string.
        dtype: ``"float32"`` or ``"float64"``; the model is converted; None keeps its own.
        batch_atoms: at most this many atoms per batch in :meth:`compute_many`; None: 256 on CPU
            (larger batches were slower there: 10 frames of 81 atoms took 14 s in one batch, 6.7 s in
            batches of 250, 7.8 s one by one), 4096 on accelerators.
    """

    supports_per_atom_energies = True

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        weights: str | Path | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        batch_atoms: int | None = None,
    ) -> None:
        from mace.tools.utils import AtomicNumberTable

        if not hasattr(model, "atomic_energies_fn") or not hasattr(model, "atomic_numbers"):
            raise UnknownModelError(
                f"{weights or name} is not a MACE energy model ({type(model).__name__}). "
                "Fix: pass a MACE/ScaleShiftMACE .model file."
            )
        if dtype is None:
            dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
        self.dtype = DTYPES[dtype]
        self.device = torch.device(device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.batch_atoms = batch_atoms or (256 if self.device.type == "cpu" else 4096)
        zs = [int(z) for z in self.model.atomic_numbers]
        self.z_table = AtomicNumberTable(zs)
        self.heads = list(getattr(self.model, "heads", None) or ["Default"])
        self.head = _select_head(self.heads)
        self.cutoff = float(self.model.r_max)
        e0 = self.model.atomic_energies_fn.atomic_energies.detach().cpu().double().numpy()
        e0 = e0.reshape(-1, len(zs))[self.heads.index(self.head) if e0.size > len(zs) else 0]
        self.info = ModelInfo(
            name=name,
            family="mace",
            weights=None if weights is None else str(weights),
            weights_sha256=None if weights is None else weights_sha256(weights),
            elements=frozenset(chemical_symbols[z] for z in zs),
            cutoff=self.cutoff,
            n_message_passing=int(self.model.num_interactions),
            reference_energies={chemical_symbols[z]: float(e) for z, e in zip(zs, e0)},
            device=str(self.device),
            dtype=dtype,
        )

    @classmethod
    def from_file(
        cls, path: str | Path, name: str, device: str = "cpu", dtype: str | None = None
    ) -> MaceAdapter:
        """Load a pickled MACE model (``torch.save(model)``, the ``.model`` files mace-torch writes)."""
        import mace  # noqa: F401 - registers mace's classes (and e3nn's) before unpickling

        model = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(model, torch.nn.Module):
            raise UnknownModelError(
                f"{path} holds a {type(model).__name__}, not a MACE model. "
                "Fix: pass a .model file saved with torch.save(model) (not a checkpoint or state dict)."
            )
        return cls(model, name=name, weights=path, device=device, dtype=dtype)

    # -- graph construction and forward pass -------------------------------------------------

    def _batch(self, structures: Sequence[Atoms]) -> dict[str, torch.Tensor]:
        """mace's batched graph for ``structures`` (neighbour lists within the model's r_max)."""
        from mace import data as mace_data
        from mace.tools import torch_geometric, torch_tools

        keyspec = mace_data.KeySpecification(info_keys={}, arrays_keys={})
        graphs = []
        with torch_tools.default_dtype(self.dtype):
            for atoms in structures:
                check_structure(atoms, self.info)
                config = mace_data.config_from_atoms(atoms, key_specification=keyspec, head_name=self.head)
                graphs.append(
                    mace_data.AtomicData.from_config(
                        config, z_table=self.z_table, cutoff=self.cutoff, heads=self.heads
                    )
                )
        batch = torch_geometric.Batch.from_data_list(graphs).to_dict()
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _forward(
        self, structures: Sequence[Atoms], atom_weights: np.ndarray, strain: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Run the model. Returns (Σ_i w_i e_i per structure, e_i, positions, strain or None, ptr).

        ``atom_weights`` has one entry per atom of all structures, concatenated. The strain
        (one symmetric 3x3 per structure, zero) and the positions are the leaves to differentiate.
        """
        data = self._batch(structures)
        positions = data["positions"].requires_grad_(True)
        displacement = None
        if strain:
            displacement = torch.zeros(
                (len(structures), 3, 3), dtype=self.dtype, device=self.device, requires_grad=True
            )
            data["displacement"] = displacement
        out = self.model(data, training=False, compute_force=False, compute_displacement=strain)
        node_energy = out["node_energy"]
        weights = torch.as_tensor(atom_weights, dtype=node_energy.dtype, device=self.device)
        energy = torch.zeros(len(structures), dtype=node_energy.dtype, device=self.device)
        energy = energy.index_add(0, data["batch"], weights * node_energy)
        return energy, node_energy, positions, displacement, data["ptr"]

    def _evaluate(
        self,
        structures: Sequence[Atoms],
        atom_weights: Sequence[np.ndarray],
        properties: Sequence[str],
    ) -> list[dict[str, Any]]:
        """Energy Σ w_i e_i, forces, stress (3D-periodic cells) and e_i for one batch."""
        want_stress = "stress" in properties and any(a.pbc.all() for a in structures)
        energy, node_energy, positions, displacement, ptr = self._forward(
            structures, np.concatenate(atom_weights), want_stress
        )
        leaves = [positions] if displacement is None else [positions, displacement]
        grads = torch.autograd.grad(energy.sum(), leaves, materialize_grads=True)
        forces = -grads[0].detach().cpu().double().numpy()
        node_e = node_energy.detach().cpu().double().numpy()
        energies = energy.detach().cpu().double().numpy()
        grad_strain = None if displacement is None else grads[1].detach().cpu().double().numpy()
        results = []
        for k, atoms in enumerate(structures):
            lo, hi = int(ptr[k]), int(ptr[k + 1])
            res: dict[str, Any] = {"energy": float(energies[k]), "forces": forces[lo:hi]}
            if "energies" in properties:
                res["energies"] = node_e[lo:hi]
            if grad_strain is not None and atoms.pbc.all():
                res["stress"] = voigt_stress(grad_strain[k], atoms.get_volume())
            results.append(res)
        return results

    # -- the adapter contract ----------------------------------------------------------------

    def compute(self, atoms: Atoms, properties: Sequence[str]) -> dict[str, Any]:
        return self._evaluate([atoms], [np.ones(len(atoms))], properties)[0]

    def compute_many(
        self, structures: Sequence[Atoms], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate structures in batches of at most :attr:`batch_atoms` atoms (one structure minimum)."""
        results: list[dict[str, Any]] = []
        for batch in atom_batches(structures, self.batch_atoms):
            results += self._evaluate(batch, [np.ones(len(a)) for a in batch], properties)
        return results

    def weighted_energy(
        self, atoms: Atoms, atom_weights: np.ndarray, compute_stress: bool = True
    ) -> dict[str, Any]:
        props = ("energy", "forces", "energies", *(("stress",) if compute_stress else ()))
        weights = np.asarray(atom_weights, dtype=float)
        if weights.shape != (len(atoms),):
            raise ValueError(f"atom_weights must have shape ({len(atoms)},), not {weights.shape}")
        return self._evaluate([atoms], [weights], props)[0]

    def hessian(self, atoms: Atoms) -> np.ndarray:
        """Second derivatives ∂²E/∂R_a∂R_b of the energy, (3N, 3N) in eV/Å², by double autograd.

        Row a is the gradient of ∂E/∂R_a; in a periodic cell every image moves with its atom, as in
        finite differences of the forces. Not symmetrised (it is symmetric to round-off).
        """
        energy, _, positions, _, _ = self._forward([atoms], np.ones(len(atoms)), strain=False)
        (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=True, materialize_grads=True)
        grad = grad.reshape(-1)
        rows = []
        for a in range(grad.numel()):
            (row,) = torch.autograd.grad(grad[a], positions, retain_graph=True, materialize_grads=True)
            rows.append(row.reshape(-1).detach())
        return torch.stack(rows).cpu().double().numpy()
