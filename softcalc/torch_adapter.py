"""TorchAdapter: the shared base of plugin adapters whose model is a torch module with per-atom energies.

What the base provides, once for every such plugin (CHGNet, matgl, MACE):

- the precision table (``"float32"`` / ``"float64"`` -> torch dtype) and the device, and
  :meth:`TorchAdapter.frozen` to move a module there in eval mode without parameter gradients;
- :meth:`~TorchAdapter.compute`, :meth:`~TorchAdapter.compute_many` (chunks of at most
  :attr:`~TorchAdapter.max_atoms_per_batch` atoms from :func:`~softcalc.model.atom_batches`) and
  :meth:`~TorchAdapter.weighted_energy` (with its check of the weights' shape), all through one
  batched evaluation;
- the autograd step: with per-atom energies e_i and weights w_i (1 unless weighted), one backward
  pass of Σ w_i e_i gives F = -∂/∂R in eV/Å and, for 3D-periodic cells, σ = (1/V) ∂/∂ε in eV/Å³
  (Voigt xx yy zz yz xz xy, ASE sign) through :func:`softcalc.autograd.forces_and_stress`;
- fine-tuning support (:mod:`softcalc.finetune`): one training loop for every family, through the same
  :meth:`~TorchAdapter.forward_pass` and :meth:`~TorchAdapter.energies_outside` as evaluation, so a
  model trains exactly the energy it reports.

The hooks a plugin implements (README, "Adding a model family"):

- its constructor: call ``super().__init__``, load the model, set :attr:`info`;
- :meth:`~TorchAdapter.forward_pass` (required): one forward pass of a batch that returns the
  per-atom energies with the position and strain tensors they depend on. A model that builds its own
  geometry deforms it with :func:`softcalc.autograd.strained`; one that applies a strain itself
  (CHGNet, MACE) returns that strain;
- :meth:`~TorchAdapter.energies_outside` (optional): per-atom energy terms the plugin adds outside the
  network (CHGNet's AtomRef μ_Z); evaluation and training both add them to e_i;
- :attr:`~TorchAdapter.module` (required for fine-tuning; it sets :attr:`supports_fine_tuning`): the
  torch module whose ``state_dict`` holds every weight (saved and loaded as tuned weights);
- :meth:`~TorchAdapter.tunable_groups` (optional): the parameters of the readout and of each
  interaction block, which the ``freeze`` options select by (the base puts everything else in
  ``other``); without them only ``freeze="none"`` is available;
- :meth:`~TorchAdapter.reference_energy_table` (optional): the tensor that holds the atom reference
  energies μ_Z (a parameter or a buffer of :attr:`module`), which fine-tuning refits in place and then
  trains as a per-element energy offset, so that they are saved with the weights.

After weights change in place, :meth:`~TorchAdapter.weights_changed` refreshes what is derived from
them (``info.reference_energies``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError

from softcalc.autograd import centroid_virials, forces_and_stress
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


@dataclass(frozen=True)
class ExchangePoint:
    """Where a model's message passing reads node features that ghost atoms must take from their owners.

    Before ``module`` runs, its input ``argument`` (a position in its call, or a keyword) is a tensor
    whose first dimension runs over the atoms of the structure: LAMMPS' per-layer exchange
    (:mod:`softcalc.exchange`) replaces the ghost atoms' rows there by their owners'.
    """

    module: torch.nn.Module
    argument: int | str


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


def _plus(energies: torch.Tensor, outside: torch.Tensor | None) -> torch.Tensor:
    """e_i with the terms added outside the network (in the network's precision; differentiable)."""
    return energies if outside is None else energies + outside.to(energies.dtype)


def _reported_energies(
    structures: Sequence[Atoms], energies: torch.Tensor, outside: torch.Tensor | None, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom energies e_i ((N,), eV) and per-structure Σ w_i e_i ((B,), eV) as an adapter returns them.

    ``energies`` are the network's e_i, ``outside`` what :meth:`TorchAdapter.energies_outside` adds. The
    network's e_i alone are summed in their own precision; terms added outside the network (μ_Z of about
    -5 eV against site energies of a few tenths) are added and summed in float64, so a float32 model
    loses no digits to them.
    """
    if outside is None:
        owner = _owners(structures, energies.device)
        w = torch.as_tensor(weights, dtype=energies.dtype, device=energies.device)
        totals = energies.new_zeros(len(structures)).index_add(0, owner, (w * energies).detach())
        return energies.detach().cpu().double().numpy(), totals.cpu().double().numpy()
    per_atom = energies.detach().cpu().double().numpy() + outside.detach().cpu().double().numpy()
    bounds = np.cumsum([len(atoms) for atoms in structures])[:-1]
    totals = [np.sum(w * e) for w, e in zip(np.split(weights, bounds), np.split(per_atom, bounds))]
    return per_atom, np.array(totals)


class TorchAdapter(ModelAdapter):
    """A torch model with differentiable per-atom energies, evaluated in batches.

    Subclasses implement :meth:`forward_pass`; for fine-tuning they also name :attr:`module` (see the
    module docstring for the optional hooks).

    Args:
        device: torch device string (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        dtype: ``"float32"`` or ``"float64"``.
        max_atoms_per_batch: at most this many atoms per forward pass in :meth:`compute_many` (a larger
            structure is evaluated alone).
    """

    supports_per_atom_energies = True
    checks_structures = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass supports fine-tuning when it names its :attr:`module` (unless it says otherwise)."""
        super().__init_subclass__(**kwargs)
        if "supports_fine_tuning" not in cls.__dict__:
            cls.supports_fine_tuning = cls.module is not TorchAdapter.module

    def __init__(self, device: str, dtype: str, max_atoms_per_batch: int) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype]
        self.max_atoms_per_batch = max_atoms_per_batch

    #: fingerprint (:attr:`ModelInfo.fingerprint`) of the model these weights were fine-tuned from, or None
    tuned_from: Mapping[str, str | None] | None = None

    def frozen(self, module: ModuleT) -> ModuleT:
        """``module`` on :attr:`device` in :attr:`dtype`, in eval mode, its parameters without gradients."""
        module = module.to(device=self.device, dtype=self.dtype).eval()
        module.requires_grad_(False)
        return module

    # ------------------------------------------------------------------ plugin hooks: evaluation
    @abstractmethod
    def forward_pass(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        """One forward pass of ``structures`` (checked already): per-atom energies e_i in eV.

        Returns the (N,) e_i of all atoms, structure after structure, differentiable by the returned
        position tensors (Å) and, when ``stress``, by zero strain tensors the geometry was deformed by
        (see :class:`ForwardPass`); without ``stress`` the strains may be left empty.
        """

    def energies_outside(self, structures: Sequence[Atoms]) -> torch.Tensor | None:
        """Per-atom energies (N,) in eV that the model adds to :meth:`forward_pass`'s e_i outside its network.

        E.g. CHGNet's AtomRef μ_Zi. Evaluation (energies, per-atom energies, forces and stress of
        Σ w_i e_i) and fine-tuning both add them, differentiable by the model's weights (and by positions
        where they depend on them, through the :class:`ForwardPass` of the same structures). None (the
        default) when :meth:`forward_pass` gives all of e_i.
        """
        return None

    # ------------------------------------------------------------------ plugin hooks: domain decomposition
    #: while LAMMPS exchanges node features (:mod:`softcalc.exchange`): the number of leading
    #: atoms of the evaluated cluster whose features and energies count; the atoms after them are
    #: ghosts that take their features from their owners before every exchange point. None otherwise.
    #: A plugin may then drop the messages (edges) whose receiver is a ghost: nothing reads their result.
    exchange_owned: int | None = None
    #: while features are exchanged: ties every exchanged tensor into the energies
    #: (:meth:`softcalc.exchange.FeatureExchange.tie`); None otherwise
    exchange_tie: Callable[[torch.Tensor], torch.Tensor] | None = None

    def exchange_points(self) -> list[ExchangePoint]:
        """The inputs of message-passing layers that read neighbours' node features, in call order.

        A model that names them runs in LAMMPS with a ghost shell of :attr:`exchange_cutoff` instead of
        its whole receptive field: before each point the ghosts' rows come from their owners, so every
        local atom's energy equals the serial run's. Only features computed from the structure inside
        one exchange cutoff may be read between points. The default names none (no per-layer exchange).
        """
        return []

    @property
    def exchange_cutoff(self) -> float:
        """Å: the ghost shell that per-layer exchange needs (0 without :meth:`exchange_points`): the
        cutoff of the interactions, or what one layer reaches if farther (M3GNet: two three-body bonds)."""
        return float(self.info.cutoff) if self.exchange_points() else 0.0

    # ------------------------------------------------------------------ plugin hooks: fine-tuning
    @property
    def module(self) -> torch.nn.Module:
        """The torch module whose ``state_dict`` holds all of the model's weights (μ_Z included).

        Plugins that can be fine-tuned override this; naming it sets :attr:`supports_fine_tuning`.
        """
        raise SoftcalcError(
            f"model {self.info.name} ({self.info.family}) cannot be fine-tuned: its plugin does not name the "
            "torch module that holds its weights. Fix: implement TorchAdapter.module in the plugin."
        )

    def tunable_groups(self) -> tuple[list[torch.nn.Parameter], list[list[torch.nn.Parameter]]]:
        """The readout's parameters, and each interaction block's, in the order the forward pass runs them.

        ``freeze="all-but-readout"`` trains the readout only, ``"all-but-last:K"`` the readout and the
        last K blocks. The default declares neither, so only ``freeze="none"`` is available.
        """
        return [], []

    def reference_energy_table(self) -> tuple[torch.Tensor, Mapping[str, int]] | None:
        """The parameter or buffer of :attr:`module` holding μ_Z (eV/atom), and each element's flat
        index into it; None (the default) when the model has no atom reference energies."""
        return None

    # ------------------------------------------------------------------ fine-tuning (core)
    def tunable_parts(self) -> TunableParts:
        """:meth:`tunable_groups`, the μ_Z table (:meth:`reference_energy_table`) apart, and in ``other``
        every further parameter of :attr:`module`."""
        readout, blocks = self.tunable_groups()
        table = self.reference_energy_table()
        references = None if table is None else table[0]
        taken = {id(p) for p in [*readout, *(p for block in blocks for p in block), references]}
        other = [p for p in self.module.parameters() if id(p) not in taken]
        return TunableParts(list(readout), [list(b) for b in blocks], other, references)

    def _energies(self, structures: Sequence[Atoms], stress: bool) -> tuple[ForwardPass, torch.Tensor | None]:
        """One forward pass of ``structures`` and what :meth:`energies_outside` adds to its e_i."""
        forward = self.forward_pass(structures, stress)
        if self.exchange_tie is not None:
            forward.energies = self.exchange_tie(forward.energies)
        return forward, self.energies_outside(structures)

    def energy_pass(self, structures: Sequence[Atoms], stress: bool) -> tuple[torch.Tensor, ForwardPass]:
        """One differentiable pass of ``structures`` (checked already): total energies and the forward pass.

        Returns the energies Σ_i e_i ((B,), eV) as the adapter reports them (with what
        :meth:`energies_outside` adds), differentiable by the model's weights and by the position and
        strain tensors of the returned :class:`ForwardPass` (strained when ``stress``).
        """
        forward, outside = self._energies(structures, stress)
        e = _plus(forward.energies, outside)
        return e.new_zeros(len(structures)).index_add(0, _owners(structures, e.device), e), forward

    def reference_energies(self) -> dict[str, float]:
        """μ_Z (eV/atom) as the weights hold them now, by element (empty without a μ_Z table)."""
        table = self.reference_energy_table()
        if table is None:
            return {}
        values = table[0].detach().reshape(-1).cpu().double()
        return {element: float(values[k]) for element, k in table[1].items()}

    def shift_reference_energies(self, shifts: Mapping[str, float]) -> None:
        """Add ``shifts`` (eV/atom, by element) to μ_Z in the model's weights, in place.

        Raises:
            SoftcalcError: the model has no μ_Z table, or no entry for an element of ``shifts``.
        """
        table = self.reference_energy_table()
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
        if self.reference_energy_table() is not None:
            self.info = replace(self.info, reference_energies=self.reference_energies())

    # ------------------------------------------------------------------ evaluation
    def _evaluate(
        self,
        structures: Sequence[Atoms],
        weights: Sequence[np.ndarray] | None,
        properties: Sequence[str],
        virial_origin: np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        """``energy`` Σ w_i e_i, ``forces``, ``stress`` (3D-periodic cells, when requested) and
        ``energies`` e_i (when requested) of ``structures`` in one forward and one backward pass;
        ``virials`` (when requested, non-periodic structures only) the per-atom virials of Σ w_i e_i
        (:func:`softcalc.autograd.centroid_virials`, three more backward passes).

        e_i includes :meth:`energies_outside`. ``weights`` holds one (n_k,) array per structure; None
        weighs every atom 1. ``virial_origin``: see :func:`softcalc.autograd.centroid_virials`.
        """
        virials = "virials" in properties
        for atoms in structures:
            check_structure(atoms, self.info)
            if virials and atoms.pbc.any():
                raise PropertyNotImplementedError(
                    "per-atom virials are computed on non-periodic clusters; for a periodic cell use "
                    "softcalc.virial.per_atom_virials, which builds the cluster of its images"
                )
        volumes = [atoms.get_volume() if atoms.pbc.all() else None for atoms in structures]
        stress = "stress" in properties and any(v is not None for v in volumes)
        n_atoms = [len(atoms) for atoms in structures]
        w = np.ones(sum(n_atoms)) if weights is None else np.concatenate(weights)
        with torch.enable_grad():
            forward, outside = self._energies(structures, stress)
            e = _plus(forward.energies, outside)
            site = torch.as_tensor(w, dtype=e.dtype, device=e.device) * e
            forces, stresses = forces_and_stress(
                site.sum(), forward.positions, forward.strains, volumes, retain_graph=virials
            )
            if virials:
                atom_virials = centroid_virials(
                    site, forward.positions, forces, _owners(structures, e.device), virial_origin
                )
        energies, totals = _reported_energies(structures, forward.energies, outside, w)
        results = []
        start = 0
        for k, n in enumerate(n_atoms):
            res: dict[str, Any] = {"energy": float(totals[k]), "forces": forces[start : start + n]}
            if "energies" in properties:
                res["energies"] = energies[start : start + n]
            if virials:
                res["virials"] = atom_virials[start : start + n]
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
        self,
        atoms: Atoms,
        atom_weights: np.ndarray,
        compute_stress: bool = True,
        virials: bool = False,
        virial_origin: np.ndarray | None = None,
    ) -> dict[str, Any]:
        if not self.supports_per_atom_energies:
            return super().weighted_energy(atoms, atom_weights, compute_stress, virials, virial_origin)
        weights = np.asarray(atom_weights, dtype=float)
        if weights.shape != (len(atoms),):
            raise ValueError(f"atom_weights must have shape ({len(atoms)},), got {weights.shape}")
        properties = [
            "energy",
            "forces",
            "energies",
            *(["stress"] if compute_stress else []),
            *(["virials"] if virials else []),
        ]
        return self._evaluate([atoms], [weights], properties, virial_origin)[0]
