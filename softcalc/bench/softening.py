"""Force-softening benchmark: softening scale, λ*, errors and one-shot / few-frame corrections per model.

For every model and material: calibrate on the calibration split (mlearn ``training.json``), evaluate
on the held-out split (``test.json``); other data are split by file order (the first half calibrates;
:mod:`softcalc.bench.splits`).
Each model evaluates each structure once (:class:`~softcalc.bench.stored.StoredForces`); every
calibration below goes through :func:`softcalc.calibrate` on those stored forces and records
its λ uncertainty, warnings and verdict. Reported per model and material (forces eV/Å):

- ``test``/``train``: s, λ*, MAE, cMAE, RMSE, correlation, pooled and per structure group;
- ``calibration``: λ fitted on all calibration frames, errors on the test frames;
- ``by_group``: λ fitted on one structure group's calibration frames, tested on that group;
- ``one_shot``: λ from ONE frame, the largest-RMS-force frame (the paper's pick) and the first frame;
- ``learning_curve``: λ from K frames, the first K in file order and random draws (fixed seed, the
  same frames for every model);
- ``per_species``: λ_Z per element for multi-element data (skipped with a reason otherwise).

:func:`summarize` depends only on data and stored forces, so the summary recomputed from the
predictions file (:func:`recompute`) equals the one written by :func:`run_softening`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from softcalc.bench.fits import calibrate_or_skip, per_species_skip, report_fields
from softcalc.bench.predictions import read_predictions, write_predictions
from softcalc.bench.report import markdown
from softcalc.bench.splits import Split, load_splits
from softcalc.bench.stored import StoredForces
from softcalc.calibration.pipeline import select_frames
from softcalc.data.dataset import ForceDataset
from softcalc.evaluation import ForceComparison, compare_forces
from softcalc.fileio import atomic_path, write_json
from softcalc.forces import ForceEvaluator
from softcalc.model import ModelCalculator
from softcalc.registry import load_adapter
from softcalc.version import __version__

DEFAULT_FRAMES = (1, 2, 5, 10)
DEFAULT_DRAWS = 5
DEFAULT_BOOTSTRAP = 1000
#: --quick: first material only (:func:`~softcalc.bench.splits.load_splits`), fewer replicas
QUICK_DRAWS = 2
QUICK_BOOTSTRAP = 200
#: fields of a calibrate() report kept in the summary (the rest repeats the test metrics)
REPORT_FIELDS = (
    "scale",
    "scale_std",
    "scale_ci95",
    "species_scales",
    "species_uncertainty",
    "n_frames",
    "n_heldout",
    "errors_on",
    "mae_before",
    "mae_after",
    "correlation_fit",
    "recommended",
    "warnings",
    "verdict",
)


def evaluate_model(
    name: str, splits: dict[str, Split], device: str = "cpu", dtype: str | None = None, progress: bool = True
) -> StoredForces:
    """Load ``name`` and compute its forces on every structure of ``splits`` once, in batches."""
    store = StoredForces((base := load_adapter(name, device=device, dtype=dtype)).info, base=base)
    structures = [
        s
        for split in splits.values()
        for d in split.datasets().values()
        for s in [*(f.atoms for f in d.frames), *([d.reference] if d.reference is not None else [])]
    ]
    ForceEvaluator(ModelCalculator(store)).forces(structures, progress=progress, desc=f"{name} forces")
    return store


def _comparison_summary(comp: ForceComparison) -> dict[str, Any]:
    return {
        **comp.metrics().as_dict(),
        "by_group": {g: m.as_dict() for g, m in sorted(comp.by_group().items())},
        "by_element": {e: m.as_dict() for e, m in comp.by_element().items()},
    }


class _Calibrator:
    """Runs :func:`calibrate` on stored forces with the benchmark's bootstrap settings."""

    def __init__(self, store: StoredForces, n_bootstrap: int, seed: int) -> None:
        self.calc = ModelCalculator(store)
        self.n_bootstrap, self.seed = n_bootstrap, seed

    def __call__(self, fit: ForceDataset, test: ForceDataset, **kwargs: Any) -> dict[str, Any]:
        if not any(f.forces.any() for f in fit.frames):
            why = (
                "the calibration frame(s) carry no DFT force (e.g. strained perfect crystals): λ is undefined"
            )
            return {"failed": why, "helps": False}
        cal = calibrate_or_skip(self.calc, fit, test, self.n_bootstrap, self.seed, **kwargs)
        if isinstance(cal, str):
            return {"failed": cal, "helps": False}
        out = report_fields(cal, (*REPORT_FIELDS, "errors"))
        out["by_group"] = out.pop("errors")["by_group"]
        out["helps"] = out["mae_after"] < out["mae_before"]
        return out


def _frame_ref(train: ForceDataset, frame_ds: ForceDataset) -> dict[str, Any]:
    chosen = frame_ds.frames[0]
    index = next(i for i, f in enumerate(train.frames) if f is chosen)
    rms = float(np.sqrt(np.mean(chosen.forces**2)))
    return {"frame": index, "group": chosen.group, "label": chosen.label, "dft_rms_force": rms}


def _random_draws(n: int, k: int, draws: int, seed: int) -> list[list[int]]:
    """Frame indices of ``draws`` random subsets of size k (no repeats within a draw; fixed seed)."""
    rng = np.random.default_rng([seed, k])
    return [sorted(int(i) for i in rng.choice(n, size=k, replace=False)) for _ in range(draws)]


def material_summary(store: StoredForces, split: Split, config: dict[str, Any]) -> dict[str, Any]:
    """Every result of one model on one material (see the module docstring)."""
    cal = _Calibrator(store, config["n_bootstrap"], config["seed"])
    train, test = split.train, split.test
    out: dict[str, Any] = {
        "data": {
            "rule": split.rule,
            **{
                name: {"source": d.source, "sha256": d.sha256, "n_frames": len(d), "groups": d.groups}
                for name, d in split.datasets().items()
            },
        },
        "train": _comparison_summary(compare_forces(cal.calc, train)),
        "test": _comparison_summary(compare_forces(cal.calc, test)),
        "calibration": cal(train, test),
    }
    out["by_group"] = {g: cal(train, test, groups=[g]) for g in sorted(set(train.groups) & set(test.groups))}
    shots = {
        "largest-force": select_frames(train, order="largest-force").subset([0]),
        "first-frame": train.subset([0]),
    }
    out["one_shot"] = {name: {**_frame_ref(train, d), **cal(d, test)} for name, d in shots.items()}
    curve: dict[str, list[dict[str, Any]]] = {"file-order": [], "random": []}
    for k in (k for k in config["frames"] if k <= len(train)):
        curve["file-order"].append({"frames": k, **cal(train.subset(range(k)), test)})
        runs = [
            (idx, cal(train.subset(idx), test))
            for idx in _random_draws(len(train), k, config["draws"], config["seed"])
        ]
        fitted = [r for _, r in runs if "failed" not in r]
        lam = np.array([r["scale"] for r in fitted])
        after = np.array([r["mae_after"] for r in fitted])
        curve["random"].append(
            {
                "frames": k,
                "n_draws": len(runs),
                "n_failed": len(runs) - len(fitted),
                "n_helps": sum(r["helps"] for r in fitted),
                "scale_mean": float(lam.mean()) if fitted else None,
                "scale_std": float(lam.std()) if fitted else None,
                "mae_after_mean": float(after.mean()) if fitted else None,
                "mae_after_std": float(after.std()) if fitted else None,
                "draws": [
                    {"frames_used": idx, **{f: r[f] for f in ("scale", "mae_after", "failed") if f in r}}
                    for idx, r in runs
                ],
            }
        )
    out["learning_curve"] = curve
    skipped = per_species_skip(sorted(set(train.elements) | set(test.elements)), store)
    out["per_species"] = {"skipped": skipped} if skipped else cal(train, test, per_species=True)
    return out


def headline(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model and material: s, MAE and the corrected test MAEs (eV/Å)."""
    rows = []
    for model, materials in results.items():
        for material, r in materials.items():
            shot = r["one_shot"]["largest-force"]
            rows.append(
                {
                    "model": model,
                    "material": material,
                    "softening_scale": r["test"]["softening_scale"],
                    "scale_opt": r["test"]["scale_opt"],
                    "mae": r["test"]["mae"],
                    "cmae": r["test"]["cmae"],
                    "one_shot_scale": shot["scale"],
                    "one_shot_mae": shot["mae_after"],
                    "one_shot_helps": shot["helps"],
                    "first_frame_mae": r["one_shot"]["first-frame"].get("mae_after"),
                    "all_frames_scale": r["calibration"].get("scale"),
                    "all_frames_mae": r["calibration"].get("mae_after"),
                    "all_frames_helps": r["calibration"]["helps"],
                }
            )
    return rows


def model_results(
    store: StoredForces, splits: dict[str, Split], config: dict[str, Any], progress: bool = False
) -> dict[str, Any]:
    """:func:`material_summary` for every material, with a progress bar."""
    bar = tqdm(splits.items(), desc=f"{store.info.name} calibrations", disable=not progress, leave=False)
    with np.errstate(invalid="ignore", divide="ignore"):  # zero-force groups have no slope (NaN)
        return {material: material_summary(store, split, config) for material, split in bar}


def _sorted_keys(obj: Any) -> Any:
    """``obj`` with dict keys sorted (lists keep their order) and NaN as None: a stable, strict JSON.

    NaN arises for slopes of zero-force groups (strained perfect crystals: DFT forces are exactly 0).
    """
    if isinstance(obj, dict):
        return {k: _sorted_keys(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sorted_keys(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def assemble(
    config: dict[str, Any], stores: dict[str, StoredForces], results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The summary document (deterministic: fixed seeds, no timestamps, sorted keys)."""
    models = {
        name: {**store.info.fingerprint, "per_atom_energies": store.supports_per_atom_energies}
        for name, store in stores.items()
    }
    summary = {
        "benchmark": "force softening",
        "config": config,
        "models": models,
        "results": results,
        "headline": headline(results),
        "softcalc_version": __version__,
    }
    return _sorted_keys(summary)


def summarize(
    config: dict[str, Any], splits: dict[str, Split], stores: dict[str, StoredForces], progress: bool = False
) -> dict[str, Any]:
    """The benchmark summary from data and stored forces alone."""
    results = {name: model_results(store, splits, config, progress) for name, store in stores.items()}
    return assemble(config, stores, results)


def write_outputs(
    out: Path,
    summary: dict[str, Any],
    splits: dict[str, Split],
    stores: dict[str, StoredForces],
    plots: bool = True,
) -> None:
    """summary.json, summary.md (tables), and the parity and learning-curve PNGs (one each per model)."""
    write_json(out / "summary.json", summary)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(markdown(summary))
    if plots:
        from softcalc.bench.plots import learning_curve_plot, softening_parity_plots

        softening_parity_plots(out, splits, stores)
        learning_curve_plot(out / "learning_curve.png", summary["results"])


def run_softening(
    models: Sequence[str],
    data: Sequence[str | Path],
    out: str | Path,
    quick: bool = False,
    frames: Sequence[int] = DEFAULT_FRAMES,
    draws: int | None = None,
    n_bootstrap: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str | None = None,
    progress: bool = True,
    plots: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and write summary.json, predictions.h5 and PNG plots into ``out``.

    Returns the summary; wall times per model are printed, not stored (the summary is deterministic).
    """
    out = Path(out)
    config = {
        "models": list(models),
        "data": [str(p) for p in data],
        "quick": quick,
        "frames": sorted(set(frames)),
        "draws": draws if draws is not None else (QUICK_DRAWS if quick else DEFAULT_DRAWS),
        "n_bootstrap": n_bootstrap or (QUICK_BOOTSTRAP if quick else DEFAULT_BOOTSTRAP),
        "seed": seed,
        "learning_curve": "file-order: the first K calibration frames; random: `draws` subsets of K frames "
        "drawn without replacement with numpy default_rng([seed, K]), the same frames for every model",
        "one_shot": "largest-force: the calibration frame with the largest RMS DFT force (the paper's pick); "
        "first-frame: the first calibration frame in file order",
    }
    splits = load_splits(data, quick=quick)
    n_atoms = sum(len(f.atoms) for s in splits.values() for d in s.datasets().values() for f in d.frames)
    stores: dict[str, StoredForces] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in models:
        start = time.perf_counter()
        stores[name] = evaluate_model(name, splits, device=device, dtype=dtype, progress=progress)
        evaluated = time.perf_counter()
        results[name] = model_results(stores[name], splits, config, progress)
        stores[name].base = None  # release the model; its forces stay
        print(
            f"{name}: {n_atoms} atoms evaluated in {evaluated - start:.1f} s, "
            f"calibrations in {time.perf_counter() - evaluated:.1f} s"
        )
    write_predictions(out / "predictions.h5", config, splits, stores)
    summary = assemble(config, stores, results)
    write_outputs(out, summary, splits, stores, plots)
    return summary


def recompute(path: str | Path, out: str | Path | None = None, plots: bool = True) -> dict[str, Any]:
    """Recompute the summary from a predictions file alone (no model is loaded).

    With ``out``, summary.json (and the plots) are written there too.
    """
    config, splits, stores = read_predictions(path)
    summary = summarize(config, splits, stores)
    if out is not None:
        write_outputs(Path(out), summary, splits, stores, plots)
    return summary
