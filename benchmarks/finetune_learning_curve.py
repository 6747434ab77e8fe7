"""Learning curves of the corrections: held-out errors after calibrating on K DFT frames.

For each model and mlearn material, K frames are drawn at random from ``training.json`` (numpy
``default_rng([seed, K])``, the same frames for every model and method) and each method is calibrated
on them with :func:`softcalc.calibration.pipeline.calibrate`; the held-out errors are on ``test.json``:

- ``scale``: one λ on forces; ``per-species``: λ_Z (only for data with more than one element, where it
  differs from ``scale``); ``finetune``: the weights tuned on the K frames (one in ten kept for early
  stopping from K = 5 on);
- at the largest K also ``auto`` (the method with the lowest validation error) and, once per material,
  λ fitted on all training frames on forces (``scale-all``, the reference a few-shot correction must
  beat) and on energy differences (``energy-all``).

Rows are appended to ``<out>/learning_curve.json`` as they finish, so an interrupted run continues
where it stopped. Corrections of the largest K are saved as ``<out>/<model>/<material>-<method>.json``
(fine-tuned weights beside them) for ``softcalc bench properties --corrections``.

Usage:
    python benchmarks/finetune_learning_curve.py --models chgnet --materials Si,Ge,Li,Mo --out bench_out/ft
Results: <out>/learning_curve.json, <out>/learning_curve.md (table), <out>/learning_curve.png.
``--table`` rewrites the table and plot from the JSON without running anything.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from softcalc import load_model
from softcalc.calibration.pipeline import calibrate
from softcalc.data import ForceDataset, read_dataset
from softcalc.data.paths import resolve_data_path
from softcalc.fileio import write_json
from softcalc.finetune.settings import FineTuneSettings
from softcalc.plots import save_figure


def draws(n: int, k: int, seed: int) -> list[int]:
    """Frame indices of one random subset of size ``k`` of ``n`` frames (fixed seed per K)."""
    rng = np.random.default_rng([seed, k])
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def row(model: str, material: str, k: int, method: str, result: Any, seconds: float) -> dict[str, Any]:
    """The figures of one calibration: held-out force and energy-difference errors, and what was fitted."""
    r = result.report
    energy = r.errors.get("energy") or {}
    out = {
        "model": model,
        "material": material,
        "k": k,
        "method": method,
        "kind": r.kind,
        "force_mae_bare": r.mae_before,
        "force_mae": r.mae_after,
        "energy_mae_bare": energy.get("mae_before"),
        "energy_mae": energy.get("mae_after"),
        "recommended": r.recommended,
        "seconds": seconds,
    }
    if r.scale is not None:
        out["scale"] = r.scale
    if "finetune" in r.parameters:
        out["best_epoch"] = r.parameters["finetune"]["best_epoch"]
        out["train_seconds"] = r.parameters["finetune"]["seconds"]
    if "auto" in r.parameters:
        out["auto_chosen"] = r.parameters["auto"]["chosen"]
    if "forgetting" in r.checks:
        out["forgetting"] = r.checks["forgetting"]["structures"]
    return out


def resumed_rows(path: Path, key: str) -> tuple[list[dict[str, Any]], set[tuple]]:
    """The rows of an interrupted run at ``path`` (none if absent) and their (model, material, K, key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = json.loads(path.read_text())["rows"] if path.exists() else []
    return rows, {(r["model"], r["material"], r["k"], r[key]) for r in rows}


def mlearn_cases(models: str, materials: str) -> Iterator[tuple[str, Any, str, ForceDataset, ForceDataset]]:
    """(model name, bare model, material, training set, test set) for comma-separated models and mlearn
    materials, each model loaded once."""
    for model in models.split(","):
        calc = load_model(model)
        for material in materials.split(","):
            base = resolve_data_path(f"forces/mlearn/{material}")
            train, test = read_dataset(base / "training.json"), read_dataset(base / "test.json")
            yield model, calc, material, train, test


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    path = out / "learning_curve.json"
    rows, done = resumed_rows(path, "method")
    settings = FineTuneSettings(epochs=args.epochs, seed=args.seed)
    ks = [int(k) for k in args.ks.split(",")]
    for model, calc, material, train, test in mlearn_cases(args.models, args.materials):
        jobs: list[tuple[int, str]] = [(k, m) for k in ks for m in ("scale", "per-species", "finetune")]
        jobs += [(max(ks), "auto"), (len(train), "scale-all"), (len(train), "energy-all")]
        for k, method in jobs:
            if (model, material, k, method) in done:
                continue
            if method == "per-species" and len(train.elements) < 2:
                continue
            data = train if method.endswith("-all") else train.subset(draws(len(train), k, args.seed))
            start = time.perf_counter()
            result = calibrate(
                calc,
                data,
                test=test,
                method=method.removesuffix("-all").replace("energy", "scale"),
                target="energy" if method == "energy-all" else "forces",
                finetune=settings,
                n_bootstrap=200,
                seed=args.seed,
                progress=not args.quiet,
            )
            rows.append(row(model, material, k, method, result, time.perf_counter() - start))
            if k == max(ks) or method.endswith("-all"):
                folder = out / model.replace("/", "_")
                folder.mkdir(exist_ok=True)
                result.save(folder / f"{material}-{method}.json")
            write_json(path, {"settings": {**settings.to_dict(), "ks": ks}, "rows": rows})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "forgetting"}))
    plot(rows, out / "learning_curve.png")
    (out / "learning_curve.md").write_text(table(rows))
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: held-out force MAE (eV/Å) per model and material, bare, λ and fine-tuned by K, λ on all
    frames, and what ``auto`` chose with its held-out MAE."""
    ks = sorted({r["k"] for r in rows if r["method"] in ("scale", "finetune")})
    head = ["model", "material", "bare"]
    head += [f"λ K={k}" for k in ks] + [f"tuned K={k}" for k in ks]
    head += ["λ all frames", f"auto (K={max(ks)})", f"tuned K={max(ks)}: drop, time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, material in sorted({(r["model"], r["material"]) for r in rows}):
        mine = {(r["k"], r["method"]): r for r in rows if r["model"] == model and r["material"] == material}
        any_row = next(iter(mine.values()))

        def cell(key: tuple[int, str], mine: dict = mine) -> str:
            return f"{mine[key]['force_mae']:.3f}" if key in mine else "—"

        cells = [model, material, f"{any_row['force_mae_bare']:.3f}"]
        cells += [cell((k, "scale")) for k in ks] + [cell((k, "finetune")) for k in ks]
        cells += [next((f"{r['force_mae']:.3f}" for (_, m), r in mine.items() if m == "scale-all"), "—")]
        auto = mine.get((max(ks), "auto"))
        cells.append("—" if auto is None else f"{auto['auto_chosen']} {auto['force_mae']:.3f}")
        tuned = mine.get((max(ks), "finetune"))
        if tuned is None:
            cells.append("—")
        else:
            drop = 1 - tuned["force_mae"] / tuned["force_mae_bare"]
            cells.append(f"{100 * drop:.0f} %, {tuned['train_seconds']:.0f} s")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Held-out force MAE against K, one panel per model and material, one line per method."""
    import matplotlib.pyplot as plt

    panels = sorted({(r["model"], r["material"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (model, material) in zip(axes[0], panels):
        mine = [r for r in rows if r["model"] == model and r["material"] == material]
        bare = mine[0]["force_mae_bare"]
        ax.axhline(bare, color="k", lw=1, label="bare")
        for method in ("scale", "per-species", "finetune"):
            pts = sorted((r["k"], r["force_mae"]) for r in mine if r["method"] == method)
            if pts:
                ax.plot(*zip(*pts), "o-", label=method)
        for r in mine:
            if r["method"] == "scale-all":
                ax.axhline(r["force_mae"], color="grey", ls="--", lw=1, label="λ, all frames")
        ax.set_xscale("log")
        ax.set_title(f"{model} {material}", fontsize=9)
        ax.set_xlabel("calibration frames K")
    axes[0][0].set_ylabel("held-out force MAE (eV/Å)")
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="chgnet")
    parser.add_argument("--materials", default="Si,Ge,Li,Mo")
    parser.add_argument("--ks", default="1,2,5,10")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: run one process per core; default 1)"
    )
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--table", action="store_true", help="only rewrite table and plot from the JSON")
    args = parser.parse_args()
    if args.table:
        rows = json.loads((Path(args.out) / "learning_curve.json").read_text())["rows"]
        plot(rows, Path(args.out) / "learning_curve.png")
        (Path(args.out) / "learning_curve.md").write_text(table(rows))
        print(table(rows))
        return
    import torch

    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
