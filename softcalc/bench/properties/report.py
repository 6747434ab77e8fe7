"""The markdown report of ``softcalc bench properties``: its tables, from ``summary.json`` alone.

Tables: the bare models (each property's headline columns), every correction (λ and each property's
columns), each property's pooled table, the cross-data table (rows: what λ was fitted on,
:data:`CROSS_DATA`), each property's details, and what was skipped and why. Numbers: γ in eV/Å², forces in
eV/Å, frequencies in THz, ratios dimensionless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from softcalc.bench.properties.registry import registered_properties
from softcalc.bench.report import fmt_number, markdown_table

#: rows of the cross-data table: what λ was fitted on
CROSS_DATA = ("bare", "forces:AIMD-NVT", "energy:Elastic", "phonons")


def headline_table(summary: dict[str, Any]) -> str:
    """The bare models: each property's headline columns."""
    props = registered_properties()
    columns = ["model", "material", *(c for p in props for c in p.headline_columns)]
    rows = [
        [r["model"], r["material"], *(cell for p in props for cell in p.headline_cells(r))]
        for r in summary["headline"]
    ]
    return markdown_table(columns, rows)


def corrections_table(summary: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    """Every correction (or those in ``keys``): λ and each property's columns."""
    props = registered_properties()
    columns = ["model", "material", "λ fitted on", "λ", *(c for p in props for c in p.correction_columns)]
    rows = [
        [
            model,
            material,
            key,
            fmt_number(c.get("scale")),
            *(x for p in props for x in p.correction_cells(c.get(p.name))),
        ]
        for model, per_material in summary["results"].items()
        for material, r in per_material.items()
        for key, c in r["corrections"].items()
        if "skipped" not in c and (keys is None or key in keys)
    ]
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
    props = registered_properties()
    notes = "; ".join(p.note for p in props if p.note)
    pooled = [s for p in props if (s := p.pooled_section(summary)) is not None]
    details = [s for p in props if (s := p.detail_section(summary)) is not None]
    sections = [
        (f"### Bare models ({notes})", headline_table(summary)),
        ("### Corrections", corrections_table(summary)),
        *pooled,
        ("### Cross-data: what λ is fitted on vs what it fixes", corrections_table(summary, CROSS_DATA)),
        *details,
        ("### Skipped", skipped_table(summary)),
    ]
    return "\n\n".join(text for section in sections for text in section) + "\n"
