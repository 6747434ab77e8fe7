"""Per-layer ghost exchange: the node features of ghost atoms come from the atoms they copy.

Two users: LAMMPS' domain decomposition (``pair_style softcalc ... decompose yes``, ghosts are other
ranks' atoms and periodic images, the exchange is LAMMPS' communication) and the per-atom virials of a
periodic cell (:mod:`softcalc.virial`, ghosts are the cell's periodic images, the exchange is an index
copy, :func:`image_exchange`). Each evaluates its own atoms plus a ghost shell of one exchange cutoff
(:attr:`softcalc.torch_adapter.TorchAdapter.exchange_cutoff`) as a non-periodic cluster, own atoms
first. A ghost's features after a message-passing layer
are wrong (its neighbours beyond the shell are missing), so before every layer that reads neighbours'
features (:meth:`~softcalc.torch_adapter.TorchAdapter.exchange_points`) a forward hook replaces the
ghost rows by the owners' rows (LAMMPS forward communication). The replacement is an autograd
function: in the backward pass the gradient arriving at a ghost row is sent back and added to its
owner's row (LAMMPS reverse communication), and the ghost row's own gradient is zero, since its
computed value was discarded. Forces, per-atom virials and the fdotr virial then equal the serial
run's.

Per-atom virials need one more step. The centroid virial W_i = Σ_j (r_j - r_i) ⊗ ∂U_j/∂r_i takes r_i
where atom j sees atom i: a ghost's features now come from its owner's neighbourhood, one periodic
image away, so the derivatives that reach the owner's side are shifted by the image vector
T_g = r_g - r_owner. With G_a = Σ_j r_j^a U_j differentiated after E = Σ_j U_j
(:func:`softcalc.autograd.centroid_virials`), the gradient of G_a that a ghost row sends back is
corrected by -T_g^a times the gradient of E at the same row, as if the ghost had computed its own
features in place. T_g comes from a forward exchange of the owners' positions.

Every exchange is a collective step of all ranks, so every rank must run the same exchanges in the
same order:
- a rank whose own atoms read no neighbour (none, or none within the cutoff) does not run the model
  but replays the exchange widths recorded at start-up on rows of zeros (:meth:`FeatureExchange.idle`);
- every exchanged tensor is tied into the energies (``0 · Σ out``, :meth:`FeatureExchange.tie`), so
  its backward pass runs even where a layer happens not to read it (M3GNet's three-body update of a
  cluster without short bonds), and backward passes stay in step;
- a rank whose evaluation fails (a Python error) completes the remaining exchanges on zero rows before
  the error is raised (:meth:`FeatureExchange.complete`), so every rank reaches the pair style's
  collective error check instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from ase import Atoms

from softcalc.errors import SoftcalcError
from softcalc.torch_adapter import ExchangePoint, TorchAdapter

#: LAMMPS' communication, bound to one pair style: ``(rows, width)`` on a C-contiguous float64 array
#: of (nlocal + nghost) rows
Communicate = Callable[[np.ndarray, int], None]


class _GhostRows(torch.autograd.Function):
    """y = x with the ghost rows replaced by their owners' (forward); gradient: ghost rows' gradients
    added to their owners', ghost rows zero (backward).

    With image shifts (per-atom virials), backward passes 2 to 4 are those of G_0, G_1, G_2 after the
    first one of E (:func:`softcalc.autograd.centroid_virials`): their ghost rows are corrected by
    -T^a times the first pass's ghost rows (module docstring).
    """

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, exchange: FeatureExchange) -> torch.Tensor:  # noqa: ANN401
        ctx.exchange = exchange
        ctx.passes = 0
        rows = exchange.rows(features)
        exchange.send(rows, reverse=False)
        out = torch.from_numpy(rows).to(features.device, features.dtype).reshape(features.shape)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN401
        exchange: FeatureExchange = ctx.exchange
        rows = exchange.rows(grad)
        shifts, ghosts = exchange.image_shifts, slice(exchange.nlocal, None)
        if shifts is not None:
            if ctx.passes == 0:
                ctx.energy_rows = rows[ghosts].copy()
            else:
                rows[ghosts] -= shifts[ghosts, ctx.passes - 1 : ctx.passes] * ctx.energy_rows
        ctx.passes += 1
        exchange.send(rows, reverse=True)
        rows[ghosts] = 0.0
        return torch.from_numpy(rows).to(grad.device, grad.dtype).reshape(grad.shape), None


class FeatureExchange:
    """The exchange hooks of one model, bound to one pair style's LAMMPS communication.

    Args:
        adapter: the model (its :meth:`~softcalc.torch_adapter.TorchAdapter.exchange_points`).

    The hooks are registered on the model only inside :meth:`running`; they communicate through what
    :meth:`connect` gave them.
    """

    def __init__(self, adapter: TorchAdapter) -> None:
        self.adapter = adapter
        self.points = adapter.exchange_points()
        if not self.points:
            raise SoftcalcError(f"model {adapter.info.name} names no exchange points: no per-layer exchange")
        self._forward: Communicate | None = None
        self._reverse: Communicate | None = None
        self.nlocal = self.nall = 0
        #: exchanges done since :meth:`running` began: forward, reverse
        self.done = [0, 0]
        #: the exchanged tensors of the evaluation in progress (:meth:`tie`)
        self.outputs: list[torch.Tensor] = []
        #: (nall, 3) Å, r_g - r_owner of every row (zero for local atoms) while per-atom virials are wanted
        self.image_shifts: np.ndarray | None = None
        #: widths (values per atom) of the exchanges of one evaluation, forward then backward order
        self.forward_widths: list[int] = []
        self.backward_widths: list[int] = []
        self._recording: tuple[list[int], list[int]] | None = None

    def connect(self, forward: Communicate, reverse: Communicate) -> None:
        """Exchange through ``forward`` and ``reverse``: LAMMPS' forward and reverse communication."""
        self._forward, self._reverse = forward, reverse

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` has been called."""
        return self._forward is not None

    def _communicate(self, reverse: bool) -> Communicate:
        channel = self._reverse if reverse else self._forward
        if channel is None:
            raise SoftcalcError("per-layer exchange: no LAMMPS communication is connected")
        return channel

    def _hook(self, point: ExchangePoint) -> Callable[..., Any]:
        def exchange_inputs(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            key = point.argument
            out = _GhostRows.apply(kwargs[key] if isinstance(key, str) else args[key], self)
            self.outputs.append(out)
            if isinstance(key, str):
                return args, {**kwargs, key: out}
            return (*args[:key], out, *args[key + 1 :]), kwargs

        return exchange_inputs

    def rows(self, features: torch.Tensor) -> np.ndarray:
        """``features`` as a fresh C-contiguous float64 (atoms, values) array."""
        if features.shape[0] != self.nall:
            raise SoftcalcError(
                f"an exchange point received {features.shape[0]} rows for a cluster of {self.nall} atoms: "
                "the model's exchange points must take per-atom features"
            )
        return np.ascontiguousarray(features.detach().cpu().double().reshape(self.nall, -1).numpy().copy())

    def send(self, rows: np.ndarray, reverse: bool) -> None:
        """One exchange of ``rows`` in place (or, while recording, only its width)."""
        width = int(rows.shape[1]) if rows.ndim == 2 else 0
        if self._recording is not None:
            self._recording[reverse].append(width)
            return
        self._communicate(reverse)(rows, width)
        self.done[reverse] += 1

    @contextmanager
    def running(self, nlocal: int, nall: int, positions: np.ndarray | None = None) -> Iterator[None]:
        """Exchange at every exchange point while the block runs, for a cluster of ``nlocal`` local
        atoms followed by ``nall - nlocal`` ghosts.

        ``positions`` ((nall, 3) Å, one frame on every rank): per-atom virials are wanted; the image
        shifts of the ghosts are exchanged first.
        """
        self.nlocal, self.nall = nlocal, nall
        self.done, self.outputs = [0, 0], []
        if positions is not None:
            owners = np.ascontiguousarray(positions, dtype=np.float64).copy()
            self.send(owners, reverse=False)
            self.image_shifts = np.asarray(positions) - owners
        hooks = [(point.module, self._hook(point)) for point in self.points]
        handles = [module.register_forward_pre_hook(hook, with_kwargs=True) for module, hook in hooks]
        self.adapter.exchange_owned = nlocal
        self.adapter.exchange_tie = self.tie
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self.adapter.exchange_owned = None
            self.adapter.exchange_tie = None
            self.image_shifts = None
            self.outputs = []

    def record(self, evaluate: Callable[[], Any], n_atoms: int) -> None:
        """Run ``evaluate`` (one evaluation with forces of an ``n_atoms`` structure, owned atoms only)
        and keep the widths of its exchanges, for :meth:`idle`.

        Raises:
            SoftcalcError: an exchange point did not run, or did not run in the backward pass: the
                ranks could not keep in step.
        """
        self._recording = ([], [])
        try:
            with self.running(n_atoms, n_atoms):
                evaluate()
            self.forward_widths, self.backward_widths = self._recording
        finally:
            self._recording = None
        if len(self.forward_widths) != len(self.points) or len(self.backward_widths) != len(self.points):
            raise SoftcalcError(
                f"per-layer exchange: {len(self.points)} exchange points, but one evaluation exchanged "
                f"{len(self.forward_widths)} times forward and {len(self.backward_widths)} times backward: "
                "the ranks could not keep in step."
            )

    def tie(self, energies: torch.Tensor) -> torch.Tensor:
        """``energies`` + 0 · Σ (every tensor exchanged so far): a graph in which every exchange's
        backward pass runs (module docstring)."""
        if not self.outputs:
            return energies
        return energies + 0.0 * sum(out.sum() for out in self.outputs)

    def schedule(self, virials: bool) -> tuple[list[int], list[int]]:
        """Widths of the forward and reverse exchanges of one evaluation (with per-atom virials: the
        image shifts' first, and three more backward passes)."""
        forward = ([3] if virials else []) + self.forward_widths
        return forward, self.backward_widths * (4 if virials else 1)

    def complete(self, virials: bool, positions: np.ndarray | None = None) -> None:
        """The exchanges of one evaluation that have not run yet, on rows of zeros (``positions``
        instead for the image shifts); from the start this is an idle evaluation."""
        nall = self.nall
        forward, reverse = self.schedule(virials)
        for k, width in enumerate(forward[self.done[0] :], start=self.done[0]):
            shifts = virials and k == 0 and positions is not None  # the image shifts' exchange
            rows = np.array(positions, dtype=np.float64) if shifts else np.zeros((nall, width))
            self._communicate(False)(rows, width)
        for width in reverse[self.done[1] :]:
            self._communicate(True)(np.zeros((nall, width)), width)
        self.done = [len(forward), len(reverse)]

    def idle(self, positions: np.ndarray, virials: bool) -> None:
        """All exchanges of one evaluation, on rows of zeros, for a rank that does not evaluate."""
        self.nall, self.done = len(positions), [0, 0]
        self.complete(virials, positions)

    @property
    def width(self) -> int:
        """The most values per atom one exchange sends (what LAMMPS reserves per atom)."""
        return max([3, *self.forward_widths, *self.backward_widths])


def image_exchange(owner: np.ndarray) -> tuple[Communicate, Communicate]:
    """Forward and reverse exchange within one process, for a cluster whose row k copies atom
    ``owner[k]`` (own atoms first, ``owner[k] == k`` for them)."""
    n = int(np.count_nonzero(owner == np.arange(len(owner))))

    def forward(rows: np.ndarray, _width: int) -> None:
        rows[n:] = rows[owner[n:]]

    def reverse(rows: np.ndarray, _width: int) -> None:
        np.add.at(rows, owner[n:], rows[n:])

    return forward, reverse


def probe_structure(element: str, cutoff: float) -> Atoms:
    """Four atoms of ``element`` on a tetrahedron of edge 0.6 ``cutoff`` (Å): every pair and every
    angle lies within the cutoff, so every exchange point of a model runs, forward and backward."""
    edge = 0.6 * cutoff
    corners = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=float) * edge / np.sqrt(2.0)
    return Atoms(symbols=[element] * 4, positions=corners + cutoff, cell=np.eye(3) * 3 * cutoff, pbc=False)
