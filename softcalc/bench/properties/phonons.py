"""Phonons, a property of ``bench properties``, for a material whose phonopy force set is given.

Force-set slope, frequency slope, frequency MAE (THz) and max-frequency ratio of the model with each
correction against the DFT force set, through :func:`softcalc.phonons.comparison.compare_phonons` (the
model is evaluated on the set's displaced supercells; the DFT side is the set itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from softcalc.bench.properties.registry import Property, Source
from softcalc.bench.report import fmt_number
from softcalc.phonons.comparison import PhononSet, compare_phonons

if TYPE_CHECKING:
    from softcalc.bench.properties.materials import Material

METRICS = ("force_set_slope", "freq_slope", "freq_mae_thz", "max_freq_ratio")


class PhononFrequencies(Property):
    """Phonon metrics of the model vs the material's DFT force set (see the module docstring)."""

    name = "phonons"
    headline_columns = ("ω MAE (THz)",)
    correction_columns = ("ω MAE (THz)",)

    def locate(self, material: Material) -> PhononSet | None:
        """The material's phonopy force set (one without lists the ``phonons`` correction as skipped)."""
        return material.phonons

    def values(self, material: Material, located: PhononSet, source: Source) -> dict[str, Any] | None:
        """The comparison's metrics for a model; None for DFT (the reference itself)."""
        if source.calc is None:
            return None
        return compare_phonons(source.calc, located, model=source.model).metrics.as_dict()

    def summary(
        self, material: Material, located: PhononSet, dft: None, model: dict[str, Any]
    ) -> dict[str, Any]:
        return {k: model[k] for k in METRICS}

    def headline(self, record: dict[str, Any] | None) -> dict[str, Any]:
        return {"freq_mae_thz": record["freq_mae_thz"] if record else None}

    def headline_cells(self, row: dict[str, Any]) -> list[str]:
        return [fmt_number(row["freq_mae_thz"])]

    def correction_cells(self, record: dict[str, Any] | None) -> list[str]:
        return [fmt_number(record["freq_mae_thz"] if record else None)]
