"""Plots written as PNG (matplotlib, Agg backend), atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from softcalc.fileio import atomic_path


def parity_plot(
    path: str | Path,
    panels: list[tuple[str, np.ndarray, np.ndarray]],
    title: str = "",
    xlabel: str = "DFT force component (eV/Å)",
    ylabel: str = "model force component (eV/Å)",
) -> None:
    """Model vs reference scatter, one panel per ``(label, model, reference)``, with the fitted slope.

    The slope is the least-squares line through the origin of model vs reference (the softening
    scale for forces).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (label, model, ref) in zip(axes[0], panels):
        model, ref = np.ravel(model), np.ravel(ref)
        slope = float(model @ ref / (ref @ ref))
        lim = float(np.max(np.abs(np.concatenate([model, ref])))) * 1.05
        ax.scatter(ref, model, s=3, alpha=0.35, rasterized=True)
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="y = x")
        ax.plot([-lim, lim], [-slope * lim, slope * lim], "r-", lw=1.2, label=f"slope {slope:.3f}")
        mae = float(np.mean(np.abs(model - ref)))
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel=xlabel, ylabel=ylabel, aspect="equal")
        ax.set_title(f"{label}\nMAE {mae:.3f}")
        ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, path, dpi=120)


def save_figure(fig: object, path: str | Path, dpi: int = 130) -> None:
    """Lay out ``fig`` (a matplotlib Figure), write it as PNG atomically (a kill never leaves half a
    file) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
