"""PNG plots of the softening benchmark: force parity per model, test error vs calibration frames."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from softcalc.bench.splits import Split
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
