"""Fine-tuning judged per regime and per property: which settings fix forces without breaking equilibrium.

For each model, mlearn material, K and variant, K frames of ``training.json`` are calibrated on (the
random draw of ``finetune_learning_curve.py``, or the first K of ``--order spread``, the default order of
fine-tuning) and judged on ``test.json``, which the tuning never sees:

- held-out force MAE (eV/Å), pooled and per structure group, bare and corrected;
- held-out energy-difference MAE (eV/atom);
- the properties of the frames the calibration did not see (``property_changes`` of
  :mod:`softcalc.calibration.properties` on the rest of ``training.json`` and all of ``test.json``; the
  held-out file alone has too few strains per mode and no bulk for its slabs): mean curvature ratio
  model / DFT over the normal and the shear strain modes and the surface-energy slope, bare and
  corrected (right value 1);
- the forgetting drifts of tuned weights (ground-state pressure of the tuned element, GPa; the largest
  energy drift on other chemistries, meV/atom), the training time and the verdict with its reasons.

Variants (``--variants``, names from :data:`VARIANTS`): ``scale`` (one λ on forces), ``finetune``
(the settings as given by ``FineTuneSettings()``), and named fine-tuning settings. Rows are appended to
``<out>/regimes.json`` as they finish, so an interrupted run continues where it stopped.

Usage:
    python benchmarks/finetune_regimes.py --models chgnet --materials Si,Ge,Li,Mo --ks 10 \
        --variants scale,naive,anchored --out bench_out/regimes
Results: ``<out>/regimes.json``, ``<out>/regimes.md`` (table), ``<out>/regimes.png`` (property ratios);
``--table`` rewrites the table and plot from the JSON.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from finetune_learning_curve import (  # the same random K frames as the learning curves
    draws,
    mlearn_cases,
    resumed_rows,
)

from softcalc import SoftCorrectedCalc
from softcalc.calibration.frames import select_frames
from softcalc.calibration.pipeline import calibrate
from softcalc.calibration.properties import property_changes, worse_properties
from softcalc.calibration.verdict import group_worse
from softcalc.data import ForceDataset
from softcalc.energies import EnergyComparison
from softcalc.evaluation import compare_sets
from softcalc.fileio import write_json
from softcalc.finetune.settings import FineTuneSettings
from softcalc.structure import structure_key

#: variant -> (method, frame selection, FineTuneSettings overrides): ``naive`` is the fine-tune of issue 12
#: (early stopping on the one validation frame of K = 10), ``finetune`` today's defaults
VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "scale": ("scale", "random", {}),
    "finetune": ("finetune", "random", {}),
    "naive": ("finetune", "random", {"min_validation_force_rms": 0.0}),
    "spread": ("finetune", "spread", {}),
    "spread-anchor10": ("finetune", "spread", {"anchor": 10.0}),
    "spread-anchor30": ("finetune", "spread", {"anchor": 30.0}),
    "spread-replay": ("finetune", "spread", {"replay": 0.3}),
    "spread-stress": ("finetune", "spread", {"preset": "stress"}),
    "spread-equitrain": ("finetune", "spread", {"preset": "equitrain"}),
    "spread-scale": ("scale", "spread", {}),
    "spread-e60": ("finetune", "spread", {"epochs": 60}),
    "spread-lr3e-3": ("finetune", "spread", {"lr": 3e-3}),
    "spread-b1": ("finetune", "spread", {"batch_size": 1}),
    "spread-f3": ("finetune", "spread", {"force_weight": 3.0}),
    "spread-e60-f3": ("finetune", "spread", {"epochs": 60, "force_weight": 3.0}),
}


def settings_for(overrides: dict[str, Any], seed: int) -> FineTuneSettings:
    """FineTuneSettings from a variant's overrides (``preset`` names a preset, the rest override it)."""
    overrides = dict(overrides)
    preset = overrides.pop("preset", None)
    if preset is not None:
        return FineTuneSettings.preset(preset, seed=seed, **overrides)
    return FineTuneSettings(seed=seed, **overrides)


def picked_indices(train: ForceDataset, k: int, selection: str, seed: int) -> list[int]:
    """Indices in ``train`` of the K calibration frames: the random draw, or the first K of ``spread``."""
    if selection == "random":
        return draws(len(train), k, seed)
    keys = [structure_key(f.atoms) for f in train.frames]
    ordered = select_frames(train, order="spread").frames[:k]
    return [keys.index(structure_key(f.atoms)) for f in ordered]


def unseen_properties(
    calc: Any, result: Any, unseen: ForceDataset, bare: EnergyComparison  # noqa: ANN401
) -> dict[str, Any]:
    """Property ratios [bare, corrected] on the frames the calibration did not see (``unseen``:
    the rest of ``training.json`` and all of ``test.json``), whose bare energies are ``bare``."""
    corrected = SoftCorrectedCalc(calc, correction=result.correction, check_model=False)
    with warnings.catch_warnings():  # a correction not recommended is measured all the same
        warnings.simplefilter("ignore")
        _, energies = compare_sets(corrected, [unseen])
    changes = property_changes([unseen], bare.dft, bare.model, energies.model)
    return changes.get(unseen.material, {})


def row(model: str, material: str, k: int, variant: str, result: Any, seconds: float, props: dict) -> dict:
    """The figures of one calibration (see the module docstring)."""
    r = result.report
    energy = r.errors.get("energy") or {}
    out: dict[str, Any] = {
        "model": model,
        "material": material,
        "k": k,
        "variant": variant,
        "force_mae_bare": r.mae_before,
        "force_mae": r.mae_after,
        "by_group": r.errors["by_group"],
        "energy_mae_bare": energy.get("mae_before"),
        "energy_mae": energy.get("mae_after"),
        "properties": props,
        "recommended": r.recommended,
        "reasons": [x["code"] for x in r.reasons if x["blocking"]],
        "seconds": seconds,
    }
    if r.scale is not None:
        out["scale"] = r.scale
    tune = r.parameters.get("finetune")
    if tune is not None:
        out["best_epoch"], out["train_seconds"] = tune["best_epoch"], tune["seconds"]
    forgetting = r.checks.get("forgetting")
    if forgetting:
        rows = forgetting["structures"]
        ground = [x["pressure_drift_GPa"] for x in rows if x["kind"] == "ground state"]
        others = [abs(x["energy_drift_meV_atom"]) for x in rows if x["kind"] != "ground state"]
        out["ground_pressure_drift_GPa"] = max(ground, key=abs) if ground else None
        out["other_energy_drift_meV_atom"] = max(others) if others else None
    return out


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    path = out / "regimes.json"
    rows, done = resumed_rows(path, "variant")
    ks = [int(k) for k in args.ks.split(",")]
    for model, calc, material, train, test in mlearn_cases(args.models, args.materials):
        everything = ForceDataset([*train.frames, *test.frames], source="train+test", material=material)
        bare = compare_sets(calc, [everything])[1]
        for k, variant in ((k, v) for k in ks for v in args.variants.split(",")):
            if (model, material, k, variant) in done:
                continue
            method, selection, overrides = VARIANTS[variant]
            picked = picked_indices(train, k, selection, args.seed)
            # spread: the whole file with --frames K, as on the command line, so the verdict's property check
            # also reads the strain cells and slabs beyond the K frames
            data, frames = (train, {"frames": k, "order": "spread"}) if selection == "spread" else (
                train.subset(picked), {})
            start = time.perf_counter()
            result = calibrate(
                calc,
                data,
                **frames,
                test=test,
                method=method,
                finetune=settings_for(overrides, args.seed),
                n_bootstrap=200,
                seed=args.seed,
                progress=not args.quiet,
            )
            seconds = time.perf_counter() - start
            unseen = [i for i in range(len(everything)) if i not in set(picked)]
            props = unseen_properties(calc, result, everything.subset(unseen), bare.subset(unseen))
            rows.append(row(model, material, k, variant, result, seconds, props))
            write_json(path, {"rows": rows})
            print(json.dumps({x: v for x, v in rows[-1].items() if x != "by_group"}), flush=True)
    (out / "regimes.md").write_text(table(rows))
    plot(rows, out / "regimes.png")
    print(table(rows))


def blocking_reasons(r: dict[str, Any]) -> list[str]:
    """The row's blocking reasons, with the group rule as it now stands applied to its stored intervals
    (a row of an older run may predate it; the rule only ever adds ``group-worse``)."""
    worse = any(group_worse(*g["change_ci95"]) for g in r["by_group"].values())
    tuned = r.get("train_seconds") is not None
    return r["reasons"] + (["group-worse"] if tuned and worse and "group-worse" not in r["reasons"] else [])


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Property ratios model / DFT on the unseen frames, bare and per variant, one panel per model (the
    dashed line is DFT); the held-out force-MAE drop of each variant in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softcalc.plots import save_figure

    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(len(models), 1, figsize=(10, 3.4 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        mine = [r for r in rows if r["model"] == model]
        labels = sorted({(r["material"], n) for r in mine for n in r["properties"]})
        variants = sorted({r["variant"] for r in mine})
        width = 0.8 / (len(variants) + 1)
        x = np.arange(len(labels))
        bare = {(r["material"], n): v[0] for r in mine for n, v in r["properties"].items()}
        ax.bar(x - 0.4 + width / 2, [bare[k] for k in labels], width, color="grey", label="bare")
        for j, variant in enumerate(variants, start=1):
            chosen = [r for r in mine if r["variant"] == variant]
            got = {(r["material"], n): v[1] for r in chosen for n, v in r["properties"].items()}
            drops = [1 - r["force_mae"] / r["force_mae_bare"] for r in chosen]
            ax.bar(x - 0.4 + (j + 0.5) * width, [got.get(k, np.nan) for k in labels], width,
                   label=f"{variant} (force MAE drop, median {100 * np.median(drops):.0f} %)")  # fmt: skip
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ticks = [f"{m} {n.replace('_', ' ')}" for m, n in labels]
        ax.set_xticks(x, ticks, rotation=45, ha="right", fontsize=7)
        ax.set(ylabel="model / DFT", title=f"{model}: properties of the frames the tuning did not see")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path, dpi=120)


def _ratio(props: dict[str, Any], name: str, which: int) -> str:
    return f"{props[name][which]:.2f}" if name in props else "—"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown, one row per model, material, K and variant: held-out force MAE and its drop, the worst
    group change, the three property ratios bare -> corrected on the unseen frames and how many of them
    moved away from DFT (beyond the verdict's tolerance), the ground-state pressure drift, time and the
    verdict of ``calibrate`` (which judges properties on the calibration and held-out frames only)."""
    head = [
        "model", "material", "K", "variant", "force MAE bare → after (eV/Å)", "drop",
        "worst group (after/before)", "curv. normal", "curv. shear", "γ slope", "unseen props worse",
        "ΔP ground (GPa)", "train (s)", "verdict",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["model"], r["material"], r["k"], r["variant"])):
        reasons = blocking_reasons(r)
        groups = r["by_group"]
        worst = max(groups, key=lambda g: groups[g]["mae_after"] / groups[g]["mae_before"])
        ratio = groups[worst]["mae_after"] / groups[worst]["mae_before"]
        props = r["properties"]
        cells = [
            r["model"], r["material"], str(r["k"]), r["variant"],
            f"{r['force_mae_bare']:.4f} → {r['force_mae']:.4f}",
            f"{100 * (1 - r['force_mae'] / r['force_mae_bare']):.0f} %",
            f"{worst} {ratio:.2f}",
            *(f"{_ratio(props, p, 0)} → {_ratio(props, p, 1)}"
              for p in ("curvature_normal", "curvature_shear", "surface_slope")),
            str(len(worse_properties({r["material"]: props}))),
            "—" if r.get("ground_pressure_drift_GPa") is None else f"{r['ground_pressure_drift_GPa']:+.2f}",
            "—" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f}",
            "recommended" if not reasons else "no: " + ", ".join(reasons),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (("--models", "chgnet"), ("--materials", "Si,Ge,Li,Mo"), ("--ks", "10"),
                          ("--variants", "scale,naive,finetune")):
        parser.add_argument(flag, default=default)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--table", action="store_true", help="only rewrite the table from the JSON")
    args = parser.parse_args()
    if not args.table:
        import torch

        torch.set_num_threads(1)  # one process per core (see softcalc.finetune.settings)
        run(args)
        return
    rows = json.loads((Path(args.out) / "regimes.json").read_text())["rows"]
    (Path(args.out) / "regimes.md").write_text(table(rows))
    plot(rows, Path(args.out) / "regimes.png")
    print(table(rows))


if __name__ == "__main__":
    main()
