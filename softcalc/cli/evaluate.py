"""`softcalc evaluate`: softening scale and force errors of a (corrected) model on DFT data."""

from __future__ import annotations

import argparse
from typing import Any

from softcalc.calibration.pipeline import select_frames
from softcalc.cli.common import add_command, add_model_options, build_calculator
from softcalc.data import read_datasets
from softcalc.evaluation import ForceComparison, compare_forces, merge_comparisons
from softcalc.fileio import check_outputs, write_json
from softcalc.plots import parity_plot


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "evaluate", run)
    add_model_options(p)
    p.add_argument(
        "--data", nargs="+", required=True, help="data files or folders (extxyz, db, JSON, phonopy)"
    )
    p.add_argument("--groups", help="comma-separated structure groups to keep (e.g. AIMD-NVT,Vacancy)")
    p.add_argument("--json", required=True, help="output JSON")
    p.add_argument("--plot", help="parity plot PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def summary(model: str, comp: ForceComparison) -> dict[str, Any]:
    """The evaluate JSON for one comparison (force units eV/Å)."""
    m = comp.metrics()
    return {
        "model": model,
        "n_frames": m.n_frames,
        "n_components": m.n_components,
        "softening_scale": m.softening_scale,
        "scale_opt": m.scale_opt,
        "mae": m.mae,
        "cmae": m.cmae,
        "rmse": m.rmse,
        "correlation": m.correlation,
        "by_group": {g: v.as_dict() for g, v in comp.by_group().items()},
        "by_element": {e: v.as_dict() for e, v in comp.by_element().items()},
    }


def run(args: argparse.Namespace) -> int:
    """softening scale, λ*, MAE and cMAE of a model on DFT forces"""
    check_outputs({"--json": args.json, "--plot": args.plot}, inputs=args.data)
    calc = build_calculator(args)
    groups = args.groups.split(",") if args.groups else None
    datasets = [select_frames(d, groups) for d in read_datasets(args.data)]
    comps = [compare_forces(calc, d, progress=not args.quiet) for d in datasets]
    pooled = merge_comparisons(comps)
    out = summary(args.model, pooled)
    out["corrected"] = calc is not getattr(calc, "base", calc)
    if len(comps) > 1:
        out["per_dataset"] = {c.material or str(i): summary(args.model, c) for i, c in enumerate(comps)}
    out["data"] = [{"source": d.source, "sha256": d.sha256} for d in datasets]
    write_json(args.json, out)
    if args.plot:
        parity_plot(args.plot, [(pooled.material, *pooled.pooled())], title=args.model)
    print(
        f"{args.model} on {pooled.material}: {out['n_frames']} frames, s = {out['softening_scale']:.4f}, "
        f"λ* = {out['scale_opt']:.4f}, MAE = {out['mae']:.4f} eV/Å, cMAE = {out['cmae']:.4f} eV/Å"
    )
    return 0
