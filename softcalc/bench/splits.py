"""Calibration/test splits of benchmark data per material (``bench softening``, ``bench properties``).

mlearn folders (``training.json`` + ``test.json``) give their own split; any other data set is split by
file order: the first :data:`CALIBRATION_FRACTION` of its frames calibrate, the rest are held out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softcalc.data.dataset import ForceDataset
from softcalc.data.readers import read_datasets
from softcalc.errors import DataError

#: other data (no training/test files) are split by file order: this fraction calibrates
CALIBRATION_FRACTION = 0.5
TRAIN_STEMS = {"training", "train"}
TEST_STEMS = {"test"}
#: ``quick``: first material only, this many frames per structure group and split
QUICK_FRAMES_PER_GROUP = 2


@dataclass
class Split:
    """One material's calibration (``train``) and held-out (``test``) frames and how they were split."""

    train: ForceDataset
    test: ForceDataset
    rule: str

    def datasets(self) -> dict[str, ForceDataset]:
        return {"train": self.train, "test": self.test}


def _stem(dataset: ForceDataset) -> str:
    return Path(dataset.source).stem.lower()


def load_splits(paths: Sequence[str | Path], quick: bool = False) -> dict[str, Split]:
    """Calibration/test splits per material, sorted by material (see the module docstring).

    With ``quick``, only the first material and ``QUICK_FRAMES_PER_GROUP`` frames per group and split are
    kept.
    """
    by_material: dict[str, list[ForceDataset]] = {}
    for d in read_datasets(list(paths)):
        for f in d.frames:  # C-ordered copies, as read back from predictions.h5: bit-identical sums
            f.forces = np.array(f.forces, dtype=np.float64, order="C")
        by_material.setdefault(d.material, []).append(d)
    splits: dict[str, Split] = {}
    for material, sets in sorted(by_material.items()):
        train = [d for d in sets if _stem(d) in TRAIN_STEMS]
        test = [d for d in sets if _stem(d) in TEST_STEMS]
        if len(train) == 1 and len(test) == 1 and len(sets) == 2:
            splits[material] = Split(train[0], test[0], "calibration: training file; test: test file")
        elif len(sets) == 1 and len(sets[0]) >= 2:
            d = sets[0]
            k = max(1, math.ceil(CALIBRATION_FRACTION * len(d)))
            rule = f"file order: first {k} of {len(d)} frames calibrate, the rest test"
            splits[material] = Split(d.subset(range(k)), d.subset(range(k, len(d))), rule)
        else:
            raise DataError(
                f"cannot split the data of material {material!r} ({', '.join(d.source for d in sets)}) "
                "into calibration and test sets. Fix: give one file per material (split by file order) "
                "or an mlearn folder with training.json and test.json."
            )
    if quick:
        material, split = next(iter(splits.items()))
        splits = {material: Split(_few_per_group(split.train), _few_per_group(split.test), split.rule)}
    return splits


def _few_per_group(d: ForceDataset) -> ForceDataset:
    seen: dict[str, int] = {}
    keep = []
    for i, f in enumerate(d.frames):
        if seen.get(f.group, 0) < QUICK_FRAMES_PER_GROUP:
            seen[f.group] = seen.get(f.group, 0) + 1
            keep.append(i)
    return d.subset(keep)
