"""The markdown report of ``softcalc bench properties``: its tables, from ``summary.json`` alone.

Tables: the bare models (force slope and MAE, surface-energy slope, MAE and slabs underestimated,
curvature ratios normal / shear, phonon MAE), every correction, the cross-data table (rows: what λ was
fitted on, :data:`CROSS_DATA`), surfaces pooled over materials, every strain mode, and what was skipped
and why. Numbers: γ in eV/Å², forces in eV/Å, frequencies in THz, ratios dimensionless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from softcalc.bench.report import fmt_number, markdown_table

#: rows of the cross-data table: what λ was fitted on
CROSS_DATA = ("bare", "forces:AIMD-NVT", "energy:Elastic", "phonons")


def _ratio_pair(strain: dict[str, Any]) -> str:
    means = strain.get("mean_ratio", {})
    return f"{fmt_number(means.get('normal'), 2)} / {fmt_number(means.get('shear'), 2)}" if means else "—"


def _rows(summary: dict[str, Any], keys: Sequence[str] | None = None) -> list[list[str]]:
    rows = []
    for model, per_material in summary["results"].items():
        for material, r in per_material.items():
            for key, c in r["corrections"].items():
                if "skipped" in c or (keys is not None and key not in keys):
                    continue
                surfaces, strain = c.get("surfaces", {}), c.get("strain", {})
                under = f"{surfaces['n_under']}/{surfaces['n_slabs']}" if surfaces else "—"
                rows.append(
                    [
                        model,
                        material,
                        key,
                        fmt_number(c.get("scale")),
                        fmt_number(c["heldout_forces"]["mae"], 4),
                        fmt_number(surfaces.get("slope")),
                        fmt_number(surfaces.get("mae"), 4),
                        under,
                        _ratio_pair(strain),
                        fmt_number(c.get("phonons", {}).get("freq_mae_thz")),
                    ]
                )
    return rows


def headline_table(summary: dict[str, Any]) -> str:
    """The bare models: s, force MAE (test), γ slope/MAE/under, curvature ratios, ω MAE."""
    columns = [
        "model",
        "material",
        "s (test)",
        "force MAE",
        "γ slope",
        "γ MAE (eV/Å²)",
        "γ under",
        "curvature ratio normal",
        "shear",
        "ω MAE (THz)",
    ]
    rows = [
        [
            r["model"],
            r["material"],
            fmt_number(r["softening_scale"]),
            fmt_number(r["force_mae"], 4),
            fmt_number(r["surface_slope"]),
            fmt_number(r["surface_mae"], 4),
            "—" if r["n_slabs"] is None else f"{r['surface_under']}/{r['n_slabs']}",
            fmt_number(r["curvature_normal"]),
            fmt_number(r["curvature_shear"]),
            fmt_number(r["freq_mae_thz"]),
        ]
        for r in summary["headline"]
    ]
    return markdown_table(columns, rows)


def corrections_table(summary: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    """Every correction (or those in ``keys``): λ, held-out force MAE, γ, curvature ratios, ω MAE."""
    columns = [
        "model",
        "material",
        "λ fitted on",
        "λ",
        "force MAE (test)",
        "γ slope",
        "γ MAE",
        "γ under",
        "curvature ratio normal / shear",
        "ω MAE (THz)",
    ]
    return markdown_table(columns, _rows(summary, keys))


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


def skipped_table(summary: dict[str, Any]) -> str:
    """What the data could not give (properties, phonon sets, corrections), and why."""
    rows = [
        [material, what, why] for material, d in summary["data"].items() for what, why in d["skipped"].items()
    ]
    rows += [[material, "phonon set", why] for material, why in summary["phonon_sets_skipped"].items()]
    rows += [
        [material, f"{model}: correction {key}", c["skipped"]]
        for model, per_material in summary["results"].items()
        for material, r in per_material.items()
        for key, c in r["corrections"].items()
        if "skipped" in c
    ]
    return markdown_table(["material", "what", "why skipped"], rows) if rows else "nothing skipped"


def markdown(summary: dict[str, Any]) -> str:
    """All tables, with headings."""
    return (
        "\n\n".join(
            [
                "### Bare models (forces on the test split, eV/Å; γ eV/Å²; curvature ratio = model/DFT, "
                "mean over the normal and the shear strain modes)",
                headline_table(summary),
                "### Corrections",
                corrections_table(summary),
                "### Surface energies pooled over materials",
                pooled_surfaces_table(summary),
                "### Cross-data: what λ is fitted on vs what it fixes",
                corrections_table(summary, CROSS_DATA),
                "### Energy-strain curvature per mode (bare, eV/atom)",
                modes_table(summary),
                "### Skipped",
                skipped_table(summary),
            ]
        )
        + "\n"
    )
