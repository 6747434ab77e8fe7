"""M3GNet blocks that update only the edges ending at owned atoms (LAMMPS per-layer exchange).

With ghost features exchanged (:func:`softcalc_matgl._graph.owned_messages`) an owned atom's energy
reads the features of the edges ending at owned atoms; the other edges of the cluster are three-body
partners, read for their geometry and the features of their end atoms only. Both the three-body
update and the graph convolution of every block therefore run on the first ``owned_edges`` edges;
the others keep their embedded features. This is done with forward hooks on matgl's modules (no
copy of matgl's layers): a pre-hook hands a module the leading edges, a hook appends the rest to its
edge output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from softcalc.errors import SoftcalcError

#: argument positions of matgl's ThreeBodyInteractions.forward: num_bonds, edge_feat
THREE_BODY_BONDS, THREE_BODY_EDGES = 3, 7
#: argument positions of M3GNetBlock.forward: edge_index, edge_feat, rbf, edge_batch
BLOCK_INDEX, BLOCK_EDGES, BLOCK_RBF, BLOCK_EDGE_BATCH = 0, 1, 4, 6


def _leading(
    module: nn.Module, edges_at: int, n: int, cuts: dict[int, Callable[[Any], Any]]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that call ``module`` with argument k replaced by ``cuts[k](argument)`` and append the edge
    features beyond the first ``n`` (argument ``edges_at``, which it did not see) to its edge output
    (the output, or its first element)."""
    unseen: list[torch.Tensor] = []

    def before(_m: nn.Module, args: tuple) -> tuple:
        if len(args) <= max(cuts):
            raise SoftcalcError(
                f"matgl {type(module).__name__} was called with {len(args)} positional arguments, not the "
                f"{max(cuts) + 1} or more softcalc's per-layer exchange expects: this matgl version is not "
                "supported with decompose yes. Fix: use decompose no (rank 0 evaluates the periodic box)."
            )
        unseen[:] = [args[edges_at][n:]]
        return tuple(cuts[k](arg) if k in cuts else arg for k, arg in enumerate(args))

    def after(_m: nn.Module, _args: tuple, out: Any) -> Any:  # noqa: ANN401
        if isinstance(out, tuple):
            return (torch.cat([out[0], unseen[0]]), *out[1:])
        return torch.cat([out, unseen[0]])

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


@contextmanager
def owned_edges_only(model: nn.Module, n: int) -> Iterator[None]:
    """While the block runs, every three-body update and graph convolution of the matgl M3GNet
    ``model`` updates only its first ``n`` edges (module docstring)."""

    def leading(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[:n]

    three_body_cuts = {THREE_BODY_BONDS: lambda _bonds: n, THREE_BODY_EDGES: leading}
    block_cuts = {
        BLOCK_INDEX: lambda index: index[:, :n],
        BLOCK_EDGES: leading,
        BLOCK_RBF: leading,
        BLOCK_EDGE_BATCH: leading,
    }
    handles = []
    for three_body, block in zip(model.three_body_interactions, model.graph_layers, strict=True):
        handles += _leading(three_body, THREE_BODY_EDGES, n, three_body_cuts)
        handles += _leading(block, BLOCK_EDGES, n, block_cuts)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
