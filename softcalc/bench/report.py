"""Markdown tables of a softening-benchmark summary (for benchmarks/README.md and summary.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any


def fmt_number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals for a table cell; "—" for None."""
    return "—" if value is None else f"{value:.{digits}f}"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the header row, its separator, then one line per row of cells."""
    lines = ["| " + " | ".join(cells) + " |" for cells in [columns, *rows]]
    lines.insert(1, "|" + "---|" * len(columns))
    return "\n".join(lines)


def _per_material(summary: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(model, material, result) of every model and material of the summary."""
    for model, materials in summary["results"].items():
        for material, r in materials.items():
            yield model, material, r


def headline_table(summary: dict[str, Any]) -> str:
    """s, λ*, MAE, cMAE on the test split; test MAE after the one-shot and all-frame corrections (eV/Å)."""
    columns = ["model", "material", "s", "λ*", "MAE", "cMAE", "1-shot λ (largest force)", "MAE 1-shot",
               "MAE 1-shot (first frame)", "λ (all frames)", "MAE (all frames)"]
    rows = []
    for r in summary["headline"]:
        worse = "" if r["one_shot_helps"] else " ✗"
        rows.append([r["model"], r["material"], fmt_number(r["softening_scale"]), fmt_number(r["scale_opt"]),
                     fmt_number(r["mae"], 4), fmt_number(r["cmae"], 4), fmt_number(r["one_shot_scale"]),
                     fmt_number(r["one_shot_mae"], 4) + worse, fmt_number(r["first_frame_mae"], 4),
                     fmt_number(r["all_frames_scale"]), fmt_number(r["all_frames_mae"], 4)])
    return markdown_table(columns, rows)


def group_table(summary: dict[str, Any]) -> str:
    """Test-split s and MAE per structure group, and the MAE after the group's own λ."""
    columns = ["model", "material", "group", "frames", "s", "MAE", "λ (group)", "MAE (group λ)"]
    rows = []
    for model, material, r in _per_material(summary):
        for group, m in r["test"]["by_group"].items():
            cal = r["by_group"].get(group, {})
            rows.append([model, material, group, str(m["n_frames"]), fmt_number(m["softening_scale"]),
                         fmt_number(m["mae"], 4), fmt_number(cal.get("scale")),
                         fmt_number(cal.get("mae_after"), 4)])
    return markdown_table(columns, rows)


def learning_curve_table(summary: dict[str, Any]) -> str:
    """Test MAE vs calibration frames: first K in file order, and mean ± std over random draws."""
    columns = ["model", "material", "K", "λ (file order)", "MAE (file order)", "λ (random)", "MAE (random)"]
    rows = []
    for model, material, r in _per_material(summary):
        curve = r["learning_curve"]
        for fo, rnd in zip(curve["file-order"], curve["random"]):
            rnd_lam = f"{fmt_number(rnd['scale_mean'])} ± {fmt_number(rnd['scale_std'])}"
            rnd_mae = f"{fmt_number(rnd['mae_after_mean'], 4)} ± {fmt_number(rnd['mae_after_std'], 4)}"
            if rnd["n_failed"]:
                rnd_mae += f" ({rnd['n_failed']} draw(s) without force)"
            rows.append([model, material, str(fo["frames"]), fmt_number(fo.get("scale")),
                         fmt_number(fo.get("mae_after"), 4), rnd_lam, rnd_mae])
    return markdown_table(columns, rows)


def markdown(summary: dict[str, Any]) -> str:
    """All tables, with headings."""
    return (
        "\n\n".join(
            [
                "### Headline (test split, eV/Å; ✗: the one-shot correction makes test forces worse)",
                headline_table(summary),
                "### Per structure group (test split)",
                group_table(summary),
                "### Learning curve (test MAE after λ fitted on K calibration frames)",
                learning_curve_table(summary),
            ]
        )
        + "\n"
    )
