"""Held-out forces, a property of ``bench properties``.

Softening scale s, λ*, MAE (eV/Å) and the other force metrics of :func:`softcalc.metrics.force_metrics`
on the material's test split, model vs DFT, for every correction. Every material has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from softcalc.bench.properties.registry import Property, Source, finite
from softcalc.bench.report import fmt_number
from softcalc.metrics import force_metrics

if TYPE_CHECKING:
    import h5py

    from softcalc.bench.properties.materials import Material


class HeldoutForces(Property):
    """Force metrics on the test split (see the module docstring); the values are the test forces."""

    name = "heldout_forces"
    note = "forces on the test split, eV/Å"
    headline_columns = ("s (test)", "force MAE")
    correction_columns = ("force MAE (test)",)

    def locate(self, material: Material) -> slice:
        """The test frames."""
        return material.test_slice

    def values(self, material: Material, located: slice, source: Source) -> np.ndarray:
        """Forces of the test frames, concatenated ((N, 3) eV/Å)."""
        return np.concatenate(source.forces[located])

    def summary(
        self, material: Material, located: slice, dft: np.ndarray, model: np.ndarray
    ) -> dict[str, Any]:
        metrics = force_metrics(model, dft, n_frames=len(material.frames[located])).as_dict()
        return {k: finite(v) if isinstance(v, float) else v for k, v in metrics.items()}

    def store(self, group: h5py.Group, values: np.ndarray) -> None:
        group["test_forces"] = values

    def headline(self, record: dict[str, Any] | None) -> dict[str, Any]:
        assert record is not None  # every material has held-out forces
        return {"softening_scale": record["softening_scale"], "force_mae": record["mae"]}

    def headline_cells(self, row: dict[str, Any]) -> list[str]:
        return [fmt_number(row["softening_scale"]), fmt_number(row["force_mae"], 4)]

    def correction_cells(self, record: dict[str, Any] | None) -> list[str]:
        assert record is not None
        return [fmt_number(record["mae"], 4)]
