"""MatglAdapter: a matgl ``Potential`` (M3GNet, TensorNet) as a :class:`~softcalc.torch_adapter.TorchAdapter`.

The adapter runs the graph model itself rather than through matgl's ``Potential.forward`` so that
it can (a) read the per-atom energies the model computes before summing them, (b) let the base
class differentiate any weighted sum of them, and (c) evaluate many structures as one disjoint
graph. Per-atom energy of atom i in a structure of n atoms:

    e_i = data_std · a_i + data_mean / n + μ_Zi

where a_i is the model's atomic readout and μ_Z its ``element_refs``, so Σ e_i is exactly the
potential's total energy. Forces F = -∂E/∂R and stress σ = (1/V) ∂E/∂ε come from autograd
through a symmetric strain (:func:`softcalc.autograd.strained`), in eV/Å and eV/Å³ with ASE's sign
(matgl's own ASE calculator reports GPa).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from ase import Atoms
from matgl.graph._compute import compute_pair_vector_and_distance
from torch_geometric.data import Data

from softcalc.autograd import strained
from softcalc.errors import SoftcalcError
from softcalc.info import ModelInfo
from softcalc.torch_adapter import ExchangePoint, ForwardPass, TorchAdapter, parameters_of
from softcalc_matgl._graph import GraphBatch, build_graph_batch, owned_line_graph, owned_messages
from softcalc_matgl._owned_edges import owned_edges_only

#: most atoms evaluated in one batched graph by :meth:`MatglAdapter.compute_many`
MAX_ATOMS_PER_BATCH = 2000


def receptive_hops(potential: torch.nn.Module) -> int:
    """Message-passing depth counted in hops of the model cutoff (the LAMMPS ghost-shell depth).

    M3GNet: each block lets atom j read bonds i -> j whose three-body term saw atoms k within the
    three-body cutoff of i, so one block reaches cutoff + threebody_cutoff. TensorNet: its
    embedding is one message-passing step before the interaction layers.
    """
    model = potential.model
    blocks = int(getattr(model, "n_blocks", getattr(model, "nblocks", len(getattr(model, "layers", [])))))
    threebody = float(getattr(model, "threebody_cutoff", 0.0))
    if threebody:
        return int(np.ceil(blocks * (model.cutoff + threebody) / model.cutoff))
    return blocks + 1 if hasattr(model, "tensor_embedding") else blocks


class MatglAdapter(TorchAdapter):
    """One loaded matgl potential. ``info.dtype`` is float32 by default; float64 is supported."""

    def __init__(
        self,
        potential: torch.nn.Module,
        name: str,
        weights: str | None,
        weights_sha256: str | None,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        super().__init__(device, dtype, MAX_ATOMS_PER_BATCH)
        model = potential.model
        if getattr(model, "is_intensive", True):
            raise SoftcalcError(f"matgl model {name} predicts an intensive property, not a potential energy")
        self.potential = self.frozen(potential)
        self.element_types = tuple(model.element_types)
        self.element_index = {el: k for k, el in enumerate(self.element_types)}
        refs = potential.element_refs
        if refs is not None and refs.property_offset.ndim != 1:
            raise SoftcalcError(f"matgl model {name} has state-dependent element references; not supported")
        #: ZBL repulsion is a per-structure sum in matgl, so per-atom energies are unavailable with it
        self.supports_per_atom_energies = not bool(getattr(potential, "calc_repuls", False))
        self.info = ModelInfo(
            name=name,
            family="matgl",
            weights=weights,
            weights_sha256=weights_sha256,
            elements=frozenset(self.element_types),
            cutoff=float(model.cutoff),
            n_message_passing=receptive_hops(potential),
            reference_energies=self.reference_energies() or dict.fromkeys(self.element_types, 0.0),
            device=str(self.device),
            dtype=dtype,
        )

    # ------------------------------------------------------------------ fine-tuning hooks
    @property
    def module(self) -> torch.nn.Module:
        """The matgl ``Potential``: graph model, element references, data mean and standard deviation."""
        return self.potential

    def tunable_groups(self) -> tuple[list[torch.nn.Parameter], list[list[torch.nn.Parameter]]]:
        """M3GNet: block k is three-body interaction k with graph layer k, readout the weighted readout.
        TensorNet: block k is interaction layer k, readout the output norm, linear layer and readout."""
        model = self.potential.model
        readout = parameters_of(
            getattr(model, "out_norm", None), getattr(model, "linear", None), model.final_layer
        )
        if hasattr(model, "graph_layers"):
            pairs = zip(model.three_body_interactions, model.graph_layers, strict=True)
            return readout, [parameters_of(three_body, layer) for three_body, layer in pairs]
        return readout, [parameters_of(layer) for layer in model.layers]

    def reference_energy_table(self) -> tuple[torch.Tensor, dict[str, int]] | None:
        """``element_refs.property_offset``: μ_Z by index in the model's ``element_types`` (a buffer)."""
        refs = self.potential.element_refs
        return None if refs is None else (refs.property_offset, dict(self.element_index))

    # ------------------------------------------------------------------ domain decomposition
    def exchange_points(self) -> list[ExchangePoint]:
        """M3GNet: block k > 0 reads node features in its three-body update (those of the bonds' end
        atoms) and in its graph convolution. TensorNet: every interaction layer reads the node tensors X
        (the embedding is built from each atom's own neighbours)."""
        model = self.potential.model
        if hasattr(model, "three_body_interactions"):
            blocks = zip(model.three_body_interactions, model.graph_layers, strict=True)
            return [
                point
                for k, (three_body, conv) in enumerate(blocks)
                if k > 0
                for point in (ExchangePoint(three_body, 6), ExchangePoint(conv, 2))
            ]
        if hasattr(model, "tensor_embedding"):
            position = 0 if getattr(model, "_use_warp", False) else 3  # where X enters each layer
            return [ExchangePoint(layer, position) for layer in model.layers]
        return []

    @property
    def exchange_cutoff(self) -> float:
        """One cutoff; M3GNet: at least twice its three-body cutoff, since a bond i -> j shorter than it
        that atom j reads is updated from the end atoms k of the bonds around i, also shorter than it
        (with the shared weights: max(5, 2 × 4) = 8 Å)."""
        if not self.exchange_points():
            return 0.0
        threebody = float(getattr(self.potential.model, "threebody_cutoff", 0.0))
        return max(float(self.info.cutoff), 2.0 * threebody)

    # ------------------------------------------------------------------ evaluation
    def _atom_energies(self, graph: GraphBatch, positions: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """Per-atom energies e_i (eV, (N,)) of the (strained) batch; differentiable."""
        edge_batch = graph.batch[graph.edge_index[0]]
        data = Data(
            node_type=graph.node_type,
            pos=positions,
            edge_index=graph.edge_index,
            pbc_offshift=torch.einsum("ei,eij->ej", graph.shifts, cells[edge_batch]),
            batch=graph.batch,
            num_nodes=int(graph.node_type.shape[0]),
        )
        data.num_graphs = int(graph.n_atoms.shape[0])
        captured: list[torch.Tensor] = []
        model = self.potential.model
        line_graph, owned_only = {}, nullcontext()
        if hasattr(model, "three_body_interactions"):  # M3GNet: the line graph without matgl's atom loop
            with torch.no_grad():
                _, bond_dist = compute_pair_vector_and_distance(positions, data.edge_index, data.pbc_offshift)
            receiving = graph.edge_index.shape[1] if graph.owned_edges is None else graph.owned_edges
            cutoff = float(model.threebody_cutoff)
            line_graph["l_g"] = owned_line_graph(data.edge_index, bond_dist, cutoff, receiving)
        if graph.owned_edges is not None:  # LAMMPS exchanges ghost features: update owned edges only
            owned_only = owned_edges_only(model, graph.owned_edges)
        hook = model.final_layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            with owned_only:
                model(g=data, state_attr=None, **line_graph)
        finally:
            hook.remove()
            if hasattr(model, "feature_dict"):  # matgl keeps every feature of the last call, with its graph:
                model.feature_dict = {}  # drop them (memory; a deep copy of the model needs leaf tensors)
        pot = self.potential
        atomic = captured[-1].reshape(-1)
        mean_share = pot.data_mean / graph.n_atoms[graph.batch]
        energies = pot.data_std * atomic + mean_share
        if pot.element_refs is not None:
            energies = energies + pot.element_refs.property_offset[graph.node_type]
        if getattr(pot, "calc_repuls", False):
            repulsion = pot.repuls(model.element_types, data).reshape(-1)
            energies = energies + (repulsion / graph.n_atoms)[graph.batch]
        return energies

    def forward_pass(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        """Per-atom energies of ``structures`` as one disjoint graph, its geometry strained."""
        graph = build_graph_batch(structures, self.element_index, self.info.cutoff, self.dtype, self.device)
        if self.exchange_owned is not None:  # LAMMPS exchanges ghost features
            threebody = getattr(self.potential.model, "threebody_cutoff", None)
            threebody = None if threebody is None else float(threebody)
            graph = owned_messages(graph, self.exchange_owned, threebody)
        positions = graph.positions.clone().requires_grad_(True)
        strain, strained_positions, strained_cells = strained(positions, graph.cells, graph.batch)
        energies = self._atom_energies(graph, strained_positions, strained_cells)
        return ForwardPass(energies, [positions], [strain] if stress else [])
