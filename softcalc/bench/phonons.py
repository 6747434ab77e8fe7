"""Phonon softening benchmark on DFT force sets, bare and with a leave-one-material-out correction.

For every model and phonopy force set: the metrics of :mod:`softcalc.phonons.comparison`
(force-set slope, frequency slope and MAE on an 8×8×8 mesh, max-frequency ratio) of the bare model,
and of the model corrected by a global λ fitted with :func:`softcalc.calibration.pipeline.calibrate` on the
force sets of the OTHER PBE materials (regime ``transfer``; materials of another or unstated
functional are corrected with λ from all PBE sets). Each structure is evaluated once per model
(:class:`~softcalc.bench.stored.StoredForces`). Writes ``phonons.json`` (deterministic: no timestamps,
numbers rounded to 6 decimals), ``max_freq_ratio.png`` (histogram, paper Fig. 4b style) and
``freq_parity.png`` into the output folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softcalc.bench.stored import StoredForces
from softcalc.calculator import SoftCorrectedCalc
from softcalc.calibration.pipeline import calibrate
from softcalc.data.paths import resolve_data_path
from softcalc.data.phonopy_sets import is_phonopy_set
from softcalc.errors import DataError
from softcalc.fileio import write_json
from softcalc.model import ModelCalculator
from softcalc.phonons.comparison import (
    MESH,
    MIN_FREQUENCY_THZ,
    PhononComparison,
    compare_phonons,
    load_phonon_reference,
)
from softcalc.plots import save_figure
from softcalc.registry import load_adapter

#: default data of `bench phonons`, resolved under $SOFTCALC_DATA_DIR
PHONOPY_EXAMPLES = "phonons/phonopy-examples"
#: materials of `--quick`
QUICK_MATERIALS = ("Si", "NaCl")
METRICS = ("force_set_slope", "freq_slope", "freq_mae_thz", "max_freq_ratio")


def phonopy_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """phonopy sets: each path that is one (FORCE_SETS, or a phonopy yaml with forces; see
    :func:`~softcalc.data.phonopy_sets.phonopy_force_frames`), or its sub-folders that are (sorted)."""
    out: list[Path] = []
    for p in paths:
        path = resolve_data_path(p)
        if (path / "FORCE_SETS").exists() or is_phonopy_set(path):
            out.append(path)
        elif path.is_dir():
            out += sorted(q for q in path.iterdir() if q.is_dir() and is_phonopy_set(q))
    if not out:
        raise DataError(
            f"no phonopy set (FORCE_SETS, phonopy.yaml, phonopy_params.yaml) in {', '.join(map(str, paths))}"
        )
    return out


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _numbers(comparison: PhononComparison) -> dict[str, float]:
    metrics = comparison.metrics.as_dict()
    return {k: metrics[k] for k in METRICS}


def _corrected(
    calc: ModelCalculator, sets: dict[str, Any], material: str, name: str, n_bootstrap: int, seed: int
) -> tuple[dict[str, Any], PhononComparison] | None:
    """Metrics with λ fitted on the other PBE force sets; None when there are none."""
    others = [
        m for m, s in sets.items() if m != material and s.dataset.functional == "PBE" and s.force_data
    ]
    if not others:
        return None
    fit = calibrate(
        calc, [sets[m].dataset for m in others], regime="transfer", n_bootstrap=n_bootstrap, seed=seed
    )
    with warnings.catch_warnings():  # a not-recommended λ is applied anyway: measuring it is the point
        warnings.simplefilter("ignore")
        corrected = SoftCorrectedCalc(calc, correction=fit.correction)
    result = compare_phonons(corrected, sets[material], model=name)
    record = {
        **_numbers(result),
        "scale": fit.report.scale,
        "scale_std": fit.report.scale_std,
        "recommended": fit.correction.recommended,
        "calibrated_on": others,
    }
    return record, result


def _summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per model and functional: mean frequency MAE bare/corrected and how many materials improved."""
    out: dict[str, Any] = {}
    for name, per_material in results.items():
        groups: dict[str, list[dict[str, Any]]] = {}
        for rec in per_material.values():
            groups.setdefault(rec["functional"] or "unstated", []).append(rec)
        out[name] = {}
        for functional, recs in groups.items():
            with_corr = [r for r in recs if r.get("corrected")]
            out[name][functional] = {
                "n_materials": len(recs),
                "mean_freq_mae_thz_bare": float(np.mean([r["bare"]["freq_mae_thz"] for r in recs])),
                "mean_freq_mae_thz_corrected": (
                    float(np.mean([r["corrected"]["freq_mae_thz"] for r in with_corr])) if with_corr else None
                ),
                "n_improved": sum(r["improved"] for r in with_corr),
            }
    return out


def run_phonon_benchmark(
    models: Sequence[str],
    data: Sequence[str | Path] = (PHONOPY_EXAMPLES,),
    out: str | Path = "bench-phonons",
    quick: bool = False,
    n_bootstrap: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str | None = None,
    progress: bool = False,
    plots: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; returns the summary written to ``out/phonons.json`` (see the module docstring)."""
    if not models:
        raise DataError("bench phonons needs at least one model (e.g. --models chgnet,m3gnet)")
    dirs = phonopy_dirs(data)
    if quick:
        dirs = [d for d in dirs if d.name in QUICK_MATERIALS] or dirs[:2]
        models = list(models)[:1]
    n_bootstrap = n_bootstrap or (200 if quick else 1000)
    sets = {s.material: s for s in map(load_phonon_reference, dirs)}
    results: dict[str, dict[str, Any]] = {}
    frequencies: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = {}
    for name in models:
        adapter = load_adapter(name, device=device, dtype=dtype)
        calc = ModelCalculator(StoredForces(adapter.info, base=adapter))
        results[name], frequencies[name] = {}, []
        for material, pset in sets.items():
            bare = compare_phonons(calc, pset, model=name, progress=progress)
            record: dict[str, Any] = {
                "functional": pset.dataset.functional,
                "n_displacements": bare.metrics.n_displacements,
                "bare": _numbers(bare),
                "corrected": None,
            }
            corr = _corrected(calc, sets, material, name, n_bootstrap, seed)
            if corr is not None:
                record["corrected"] = corr[0]
                record["freq_mae_change_thz"] = corr[0]["freq_mae_thz"] - record["bare"]["freq_mae_thz"]
                record["improved"] = record["freq_mae_change_thz"] < 0
            results[name][material] = record
            frequencies[name].append(
                (bare.dft_frequencies, bare.model_frequencies, corr[1].model_frequencies if corr else None)
            )
    summary = _rounded(
        {
            "benchmark": "phonons",
            "mesh": list(MESH),
            "min_frequency_thz": MIN_FREQUENCY_THZ,
            "models": list(models),
            "data": [
                {"material": m, "functional": s.dataset.functional, "sha256": s.dataset.sha256}
                for m, s in sets.items()
            ],
            "results": results,
            "summary": _summary(results),
        }
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "phonons.json", summary)
    if plots:
        ratio_histogram(out / "max_freq_ratio.png", results)
        frequency_parity(out / "freq_parity.png", frequencies)
    return summary


def _figure(n_panels: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, n_panels, figsize=(4.4 * n_panels, 4.2), squeeze=False)


def ratio_histogram(path: Path, results: dict[str, dict[str, Any]]) -> None:
    """Histogram of ω_max(model)/ω_max(DFT) per model, bare and corrected (paper Fig. 4b style)."""
    fig, axes = _figure(len(results))
    for ax, (name, per_material) in zip(axes[0], results.items()):
        bare = [r["bare"]["max_freq_ratio"] for r in per_material.values()]
        corr = [r["corrected"]["max_freq_ratio"] for r in per_material.values() if r["corrected"]]
        bins = np.linspace(min(bare + corr + [0.8]) - 0.02, max(bare + corr + [1.1]) + 0.02, 25)
        ax.hist(bare, bins=bins, alpha=0.6, label=f"bare (mean {np.mean(bare):.3f})")
        if corr:
            ax.hist(corr, bins=bins, alpha=0.6, label=f"corrected (mean {np.mean(corr):.3f})")
        ax.axvline(1.0, color="k", ls="--", lw=0.8)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel=r"$\omega_{max}$(model) / $\omega_{max}$(DFT)", ylabel="materials", title=name)
        ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120)


def frequency_parity(path: Path, frequencies: dict[str, list[tuple[Any, Any, Any]]]) -> None:
    """Model vs DFT mesh frequencies (THz) per model, bare and corrected, with the fitted slopes."""
    fig, axes = _figure(len(frequencies))
    for ax, (name, items) in zip(axes[0], frequencies.items()):
        dft = np.concatenate([d.ravel() for d, _, _ in items])
        keep = dft > MIN_FREQUENCY_THZ
        curves = [("bare", np.concatenate([b.ravel() for _, b, _ in items]))]
        if all(c is not None for _, _, c in items):
            curves.append(("corrected", np.concatenate([c.ravel() for _, _, c in items])))
        top = 1.05 * max(dft.max(), *(m.max() for _, m in curves))
        for label, model in curves:
            slope = float(model[keep] @ dft[keep] / (dft[keep] @ dft[keep]))
            ax.scatter(dft, model, s=2, alpha=0.3, rasterized=True, label=f"{label}: slope {slope:.3f}")
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        ax.set(xlim=(0, top), ylim=(min(0, *(m.min() for _, m in curves)), top), aspect="equal", title=name)
        ax.set(xlabel="DFT frequency (THz)", ylabel="model frequency (THz)")
        ax.legend(fontsize=8, markerscale=4)
    save_figure(fig, path, dpi=120)
