"""Which DFT frames a calibration fits and which it holds out.

Frames are first filtered to resemble the intended simulation (structure groups, temperature, strain),
then ordered, then split: with ``frames=K`` the first K frames of each data set are fitted and, unless
separate test data are given, the rest are held out. Orders (:data:`ORDERS`):

- ``file``: file order;
- ``largest-force``: largest RMS DFT force first (the paper's one-shot pick);
- ``spread``: K frames spread over the regimes the data label, so a fit on few frames sees every regime
  (:func:`spread_order`). The frames are grouped by structure group, and within a group by the
  (temperature, strain) the data state (None when not stated). Groups take turns, one frame each per
  round, largest group first (ties: first appearance in the file); within a group its (temperature,
  strain) regimes take turns by the same rule; within a regime the frames come in farthest-point order
  in the plane of DFT energy per atom and RMS DFT force, each axis divided by its standard deviation over
  the regime (an axis without spread is dropped), starting from the frame with the largest RMS force:
  each next frame is the one farthest from the nearest frame already taken (ties: first in the file).
  The energy axis counts between two frames only when both have a DFT energy, so frames without one
  are placed by RMS force alone. Data without any label (one group, no temperature, no strain) are
  ordered by the farthest-point rule alone. Deterministic: no random numbers.

A held-out frame identical to a calibration frame (same atomic numbers, positions, cell and periodicity,
see :func:`~softcalc.structure.structure_key`; e.g. ``--test`` naming the calibration file) is not held
out: it is dropped from the held-out set and counted in :attr:`FrameSplit.overlap`, so the held-out errors are
on frames the fit never saw and the verdict can say how many were dropped (all of them: no held-out
check at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.data.readers import read_dataset
from softcalc.errors import DataError, SettingsError
from softcalc.structure import structure_key

#: frame orders of :func:`select_frames` (see the module docstring)
ORDERS = ("file", "largest-force", "spread")

DataLike = ForceDataset | str | Path | Sequence[ForceDataset | str | Path]


@dataclass(frozen=True)
class FrameFilter:
    """Frames that resemble the intended simulation, and their order (see :func:`select_frames`)."""

    groups: Sequence[str] | None = None
    order: str = "file"
    temperature: tuple[float, float] | None = None
    strain: tuple[float, float] | None = None


#: positions and cell are compared after rounding to this many decimals (Å): a copy of the data written
#: to another format (extxyz with 8 decimals, JSON) is still the same structure
IDENTITY_DECIMALS = 6


@dataclass
class FrameSplit:
    """Calibration frames and held-out frames, one :class:`ForceDataset` per input data set.

    Attributes:
        overlap: held-out frames dropped because they are identical to a calibration frame.
        unused: frames of the calibration data beyond the K fitted when separate test data are given
            (neither fitted nor held out; the property check still reads what they hold).
    """

    fit: list[ForceDataset]
    heldout: list[ForceDataset] = field(default_factory=list)
    overlap: int = 0
    unused: list[ForceDataset] = field(default_factory=list)


def as_datasets(data: DataLike) -> list[ForceDataset]:
    """Datasets from paths or datasets; an error when none holds a frame."""
    items = [data] if isinstance(data, (ForceDataset, str, Path)) else list(data)
    out = [d if isinstance(d, ForceDataset) else read_dataset(d) for d in items]
    if not out or not any(len(d) for d in out):
        raise DataError("the calibration data set is empty. Fix: give at least one DFT frame with forces.")
    return out


def select_frames(
    dataset: ForceDataset,
    groups: Sequence[str] | None = None,
    order: str = "file",
    temperature: tuple[float, float] | None = None,
    strain: tuple[float, float] | None = None,
) -> ForceDataset:
    """Keep the frames that resemble the intended simulation, then order them.

    Args:
        groups: structure groups to keep (case-insensitive).
        temperature: (low, high) in K, inclusive; frames whose data do not state a temperature drop out.
        strain: (low, high) applied strain, signed and inclusive; frames without a stated strain drop out.
        order: ``file`` (file order), ``largest-force`` (largest RMS DFT force first) or ``spread``
            (round robin over the labelled regimes, spread in energy and force within each: see
            :func:`spread_order`).
    """
    if groups:
        wanted = {g.lower() for g in groups}
        present = dataset.groups
        dataset = dataset.select(lambda f: f.group.lower() in wanted)
        if not len(dataset):
            raise DataError(
                f"no frame of {dataset.source} belongs to group(s) {', '.join(groups)}. "
                f"Fix: choose among the groups present in the data: {', '.join(present) or 'none'}."
            )
    for name, bounds, unit in (("temperature", temperature, " K"), ("strain", strain, "")):
        if bounds is None:
            continue
        low, high = bounds
        stated = [v for f in dataset.frames if (v := getattr(f, name)) is not None]
        dataset = dataset.select(
            lambda f, n=name, lo=low, hi=high: (v := getattr(f, n)) is not None and lo <= v <= hi
        )
        if not len(dataset):
            span = f"from {min(stated):g} to {max(stated):g}{unit}" if stated else "none states one"
            raise DataError(
                f"no frame of {dataset.source} has a {name} in [{low:g}, {high:g}]{unit} "
                f"({len(stated)} frame(s) state a {name}: {span}). Fix: widen the range or drop the filter."
            )
    if order not in ORDERS:
        raise SettingsError(
            f"unknown frame order {order!r}: the order must be one of {', '.join(ORDERS)}. "
            f"Fix: pass order={ORDERS[0]!r} (file order), {ORDERS[1]!r} or {ORDERS[2]!r} "
            "(command line: --order)."
        )
    if order == "largest-force":
        dataset = dataset.subset(list(np.argsort(_rms_forces(dataset.frames))[::-1]))
    elif order == "spread":
        dataset = dataset.subset(spread_order(dataset.frames))
    return dataset


def _rms_forces(frames: Sequence[ForceFrame]) -> np.ndarray:
    """RMS DFT force of each frame (eV/Å)."""
    return np.array([float(np.sqrt(np.mean(f.forces**2))) for f in frames])


def spread_order(frames: Sequence[ForceFrame]) -> list[int]:
    """Indices of ``frames`` in the ``spread`` order: round robin over structure groups, then over the
    (temperature, strain) regimes of each group, farthest-point in (energy per atom, RMS force) within a
    regime (the rule in the module docstring).
    """
    groups: dict[str, dict[tuple[float | None, float | None], list[int]]] = {}
    for i, f in enumerate(frames):
        groups.setdefault(f.group, {}).setdefault((f.temperature, f.strain), []).append(i)
    rms = _rms_forces(frames)
    per_atom = np.array([np.nan if f.energy is None else f.energy / len(f.atoms) for f in frames])

    def spread(idx: list[int]) -> list[int]:
        return [idx[k] for k in _farthest_point(per_atom[idx], rms[idx])]

    within = [_round_robin([spread(idx) for idx in regimes.values()]) for regimes in groups.values()]
    return _round_robin(within)


def _round_robin(queues: list[list[int]]) -> list[int]:
    """One item from each queue per round, longest queue first (stable: ties keep the given order)."""
    queues = sorted(queues, key=len, reverse=True)
    return [q[k] for k in range(max(map(len, queues), default=0)) for q in queues if k < len(q)]


def _farthest_point(energy: np.ndarray, force: np.ndarray) -> list[int]:
    """Farthest-point order of points (energy, force), each axis scaled by its standard deviation.

    Starts at the largest ``force``; then the point whose distance to the nearest chosen one is largest
    (ties: lowest index). The energy term counts only between two points that both have one (not NaN).
    """
    n = len(force)

    def scaled(x: np.ndarray) -> np.ndarray:
        known = x[np.isfinite(x)]
        std = float(np.std(known)) if len(known) > 1 else 0.0
        return x / std if std > 0 else np.where(np.isfinite(x), 0.0, np.nan)

    e, f = scaled(energy), scaled(force)
    order = [int(np.argmax(force))]
    nearest = np.full(n, np.inf)
    taken = np.zeros(n, dtype=bool)
    while len(order) < n:
        last = order[-1]
        taken[last] = True
        de = np.nan_to_num(e - e[last], nan=0.0)  # no energy on either side: force alone
        nearest = np.minimum(nearest, np.hypot(f - f[last], de))
        order.append(int(np.argmax(np.where(taken, -1.0, nearest))))
    return order


def split_frames(
    data: DataLike, frames: int | None = None, test: DataLike | None = None, keep: FrameFilter | None = None
) -> FrameSplit:
    """Filter and order every data set (``keep``, see :func:`select_frames`), then split it.

    With ``frames=K`` the first K frames of each set are fitted and, without ``test``, the rest held
    out. ``test`` data are filtered like the calibration data but kept in file order. Held-out frames
    identical to a calibration frame are dropped and counted (see the module docstring).
    """
    keep = keep or FrameFilter()
    if frames is not None and frames < 1:
        raise SettingsError(
            f"frames = {frames}: at least one frame is fitted. Fix: give --frames >= 1 or omit it."
        )
    split = FrameSplit([])
    for d in as_datasets(data):
        d = select_frames(d, keep.groups, keep.order, keep.temperature, keep.strain)
        if frames is None or len(d) <= frames:
            split.fit.append(d)
        else:
            split.fit.append(d.subset(range(frames)))
            rest = d.subset(range(frames, len(d)))
            (split.heldout if test is None else split.unused).append(rest)
    if test is not None:
        split.heldout += [
            select_frames(d, keep.groups, "file", keep.temperature, keep.strain) for d in as_datasets(test)
        ]
    return _drop_overlap(split)


def _drop_overlap(split: FrameSplit) -> FrameSplit:
    """``split`` without the held-out frames that are calibration frames, and their count."""

    def key(frame: ForceFrame) -> str:
        return structure_key(frame.atoms, IDENTITY_DECIMALS)

    fitted = {key(f) for d in split.fit for f in d.frames}
    heldout = [d.select(lambda f: key(f) not in fitted) for d in split.heldout]
    overlap = sum(len(d) for d in split.heldout) - sum(len(d) for d in heldout)
    return FrameSplit(split.fit, [d for d in heldout if len(d)], overlap, split.unused)
