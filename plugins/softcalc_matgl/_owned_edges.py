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

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from softcalc.errors import SoftcalcError

#: the arguments the hooks cut, by position in matgl's ThreeBodyInteractions.forward and M3GNetBlock.forward
THREE_BODY_ARGUMENTS = {"num_bonds": 3, "edge_feat": 7}
BLOCK_ARGUMENTS = {"edge_index": 0, "edge_feat": 1, "rbf": 4, "edge_batch": 6}

UNSUPPORTED = (
    "this matgl version is not supported by softcalc's per-layer exchange (LAMMPS decompose yes, "
    "per-atom stresses). Fix: use decompose no in LAMMPS, or matgl 4.1 (the version softcalc is tested with)."
)


@functools.cache
def _argument_names(forward: Callable[..., Any]) -> tuple[str, ...]:
    """The argument names of a layer's ``forward`` without self (read once per function)."""
    return tuple(inspect.signature(forward).parameters)[1:]


def _check_layout(module: nn.Module, arguments: dict[str, int]) -> None:
    """Raise unless ``module.forward`` takes ``arguments`` (name → position) where the hooks cut them."""
    names = _argument_names(type(module).forward)
    wrong = {name: at for name, at in arguments.items() if at >= len(names) or names[at] != name}
    if wrong:
        raise SoftcalcError(
            f"matgl {type(module).__name__}.forward does not take {', '.join(wrong)} at the positions "
            f"{', '.join(map(str, wrong.values()))}: {UNSUPPORTED}"
        )


def _leading(
    module: nn.Module, arguments: dict[str, int], n: int, cuts: dict[str, Callable[[Any], Any]]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that call ``module`` with each argument named in ``cuts`` (at its position in
    ``arguments``) replaced by ``cuts[name](argument)`` and append the edge features beyond the first
    ``n`` (argument ``edge_feat``, which it did not see) to its edge output (the output, or its first
    element)."""
    _check_layout(module, arguments)
    at = {arguments[name]: cut for name, cut in cuts.items()}
    unseen: list[torch.Tensor] = []

    def before(_m: nn.Module, args: tuple) -> tuple:
        if len(args) <= max(at):
            raise SoftcalcError(
                f"matgl {type(module).__name__} was called with {len(args)} positional arguments, not "
                f"{max(at) + 1} or more: {UNSUPPORTED}"
            )
        unseen[:] = [args[arguments["edge_feat"]][n:]]
        return tuple(at[k](arg) if k in at else arg for k, arg in enumerate(args))

    def after(_m: nn.Module, _args: tuple, out: Any) -> Any:  # noqa: ANN401
        if isinstance(out, tuple):
            return (torch.cat([out[0], unseen[0]]), *out[1:])
        return torch.cat([out, unseen[0]])

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


@contextmanager
def owned_edges_only(model: nn.Module, n: int) -> Iterator[None]:
    """While the block runs, every three-body update and graph convolution of the matgl M3GNet
    ``model`` updates only its first ``n`` edges (module docstring).

    Raises:
        SoftcalcError: matgl's layers do not take their arguments where the hooks expect them.
    """

    def leading(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[:n]

    three_body_cuts = {"num_bonds": lambda _bonds: n, "edge_feat": leading}
    block_cuts = {
        "edge_index": lambda index: index[:, :n],
        "edge_feat": leading,
        "rbf": leading,
        "edge_batch": leading,
    }
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for three_body, block in zip(model.three_body_interactions, model.graph_layers, strict=True):
            handles += _leading(three_body, THREE_BODY_ARGUMENTS, n, three_body_cuts)
            handles += _leading(block, BLOCK_ARGUMENTS, n, block_cuts)
        yield
    finally:
        for handle in handles:
            handle.remove()
