"""MaceAdapter: one loaded MACE model (mace-torch), a :class:`~softcalc.torch_adapter.TorchAdapter`.

Graphs come from mace's own data utilities. Every result comes from the model's node energies e_i
(which include the E0s, so Σ e_i = E) by autograd in the base class: F = -∂E/∂R and
σ = (1/V) ∂E/∂ε with a symmetric strain ε applied through mace's ``displacement`` input. The same
path gives weighted sums Σ w_i e_i (per-species corrections) and batched evaluation of many structures.

Units: energies eV, forces eV/Å, stress eV/Å³ (ASE sign, Voigt xx yy zz yz xz xy).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from ase import Atoms
from ase.data import chemical_symbols

from softcalc.errors import UnknownModelError
from softcalc.info import ModelInfo
from softcalc.torch_adapter import ExchangePoint, ForwardPass, TorchAdapter, parameters_of
from softcalc.weight_files import loading_weights, weights_sha256


def _select_head(heads: Sequence[str]) -> str:
    """The head to evaluate: the only one, else the one named 'default', else the first (with a warning)."""
    if len(heads) == 1:
        return heads[0]
    for head in heads:
        if head.lower() == "default":
            return head
    warnings.warn(
        f"multi-head MACE model without a 'default' head; using {heads[0]!r} of {list(heads)}", stacklevel=3
    )
    return heads[0]


class MaceAdapter(TorchAdapter):
    """A MACE model (``MACE`` / ``ScaleShiftMACE`` from mace-torch) behind softcalc's adapter contract.

    Args:
        model: the torch module (moved to ``device`` and ``dtype``; its parameters are frozen).
        name: model name for :class:`ModelInfo`.
        weights: path of the file it was loaded from (None for an in-memory model).
        device: torch device string.
        dtype: ``"float32"`` or ``"float64"``; the model is converted; None keeps its own.
        max_atoms_per_batch: at most this many atoms per batch in :meth:`compute_many`; None: 256 on CPU
            (larger batches were slower there: 10 frames of 81 atoms took 14 s in one batch, 6.7 s in
            batches of 250, 7.8 s one by one), 4096 on accelerators.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        weights: str | Path | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        max_atoms_per_batch: int | None = None,
    ) -> None:
        from mace.tools.utils import AtomicNumberTable

        if not hasattr(model, "atomic_energies_fn") or not hasattr(model, "atomic_numbers"):
            raise UnknownModelError(
                f"{weights or name} is not a MACE energy model ({type(model).__name__}). "
                "Fix: pass a MACE/ScaleShiftMACE .model file."
            )
        if dtype is None:
            dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
        on_cpu = torch.device(device).type == "cpu"
        super().__init__(device, dtype, max_atoms_per_batch or (256 if on_cpu else 4096))
        self.model = self.frozen(model)
        zs = [int(z) for z in self.model.atomic_numbers]
        self.z_table = AtomicNumberTable(zs)
        self.heads = list(getattr(self.model, "heads", None) or ["Default"])
        self.head = _select_head(self.heads)
        self.cutoff = float(self.model.r_max)
        self.info = ModelInfo(
            name=name,
            family="mace",
            weights=None if weights is None else str(weights),
            weights_sha256=None if weights is None else weights_sha256(weights),
            elements=frozenset(chemical_symbols[z] for z in zs),
            cutoff=self.cutoff,
            n_message_passing=int(self.model.num_interactions),
            reference_energies=self.reference_energies(),
            device=str(self.device),
            dtype=dtype,
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        name: str,
        device: str = "cpu",
        dtype: str | None = None,
        how_to_get: str | None = None,
    ) -> MaceAdapter:
        """Load a pickled MACE model (``torch.save(model)``, the ``.model`` files mace-torch writes).

        A damaged file raises :class:`~softcalc.errors.CorruptWeightsError` with ``how_to_get`` as the fix.
        """
        import mace  # noqa: F401 - registers mace's classes (and e3nn's) before unpickling

        with loading_weights(path, "MACE", how_to_get):
            model = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(model, torch.nn.Module):
            raise UnknownModelError(
                f"{path} holds a {type(model).__name__}, not a MACE model. "
                "Fix: pass a .model file saved with torch.save(model) (not a checkpoint or state dict)."
            )
        return cls(model, name=name, weights=path, device=device, dtype=dtype)

    # -- fine-tuning hooks ----------------------------------------------------------------

    @property
    def module(self) -> torch.nn.Module:
        return self.model

    def tunable_groups(self) -> tuple[list[torch.nn.Parameter], list[list[torch.nn.Parameter]]]:
        """Readout: every layer's readout (MACE sums them all). Block k: interaction k and product k."""
        blocks = [
            parameters_of(i, p) for i, p in zip(self.model.interactions, self.model.products, strict=True)
        ]
        return parameters_of(self.model.readouts), blocks

    def reference_energy_table(self) -> tuple[torch.Tensor, dict[str, int]]:
        """The E0 buffer ((n_elements,) or (n_heads, n_elements)): the evaluated head's row."""
        e0 = self.model.atomic_energies_fn.atomic_energies
        zs = self.z_table.zs
        offset = self.heads.index(self.head) * len(zs) if e0.numel() > len(zs) else 0
        return e0, {chemical_symbols[z]: offset + k for k, z in enumerate(zs)}

    # -- domain decomposition ------------------------------------------------------------------

    def exchange_points(self) -> list[ExchangePoint]:
        """Every interaction after the first reads its senders' ``node_feats`` (the first reads only
        the species embedding, which a ghost already has)."""
        return [ExchangePoint(interaction, "node_feats") for interaction in self.model.interactions[1:]]

    # -- graph construction and forward pass -------------------------------------------------

    def _batch(self, structures: Sequence[Atoms]) -> dict[str, torch.Tensor]:
        """mace's batched graph for ``structures`` (neighbour lists within the model's r_max)."""
        from mace import data as mace_data
        from mace.tools import torch_geometric, torch_tools

        keyspec = mace_data.KeySpecification(info_keys={}, arrays_keys={})
        graphs = []
        with torch_tools.default_dtype(self.dtype):
            for atoms in structures:
                config = mace_data.config_from_atoms(atoms, key_specification=keyspec, head_name=self.head)
                graphs.append(
                    mace_data.AtomicData.from_config(
                        config, z_table=self.z_table, cutoff=self.cutoff, heads=self.heads
                    )
                )
        batch = torch_geometric.Batch.from_data_list(graphs).to_dict()
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def forward_pass(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        """Node energies e_i of ``structures``; with ``stress`` mace strains each cell (zero displacement)."""
        data = self._batch(structures)
        if self.exchange_owned is not None:  # LAMMPS exchanges ghost features: no messages to ghosts
            keep = data["edge_index"][1] < self.exchange_owned
            data.update(
                {
                    key: data[key][..., keep] if key == "edge_index" else data[key][keep]
                    for key in ("edge_index", "shifts", "unit_shifts")
                }
            )
        positions = data["positions"].requires_grad_(True)
        strains = []
        if stress:
            displacement = torch.zeros(
                (len(structures), 3, 3), dtype=self.dtype, device=self.device, requires_grad=True
            )
            data["displacement"] = displacement
            strains.append(displacement)
        out = self.model(data, training=False, compute_force=False, compute_displacement=stress)
        return ForwardPass(out["node_energy"], [positions], strains)
