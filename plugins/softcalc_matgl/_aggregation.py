"""Message-aggregation direction of matgl models: detection and repair.

The M3GNet and TensorNet weights shipped for matgl (M3GNet-MP-2021.2.8, the MatPES-v2025.1 M3GNet and
TensorNet) were trained when matgl summed each edge message ``m(x_src, x_dst, e)`` at the edge's
*destination* atom (DGL ``update_all(..., fn.sum)``). matgl 4.x (PyTorch Geometric back end) sums
the same messages at the *source* atom, so every atom reads its neighbours' messages with the
centre and neighbour slots swapped. Single-element systems barely notice; compounds are wrecked
(MgO rocksalt: -2.04 instead of -5.96 eV/atom with M3GNet-MP).

The layers affected, found in ``matgl/layers/_graph_convolution.py`` and ``_embedding.py``:

- ``M3GNetGraphConv.node_update_``: ``scatter_add(mess, src)``. Repaired by a subclass that scatters
  at ``dst`` (exactly the DGL convention).
- ``TensorEmbedding``: ``zij = cat(x[src], x[dst])`` summed at ``src``. Repaired by a subclass that
  feeds the neighbour first, ``cat(x[dst], x[src])``. With the symmetric edge lists matgl builds this
  equals destination aggregation up to the sign of every bond vector, to which the O(3)-invariant
  TensorNet energy is blind. ``TensorNetInteraction`` sums neighbour tensors ``x[dst]`` at ``src``:
  with symmetric edges and radial-only edge weights the direction does not matter there.

Nothing is decided from a version number: each layer is probed with a two-atom graph holding one
directed edge. The probe finds which atom received the message and, from the input of the layer's
pair network, in which slot the sender's and the receiver's features were. The trained convention
is (sender, receiver) summed at the receiver; a layer that does otherwise is repaired, and the probe
must pass after the repair.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from softcalc.errors import SoftcalcError


def _follows_training(update: torch.Tensor, pair_input: torch.Tensor, nodes: torch.Tensor) -> bool:
    """True when the probe edge's message was built as (sender, receiver) and summed at the receiver.

    ``update``: the layer's per-atom output for the two probe atoms (only the receiver is non-zero);
    ``pair_input``: the input row of the layer's pair network; ``nodes``: the two atoms' features.
    """
    moved = update.reshape(2, -1).abs().amax(dim=1)
    if int((moved > 0).sum()) != 1:
        raise SoftcalcError(f"the matgl aggregation probe is inconclusive (row norms {moved.tolist()})")
    receiver = int(torch.argmax(moved))
    width = nodes.shape[1]
    first, second = pair_input[0, :width], pair_input[0, width : 2 * width]
    if torch.allclose(first, nodes[1 - receiver]) and torch.allclose(second, nodes[receiver]):
        return True
    if torch.allclose(first, nodes[receiver]) and torch.allclose(second, nodes[1 - receiver]):
        return False
    raise SoftcalcError("the matgl aggregation probe could not locate the atom features in the pair input")


def _capture_input(module: nn.Module) -> tuple[list[torch.Tensor], torch.utils.hooks.RemovableHandle]:
    seen: list[torch.Tensor] = []
    return seen, module.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))


def _probe_m3gnet_conv(conv: nn.Module) -> bool:
    """Whether one M3GNetGraphConv's node update follows the trained (destination) convention."""
    gen = torch.Generator().manual_seed(0)
    weight = conv.node_weight_func.weight
    n_node, n_rbf = weight.shape
    n_edge = conv.edge_weight_func.weight.shape[0]
    n_state = conv.node_update_func.in_feats - 2 * n_node - n_edge

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(dtype=weight.dtype, device=weight.device)

    edge_index = torch.tensor([[0], [1]], device=weight.device)
    nodes = rand(2, n_node)
    state = rand(1, n_state) if n_state else None
    seen, handle = _capture_input(conv.node_update_func)
    try:
        with torch.no_grad():
            update = conv.node_update_(edge_index, rand(1, n_edge), nodes, rand(1, n_rbf), state, 2)
    finally:
        handle.remove()
    return _follows_training(update, seen[0], nodes)


def _probe_tensor_embedding(emb: nn.Module) -> bool:
    """Whether a TensorEmbedding builds each atom's tensor from (neighbour, centre) pair embeddings."""
    weight = emb.distance_proj1.weight
    kw = {"dtype": weight.dtype, "device": weight.device}
    z = torch.tensor([0, 1], device=weight.device)
    edge_index = torch.tensor([[0], [1]], device=weight.device)
    dist = torch.tensor([1.0], **kw)
    vec = torch.tensor([[0.6, 0.0, 0.8]], **kw)
    attr = torch.linspace(0.1, 1.0, weight.shape[1], **kw).unsqueeze(0)
    seen, handle = _capture_input(emb.emb2)
    try:
        with torch.no_grad():
            x, _ = emb(z, edge_index, attr, dist, vec)
            nodes = emb.emb(z)
    finally:
        handle.remove()
    return _follows_training(x, seen[0], nodes)


class DestinationM3GNetGraphConv:
    """Mixin body for M3GNetGraphConv: node messages summed at the edge's destination atom."""

    def node_update_(self, edge_index, edge_feat, node_feat, rbf, u_per_edge, num_nodes):  # noqa: ANN001, ANN201
        """Eq. 5 of M3GNet: ``v_dst += Σ_edges φ(v_src ⊕ v_dst ⊕ e) ⊙ W·rbf``, summed at ``dst``."""
        src, dst = edge_index[0], edge_index[1]
        parts = [node_feat[src], node_feat[dst], edge_feat]
        if self.include_state:
            parts.append(u_per_edge)
        mess = self.node_update_func(torch.hstack(parts)) * self.node_weight_func(rbf)
        out = torch.zeros((num_nodes, mess.shape[1]), dtype=mess.dtype, device=mess.device)
        return out.index_add(0, dst.long(), mess)


class NeighbourFirstTensorEmbedding:
    """Mixin body for TensorEmbedding: the pair embedding reads (neighbour, centre), as trained."""

    def message(self, x_i, x_j, **kwargs):  # noqa: ANN001, ANN003, ANN201
        """``x_i`` is the receiving (centre) atom, ``x_j`` the neighbour: swap them for ``emb2``."""
        return super().message(x_j, x_i, **kwargs)


def _repair(module: nn.Module, mixin: type, probe) -> bool:  # noqa: ANN001
    """Give ``module`` the ``mixin`` when ``probe`` says it does not follow the trained convention."""
    if probe(module):
        return False
    cls = module.__class__
    module.__class__ = type(f"Destination{cls.__name__}", (mixin, cls), {})
    if not probe(module):
        raise SoftcalcError(f"could not repair the message aggregation of matgl {cls.__name__}")
    return True


def fix_message_aggregation(model: nn.Module) -> list[str]:
    """Make every message-passing layer of a matgl model sum messages at the destination atom.

    Works on the loaded model only (site-packages are untouched). Returns the names of the layers
    repaired (empty when the installed matgl already aggregates at the destination).
    """
    repaired: list[str] = []
    probes = {
        "M3GNetGraphConv": (DestinationM3GNetGraphConv, _probe_m3gnet_conv),
        "TensorEmbedding": (NeighbourFirstTensorEmbedding, _probe_tensor_embedding),
    }
    for name, module in model.named_modules():
        kind = next((k for k in probes if k in (c.__name__ for c in type(module).__mro__)), None)
        if kind is None:
            continue
        mixin, probe = probes[kind]
        try:
            if _repair(module, mixin, probe):
                repaired.append(name)
        except (AttributeError, TypeError) as exc:  # a matgl layout this module does not know
            warnings.warn(
                f"softcalc could not check the message aggregation of matgl layer {name} ({exc}); "
                "energies of compounds may be wrong with this matgl version.",
                UserWarning,
                stacklevel=2,
            )
    return repaired
