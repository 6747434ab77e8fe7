"""Markdown tables of a softening-benchmark summary (for benchmarks/README.md and summary.md)."""

from __future__ import annotations

from typing import Any


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def headline_table(summary: dict[str, Any]) -> str:
    """s, λ*, MAE, cMAE on the test split; test MAE after the one-shot and all-frame corrections (eV/Å)."""
    lines = [
        "| model | material | s | λ* | MAE | cMAE | 1-shot λ (largest force) | MAE 1-shot | MAE 1-shot "
        "(first frame) | λ (all frames) | MAE (all frames) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["headline"]:
        worse = "" if r["one_shot_helps"] else " ✗"
        lines.append(
            f"| {r['model']} | {r['material']} | {_f(r['softening_scale'])} | {_f(r['scale_opt'])} | "
            f"{_f(r['mae'], 4)} | {_f(r['cmae'], 4)} | {_f(r['one_shot_scale'])} | "
            f"{_f(r['one_shot_mae'], 4)}{worse} | {_f(r['first_frame_mae'], 4)} | "
            f"{_f(r['all_frames_scale'])} | {_f(r['all_frames_mae'], 4)} |"
        )
    return "\n".join(lines)


def group_table(summary: dict[str, Any]) -> str:
    """Test-split s and MAE per structure group, and the MAE after the group's own λ."""
    lines = [
        "| model | material | group | frames | s | MAE | λ (group) | MAE (group λ) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, materials in summary["results"].items():
        for material, r in materials.items():
            for group, m in r["test"]["by_group"].items():
                cal = r["by_group"].get(group, {})
                lines.append(
                    f"| {model} | {material} | {group} | {m['n_frames']} | {_f(m['softening_scale'])} | "
                    f"{_f(m['mae'], 4)} | {_f(cal.get('scale'))} | {_f(cal.get('mae_after'), 4)} |"
                )
    return "\n".join(lines)


def learning_curve_table(summary: dict[str, Any]) -> str:
    """Test MAE vs calibration frames: first K in file order, and mean ± std over random draws."""
    lines = [
        "| model | material | K | λ (file order) | MAE (file order) | λ (random) | MAE (random) |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, materials in summary["results"].items():
        for material, r in materials.items():
            curve = r["learning_curve"]
            for fo, rnd in zip(curve["file-order"], curve["random"]):
                rnd_lam = f"{_f(rnd['scale_mean'])} ± {_f(rnd['scale_std'])}"
                rnd_mae = f"{_f(rnd['mae_after_mean'], 4)} ± {_f(rnd['mae_after_std'], 4)}"
                if rnd["n_failed"]:
                    rnd_mae += f" ({rnd['n_failed']} draw(s) without force)"
                lines.append(
                    f"| {model} | {material} | {fo['frames']} | {_f(fo.get('scale'))} | "
                    f"{_f(fo.get('mae_after'), 4)} | {rnd_lam} | {rnd_mae} |"
                )
    return "\n".join(lines)


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
