"""PNG plots of the softening benchmark: force parity per model, test error vs calibration frames."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from softcalc.bench.predictions import Split
from softcalc.bench.stored import StoredForces
from softcalc.evaluation import compare_forces
from softcalc.model import ModelCalculator
from softcalc.plots import parity_plot, save_figure


def file_label(name: str) -> str:
    """A model name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def softening_parity_plots(out: Path, splits: dict[str, Split], stores: dict[str, StoredForces]) -> None:
    """``parity_<model>.png``: model vs DFT test forces, one panel per material, with the fitted slope s."""
    for name, store in stores.items():
        calc = ModelCalculator(store)
        panels = []
        for material, split in splits.items():
            model, dft = compare_forces(calc, split.test).pooled()
            panels.append((f"{material} (test)", model, dft))
        parity_plot(out / f"parity_{file_label(name)}.png", panels, title=name)


def learning_curve_plot(path: Path, results: dict[str, dict[str, Any]]) -> None:
    """Test MAE vs number of calibration frames, one panel per material, one colour per model.

    Solid: the first K frames in file order; markers with error bars: mean ± std over random draws;
    dashed: the bare model.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    materials = list(dict.fromkeys(m for r in results.values() for m in r))
    fig, axes = plt.subplots(1, len(materials), figsize=(4.2 * len(materials), 3.8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, material in zip(axes[0], materials):
        for c, (model, per_material) in enumerate(results.items()):
            r = per_material.get(material)
            if r is None:
                continue
            colour = colours[c % len(colours)]
            file_order = [p for p in r["learning_curve"]["file-order"] if "failed" not in p]
            random = [p for p in r["learning_curve"]["random"] if p["mae_after_mean"] is not None]
            ax.plot(
                [p["frames"] for p in file_order],
                [p["mae_after"] for p in file_order],
                "-",
                color=colour,
                label=f"{model} (file order)",
            )
            ax.errorbar(
                [p["frames"] for p in random],
                [p["mae_after_mean"] for p in random],
                yerr=[p["mae_after_std"] for p in random],
                fmt="o",
                color=colour,
                capsize=3,
                label=f"{model} (random)",
            )
            ax.axhline(r["test"]["mae"], ls="--", color=colour, lw=0.8)
        ax.set(xscale="log", xlabel="calibration frames", ylabel="test force MAE (eV/Å)", title=material)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path, dpi=120)


#: corrections shown beside the bare model in the properties plots (when fitted)
PROPERTY_SERIES = ("bare", "forces", "energy")


def surface_parity_plot(path: Path, summary: dict[str, Any]) -> None:
    """γ model vs γ DFT (eV/Å²), one panel per model, bare and corrected, slopes in the legend (paper
    Fig. 2a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    results = summary["results"]
    fig, axes = plt.subplots(1, len(results), figsize=(4.4 * len(results), 4.4), squeeze=False)
    for ax, (model, per_material) in zip(axes[0], results.items()):
        top = 0.0
        for series in PROPERTY_SERIES:
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


def curvature_ratio_plot(path: Path, summary: dict[str, Any]) -> None:
    """Energy-strain curvature ratio model / DFT per material and mode, one panel per model, bare and
    corrected; the dashed line is DFT's curvature (ratio 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    bar = 0.8 / len(PROPERTY_SERIES)
    for ax, (model, per_material) in zip(axes[:, 0], results.items()):
        for k, series in enumerate(PROPERTY_SERIES):
            ratios = dict.fromkeys(labels, np.nan)
            for material, r in per_material.items():
                for mode, m in r["corrections"].get(series, {}).get("strain", {}).get("modes", {}).items():
                    ratios[f"{material} {mode}"] = np.nan if m["ratio"] is None else m["ratio"]
            ax.bar(x + (k - (len(PROPERTY_SERIES) - 1) / 2) * bar, list(ratios.values()), bar, label=series)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        ax.set(ylabel="curvature ratio model / DFT", title=model)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path, dpi=120)
