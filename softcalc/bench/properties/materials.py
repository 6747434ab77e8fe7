"""The materials of ``bench properties``: frames of both splits, ground state, phonon set, located properties.

Materials are split as in ``bench softening`` (:func:`~softcalc.bench.splits.load_splits`: mlearn
training/test files, else file order). Surfaces and curvatures use the frames of both splits (calibration
frames, then test frames); held-out forces use the test frames. The ground-state frame (a frame with a
DFT energy and "Ground state" in its group or description) is the unstrained crystal several properties
refer to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softcalc.bench.properties.registry import locate
from softcalc.bench.splits import Split, load_splits
from softcalc.data.dataset import ForceFrame
from softcalc.phonons.comparison import PhononSet
from softcalc.properties.layout import ground_state_index


@dataclass
class Material:
    """One material: its split, all its frames (train then test) and what gives each property.

    Attributes:
        name: the material (as the data name it).
        split: calibration and held-out frames.
        frames: the frames of both splits, calibration frames first.
        phonons: its phonopy force set, when one is given.
        ground_state: index of the ground-state frame, None when there is none.
        located: property name -> what gives it (see :meth:`Property.locate`), for the properties present.
        skipped: what (``surfaces``, ``strain``, ``mode k``, ``surface LABEL``...) -> why it is skipped.
    """

    name: str
    split: Split
    frames: list[ForceFrame]
    phonons: PhononSet | None = None
    ground_state: int | None = None
    located: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def test_slice(self) -> slice:
        """Where the test frames sit in :attr:`frames`."""
        return slice(len(self.split.train), len(self.frames))

    @property
    def has_energies(self) -> bool:
        """Whether any frame carries a DFT energy."""
        return any(f.energy is not None for f in self.frames)


def load_materials(paths: Sequence[str | Path], phonon_sets: Mapping[str, PhononSet]) -> list[Material]:
    """Every material of the data, with its phonopy force set (by name) and its located properties."""
    out = []
    for name, split in load_splits(paths).items():
        frames = [*split.train.frames, *split.test.frames]
        material = Material(name, split, frames, phonon_sets.get(name), ground_state_index(frames))
        locate(material)
        out.append(material)
    return out
