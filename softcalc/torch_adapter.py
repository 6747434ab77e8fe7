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

Fine-tuning (:mod:`softcalc.finetune`) trains every family with one loop through the same
:meth:`~TorchAdapter._forward`, and needs from a plugin only what differs by family:

- :attr:`~TorchAdapter.module`: the torch module whose ``state_dict`` holds every weight (saved and
  loaded as tuned weights);
- :meth:`~TorchAdapter._tunable_groups`: the parameters of the readout and of each interaction block,
  which the freeze options select by (the base puts everything else in ``other``);
- :meth:`~TorchAdapter._reference_table`: the tensor that holds the atom reference energies μ_Z (a
  parameter or a buffer), which fine-tuning refits in place and then trains as a per-element energy
  offset, so that they are saved with the weights; and
  :meth:`~TorchAdapter._energies_outside` where a plugin adds part of e_i outside ``_forward``
  (CHGNet's AtomRef).

After weights change in place, :meth:`~TorchAdapter.weights_changed` refreshes what is derived from
them (``info.reference_energies``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import torch
from ase import Atoms

from softcalc.autograd import forces_and_stress
from softcalc.errors import SoftcalcError
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


@dataclass
class TunableParts:
    """A model's trainable tensors in the groups that fine-tuning freezes by.

    Attributes:
        readout: the head that turns the last features into per-atom energies.
        blocks: one list per interaction (message-passing) block, in the order the forward pass runs them.
        other: every other parameter (embeddings, radial bases, ...).
        references: the tensor holding μ_Z (a parameter or a buffer), or None: a per-element energy offset
            that fine-tuning refits by least squares and then trains with the readout.
    """

    readout: list[torch.nn.Parameter]
    blocks: list[list[torch.nn.Parameter]]
    other: list[torch.nn.Parameter]
    references: torch.Tensor | None = None


def _owners(structures: Sequence[Atoms], device: torch.device) -> torch.Tensor:
    """(N,) index of each atom's structure in a batch of ``structures``."""
    counts = torch.tensor([len(atoms) for atoms in structures], device=device)
    return torch.repeat_interleave(torch.arange(len(structures), device=device), counts)


def parameters_of(*modules: torch.nn.Module | None) -> list[torch.nn.Parameter]:
    """The parameters of ``modules`` in order (None entries skipped: layers a model does not have)."""
    return [p for module in modules if module is not None for p in module.parameters()]


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

    #: fingerprint (:attr:`ModelInfo.fingerprint`) of the model these weights were fine-tuned from, or None
    tuned_from: Mapping[str, str | None] | None = None

    def _frozen(self, module: ModuleT) -> ModuleT:
        """``module`` on :attr:`device` in :attr:`dtype`, in eval mode, its parameters without gradients."""
        module = module.to(device=self.device, dtype=self.dtype).eval()
        module.requires_grad_(False)
        return module

    @abstractmethod
    def _forward(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        """One forward pass of ``structures`` (checked already); strain the geometry when ``stress``."""

    # ------------------------------------------------------------------ fine-tuning interface
    @property
    def module(self) -> torch.nn.Module:
        """The torch module whose ``state_dict`` holds all of the model's weights."""
        raise SoftcalcError(
            f"model {self.info.name} ({self.info.family}) cannot be fine-tuned: its plugin does not name the "
            "torch module that holds its weights. Fix: implement TorchAdapter.module in the plugin."
        )

    def _tunable_groups(self) -> tuple[list[torch.nn.Parameter], list[list[torch.nn.Parameter]]]:
        """The readout's parameters and each interaction block's, in forward order.

        The default declares neither, so only ``freeze="none"`` is available.
        """
        return [], []

    def tunable_parts(self) -> TunableParts:
        """:meth:`_tunable_groups`, the μ_Z table (:meth:`_reference_table`) apart, and in ``other`` every
        further parameter of :attr:`module`."""
        readout, blocks = self._tunable_groups()
        table = self._reference_table()
        references = None if table is None else table[0]
        taken = {id(p) for p in [*readout, *(p for block in blocks for p in block), references]}
        other = [p for p in self.module.parameters() if id(p) not in taken]
        return TunableParts(list(readout), [list(b) for b in blocks], other, references)

    def _reference_table(self) -> tuple[torch.Tensor, Mapping[str, int]] | None:
        """The parameter or buffer of :attr:`module` holding μ_Z (eV/atom), and each element's flat
        index into it; None when the model has no atom reference energies."""
        return None

    def _energies_outside(self, structures: Sequence[Atoms]) -> torch.Tensor | None:
        """Per-atom energies (N,) in eV that the plugin adds to :meth:`_forward`'s e_i outside the network,
        differentiable by the model's weights; None (the default) when ``_forward`` gives all of e_i."""
        return None

    def energy_pass(self, structures: Sequence[Atoms], stress: bool) -> tuple[torch.Tensor, ForwardPass]:
        """One differentiable pass of ``structures`` (checked already): total energies and the forward pass.

        Returns the energies Σ_i e_i ((B,), eV) as the adapter reports them (with what
        :meth:`_energies_outside` adds), differentiable by the model's weights and by the position and
        strain tensors of the returned :class:`ForwardPass` (strained when ``stress``).
        """
        forward = self._forward(structures, stress)
        e = forward.energies
        outside = self._energies_outside(structures)
        if outside is not None:
            e = e + outside.to(e.dtype)
        return e.new_zeros(len(structures)).index_add(0, _owners(structures, e.device), e), forward

    def reference_energies(self) -> dict[str, float]:
        """μ_Z (eV/atom) as the weights hold them now, by element (empty without a μ_Z table)."""
        table = self._reference_table()
        if table is None:
            return {}
        values = table[0].detach().reshape(-1).cpu().double()
        return {element: float(values[k]) for element, k in table[1].items()}

    def shift_reference_energies(self, shifts: Mapping[str, float]) -> None:
        """Add ``shifts`` (eV/atom, by element) to μ_Z in the model's weights, in place.

        Raises:
            SoftcalcError: the model has no μ_Z table, or no entry for an element of ``shifts``.
        """
        table = self._reference_table()
        if table is None:
            raise SoftcalcError(
                f"model {self.info.name} ({self.info.family}) has no atom reference energies to shift. "
                "Fix: fine-tune with refit_references=False."
            )
        tensor, index = table
        missing = sorted(set(shifts) - set(index))
        if missing:
            raise SoftcalcError(
                f"model {self.info.name} has no reference energy for {', '.join(missing)}. "
                "Fix: use frames of elements the model covers."
            )
        with torch.no_grad():
            flat = tensor.view(-1)
            for element, shift in shifts.items():
                flat[index[element]] += shift
        self.weights_changed()

    def weights_changed(self) -> None:
        """Refresh what is derived from the weights after they changed in place (``info.reference_energies``).

        Plugins that cache more values derived from their weights extend this.
        """
        if self._reference_table() is not None:
            self.info = replace(self.info, reference_energies=self.reference_energies())

    def _reported_energies(
        self, structures: Sequence[Atoms], energies: torch.Tensor, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-atom energies e_i ((N,), eV) and per-structure Σ w_i e_i ((B,), eV) as returned.

        The default returns e_i as the network computed them and sums them in their own precision.
        """
        owner = _owners(structures, energies.device)
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
