"""Energy-strain curvature, a property of ``bench properties``.

Curvature d²(E/N)/dε² (eV/atom, :mod:`softcalc.properties.strain`) of each strain mode ("mode k, strain x"
frames, plus the ground-state frame at ε = 0), the ratio model / DFT per mode, and the mean ratio over
the normal and over the shear modes (kind read from the cells). A mode with fewer than three strains is
skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from softcalc.bench.properties.candidates import PLOT_SERIES
from softcalc.bench.properties.registry import Property, Source
from softcalc.bench.report import fmt_number, markdown_table
from softcalc.properties import QuadraticFit, StrainCurve, strain_curves
from softcalc.properties.layout import (
    KINDS,
    curvature_fits,
    curvature_ratio,
    mean_curvature_ratios,
    strain_energy_curves,
)

if TYPE_CHECKING:
    import h5py

    from softcalc.bench.properties.materials import Material

@dataclass(frozen=True)
class StrainValues:
    """Energy-strain curves of one source and their fits.

    Attributes:
        curves: mode -> (strains, E/N in eV/atom), the ground state included at ε = 0 where it applies.
        fits: mode -> quadratic fit of its curve.
    """

    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    fits: dict[str, QuadraticFit]


def curves(
    material: Material, modes: dict[str, StrainCurve], per_atom: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mode -> (strains, E/N in eV/atom) from one energy per atom (eV/atom) per frame."""
    return strain_energy_curves(material.frames, modes, material.ground_state, per_atom)


def per_atom_energies(material: Material, source: Source) -> np.ndarray:
    """Energy per atom (eV/atom) of every frame of ``material`` from ``source``."""
    return np.asarray(source.energies, dtype=float) / np.array([len(f.atoms) for f in material.frames])


def _ratio_pair(record: dict[str, Any]) -> str:
    means = record["mean_ratio"]
    return f"{fmt_number(means['normal'], 2)} / {fmt_number(means['shear'], 2)}"


def modes_table(summary: dict[str, Any]) -> str:
    """Curvature d²(E/N)/dε² per mode (eV/atom): DFT, bare model, ratio."""
    columns = ["model", "material", "mode", "kind", "points", "DFT curvature", "model curvature", "ratio"]
    rows = []
    for model, per_material in summary["results"].items():
        for material, r in per_material.items():
            dft = summary["data"][material].get("strain", {})
            for mode, m in r["corrections"]["bare"].get("strain", {}).get("modes", {}).items():
                rows.append(
                    [
                        model,
                        material,
                        mode,
                        m["kind"],
                        str(dft[mode]["n_points"]),
                        fmt_number(dft[mode]["curvature"]),
                        fmt_number(m["curvature"]),
                        fmt_number(m["ratio"]),
                    ]
                )
    return markdown_table(columns, rows)


def curvature_ratio_plot(path: Path, summary: dict[str, Any]) -> None:
    """Energy-strain curvature ratio model / DFT per material and mode, one panel per model, bare and
    corrected; the dashed line is DFT's curvature (ratio 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softcalc.plots import save_figure

    results = summary["results"]
    labels = list(
        dict.fromkeys(
            f"{material} {mode}"
            for per_material in results.values()
            for material, r in per_material.items()
            for mode in r["corrections"]["bare"].get("strain", {}).get("modes", {})
        )
    )
    width = max(6.0, 0.35 * len(labels))
    fig, axes = plt.subplots(len(results), 1, figsize=(width, 3.2 * len(results)), squeeze=False)
    x = np.arange(len(labels))
    bar = 0.8 / len(PLOT_SERIES)
    for ax, (model, per_material) in zip(axes[:, 0], results.items()):
        for k, series in enumerate(PLOT_SERIES):
            ratios = dict.fromkeys(labels, np.nan)
            for material, r in per_material.items():
                for mode, m in r["corrections"].get(series, {}).get("strain", {}).get("modes", {}).items():
                    ratios[f"{material} {mode}"] = np.nan if m["ratio"] is None else m["ratio"]
            ax.bar(x + (k - (len(PLOT_SERIES) - 1) / 2) * bar, list(ratios.values()), bar, label=series)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        ax.set(ylabel="curvature ratio model / DFT", title=model)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path, dpi=120)


class StrainCurvature(Property):
    """Curvature ratio model / DFT per strain mode and its mean per kind (see the module docstring)."""

    name = "strain"
    needs_energies = True
    note = "curvature ratio = model/DFT, mean over the normal and the shear strain modes"
    headline_columns = ("curvature ratio normal", "shear")
    correction_columns = ("curvature ratio normal / shear",)

    def locate(self, material: Material) -> dict[str, StrainCurve] | None:
        """The strain modes that a curvature can be fitted to."""
        return strain_curves(material.frames, material.ground_state, material.skipped) or None

    def values(self, material: Material, located: dict[str, StrainCurve], source: Source) -> StrainValues:
        strain = curves(material, located, per_atom_energies(material, source))
        return StrainValues(strain, curvature_fits(strain))

    def dft_summary(
        self, material: Material, located: dict[str, StrainCurve], dft: StrainValues
    ) -> dict[str, Any]:
        return {
            mode: {
                "kind": located[mode].kind,
                "n_points": fit.n_points,
                "n_strains": fit.n_strains,
                "with_ground_state": located[mode].with_bulk,
                "curvature": fit.curvature,
            }
            for mode, fit in dft.fits.items()
        }

    def summary(
        self, material: Material, located: dict[str, StrainCurve], dft: StrainValues, model: StrainValues
    ) -> dict[str, Any]:
        """Curvature ratio model / DFT per mode; the mean ratio per kind (normal, shear) and over all."""
        modes = {
            mode: {
                "kind": located[mode].kind,
                "curvature": fit.curvature,
                "ratio": curvature_ratio(fit, dft.fits[mode]),
            }
            for mode, fit in model.fits.items()
        }
        return {"modes": modes, "mean_ratio": mean_curvature_ratios(located, dft.fits, model.fits)}

    def store(self, group: h5py.Group, values: StrainValues) -> None:
        for mode, (strains, energies) in values.curves.items():
            group[f"modes/{mode}/strain"], group[f"modes/{mode}/energy_per_atom"] = strains, energies

    def headline(self, record: dict[str, Any] | None) -> dict[str, Any]:
        means = record["mean_ratio"] if record else {}
        return {f"curvature_{k}": means.get(k) for k in KINDS}

    def headline_cells(self, row: dict[str, Any]) -> list[str]:
        return [fmt_number(row["curvature_normal"]), fmt_number(row["curvature_shear"])]

    def correction_cells(self, record: dict[str, Any] | None) -> list[str]:
        return [_ratio_pair(record) if record else "—"]

    def detail_section(self, summary: dict[str, Any]) -> tuple[str, str]:
        return "### Energy-strain curvature per mode (bare, eV/atom)", modes_table(summary)

    def plot(self, out: Path, summary: dict[str, Any]) -> None:
        curvature_ratio_plot(out / "curvature_ratio.png", summary)
