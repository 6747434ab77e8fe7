"""Which DFT frames a calibration fits and which it holds out.

Frames are first filtered to resemble the intended simulation (structure groups, temperature, strain),
then ordered (file order, or largest RMS DFT force first), then split: with ``frames=K`` the first K
frames of each data set are fitted and, unless separate test data are given, the rest are held out.

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

#: frame orders of :func:`select_frames`
ORDERS = ("file", "largest-force")

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
    """

    fit: list[ForceDataset]
    heldout: list[ForceDataset] = field(default_factory=list)
    overlap: int = 0


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
        order: ``file`` (file order) or ``largest-force`` (largest RMS DFT force first).
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
            f"Fix: pass order={ORDERS[0]!r} (file order) or {ORDERS[1]!r} (command line: --order)."
        )
    if order == "largest-force":
        rms = [float(np.sqrt(np.mean(f.forces**2))) for f in dataset.frames]
        dataset = dataset.subset(list(np.argsort(rms)[::-1]))
    return dataset


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
        raise DataError("frames must be at least 1")
    split = FrameSplit([])
    for d in as_datasets(data):
        d = select_frames(d, keep.groups, keep.order, keep.temperature, keep.strain)
        if frames is None or len(d) <= frames:
            split.fit.append(d)
        else:
            split.fit.append(d.subset(range(frames)))
            if test is None:
                split.heldout.append(d.subset(range(frames, len(d))))
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
    return FrameSplit(split.fit, [d for d in heldout if len(d)], overlap)
