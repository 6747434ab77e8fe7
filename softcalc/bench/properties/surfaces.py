"""Surface energies, a property of ``bench properties``.

γ = (E_slab − n·ε_bulk)/(2A) (eV/Å², :mod:`softcalc.properties.surfaces`) of every frame of a surface
group, on the DFT geometry (unrelaxed), DFT and model each with its own ε_bulk: the energy per atom of the
ground-state frame, else the zero-strain value of the joint quadratic fit of the strain modes. Reported:
slope through the origin of γ_model vs γ_DFT, MAE, number of slabs underestimated; pooled over materials
too (paper Fig. 2a). A slab without vacuum or a non-stoichiometric slab is skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from softcalc.bench.properties.candidates import PLOT_SERIES
from softcalc.bench.properties.registry import Property, Source
from softcalc.bench.properties.strain import curves, per_atom_energies
from softcalc.bench.report import fmt_number, markdown_table
from softcalc.metrics import mae, softening_scale
from softcalc.properties import SlabGeometry, StrainCurve, find_slabs
from softcalc.properties.layout import bulk_energy, slab_bulk_reference, surface_energies

if TYPE_CHECKING:
    import h5py

    from softcalc.bench.properties.materials import Material


@dataclass(frozen=True)
class SurfaceFrames:
    """The frames of a material that give surface energies.

    Attributes:
        slabs: frame index -> slab geometry, for every slab that gives a surface energy.
        modes: the strain modes whose zero-strain fit gives ε_bulk where there is no ground-state frame.
    """

    slabs: dict[int, SlabGeometry]
    modes: dict[str, StrainCurve]


@dataclass(frozen=True)
class SurfaceValues:
    """Surface energies of one source: ε_bulk (eV/atom) and γ (eV/Å²), one per slab, in slab order."""

    bulk_energy: float
    gamma: np.ndarray


def _bulk_source(material: Material, located: SurfaceFrames) -> str:
    if material.ground_state is not None:
        return f"ground-state frame {material.frames[material.ground_state].label!r}"
    return f"zero-strain value of the joint quadratic fit of {', '.join(located.modes)}"


def pooled_surfaces(
    data: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per model and correction, γ over the slabs of every material it was evaluated on (paper Fig. 2a):
    slope through the origin, MAE (eV/Å²), slabs underestimated."""
    out: dict[str, dict[str, Any]] = {}
    for model, per_material in results.items():
        pooled: dict[str, tuple[list[float], list[float], list[str]]] = {}
        for material, r in per_material.items():
            for key, c in r["corrections"].items():
                if "surfaces" in c:
                    dft, pred, materials = pooled.setdefault(key, ([], [], []))
                    dft += [s["gamma"] for s in data[material]["surfaces"]["slabs"]]
                    pred += c["surfaces"]["gamma"]
                    materials.append(material)
        out[model] = {
            key: {
                "materials": materials,
                "n_slabs": len(dft),
                "slope": softening_scale(np.array(pred), np.array(dft)),
                "mae": mae(np.array(pred), np.array(dft)),
                "n_under": int(np.sum(np.array(pred) < np.array(dft))),
            }
            for key, (dft, pred, materials) in pooled.items()
        }
    return out


def pooled_surfaces_table(summary: dict[str, Any]) -> str:
    """γ pooled over materials per model and correction: slabs, slope, MAE (eV/Å²), underestimated."""
    columns = ["model", "λ fitted on", "materials", "slabs", "γ slope", "γ MAE (eV/Å²)", "γ under"]
    rows = [
        [model, key, ", ".join(p["materials"]), str(p["n_slabs"]), fmt_number(p["slope"]),
         fmt_number(p["mae"], 4), f"{p['n_under']}/{p['n_slabs']}"]
        for model, per_key in summary["pooled_surfaces"].items()
        for key, p in per_key.items()
    ]  # fmt: skip
    return markdown_table(columns, rows)


def surface_parity_plot(path: Path, summary: dict[str, Any]) -> None:
    """γ model vs γ DFT (eV/Å²), one panel per model, bare and corrected, slopes in the legend (paper
    Fig. 2a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softcalc.plots import save_figure

    results = summary["results"]
    fig, axes = plt.subplots(1, len(results), figsize=(4.4 * len(results), 4.4), squeeze=False)
    for ax, (model, per_material) in zip(axes[0], results.items()):
        top = 0.0
        for series in PLOT_SERIES:
            dft, pred = [], []
            for material, r in per_material.items():
                surfaces = r["corrections"].get(series, {}).get("surfaces")
                if surfaces:
                    dft += [s["gamma"] for s in summary["data"][material]["surfaces"]["slabs"]]
                    pred += surfaces["gamma"]
            if not dft:
                continue
            d, p = np.array(dft), np.array(pred)
            slope = float(p @ d / (d @ d))
            ax.scatter(d, p, s=14, alpha=0.7, label=f"{series}: slope {slope:.2f}")
            top = max(top, float(d.max()), float(p.max()))
        if not top:
            ax.set_axis_off()
            ax.set_title(f"{model}: no surface energies")
            continue
        top *= 1.08
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        ax.set(xlim=(0, top), ylim=(0, top), aspect="equal", title=model)
        ax.set(xlabel="DFT surface energy (eV/Å²)", ylabel="model surface energy (eV/Å²)")
        ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path, dpi=120)


def _under(n_under: int | None, n_slabs: int | None) -> str:
    return "—" if n_slabs is None else f"{n_under}/{n_slabs}"


class SurfaceEnergies(Property):
    """γ slope (model vs DFT), MAE and slabs underestimated (see the module docstring)."""

    name = "surfaces"
    needs_energies = True
    after = ("strain",)
    note = "γ eV/Å²"
    headline_columns = ("γ slope", "γ MAE (eV/Å²)", "γ under")
    correction_columns = ("γ slope", "γ MAE", "γ under")

    def locate(self, material: Material) -> SurfaceFrames | None:
        """The slabs that give γ; the bulk reference is the ground state, else the strained cells."""
        modes: dict[str, StrainCurve] = material.located.get("strain", {})
        bulk = slab_bulk_reference(material.frames, material.ground_state, modes)
        slabs = find_slabs(material.frames, bulk, material.skipped)
        return SurfaceFrames(slabs, modes) if slabs else None

    def values(self, material: Material, located: SurfaceFrames, source: Source) -> SurfaceValues:
        per_atom = per_atom_energies(material, source)
        bulk = bulk_energy(material.ground_state, per_atom, curves(material, located.modes, per_atom))
        return SurfaceValues(bulk, surface_energies(material.frames, located.slabs, source.energies, bulk))

    def dft_summary(self, material: Material, located: SurfaceFrames, dft: SurfaceValues) -> dict[str, Any]:
        frames = material.frames
        return {
            "bulk_reference": _bulk_source(material, located),
            "bulk_energy": dft.bulk_energy,
            "slabs": [
                {
                    "label": frames[i].label,
                    "n_atoms": len(frames[i].atoms),
                    "vacuum_axis": g.axis,
                    "area": g.area,
                    "vacuum": g.vacuum,
                    "gamma": float(gamma),
                }
                for (i, g), gamma in zip(located.slabs.items(), dft.gamma)
            ],
        }

    def summary(
        self, material: Material, located: SurfaceFrames, dft: SurfaceValues, model: SurfaceValues
    ) -> dict[str, Any]:
        """γ slope through the origin (model vs DFT), MAE (eV/Å²), slabs underestimated, model γ per slab."""
        return {
            "n_slabs": len(dft.gamma),
            "slope": softening_scale(model.gamma, dft.gamma),
            "mae": mae(model.gamma, dft.gamma),
            "n_under": int(np.sum(model.gamma < dft.gamma)),
            "bulk_energy": model.bulk_energy,
            "gamma": [float(g) for g in model.gamma],
        }

    def store_frames(self, group: h5py.Group, material: Material, located: SurfaceFrames) -> None:
        group["slab_frames"] = np.array(list(located.slabs), dtype=np.int64)

    def store(self, group: h5py.Group, values: SurfaceValues) -> None:
        group["gamma"] = values.gamma

    def headline(self, record: dict[str, Any] | None) -> dict[str, Any]:
        record = record or {}
        return {
            "surface_slope": record.get("slope"),
            "surface_mae": record.get("mae"),
            "surface_under": record.get("n_under"),
            "n_slabs": record.get("n_slabs"),
        }

    def headline_cells(self, row: dict[str, Any]) -> list[str]:
        return [
            fmt_number(row["surface_slope"]),
            fmt_number(row["surface_mae"], 4),
            _under(row["surface_under"], row["n_slabs"]),
        ]

    def correction_cells(self, record: dict[str, Any] | None) -> list[str]:
        record = record or {}
        return [
            fmt_number(record.get("slope")),
            fmt_number(record.get("mae"), 4),
            _under(record.get("n_under"), record.get("n_slabs")),
        ]

    def pool(self, data: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return pooled_surfaces(data, results)

    def pooled_section(self, summary: dict[str, Any]) -> tuple[str, str]:
        return "### Surface energies pooled over materials", pooled_surfaces_table(summary)

    def plot(self, out: Path, summary: dict[str, Any]) -> None:
        surface_parity_plot(out / "surface_parity.png", summary)
