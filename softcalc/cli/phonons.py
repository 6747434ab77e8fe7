"""`softcalc phonons`: phonon softening of a (corrected) model against a DFT phonopy force set."""

from __future__ import annotations

import argparse
from typing import Any

from softcalc.calculator import SoftCorrectedCalc
from softcalc.cli.common import add_model_options, build_calculator
from softcalc.fileio import write_json
from softcalc.phonon_benchmark import band_structure_plot, compare_phonons, load_phonon_set


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phonons",
        help="force-set slope, frequency slope and MAE, max-frequency ratio vs a DFT phonopy force set",
        description="Evaluate the model on the displaced supercells of a phonopy FORCE_SETS folder, build "
        "model and DFT force constants from the same displacements and compare frequencies on an 8x8x8 mesh.",
    )
    add_model_options(p)
    p.add_argument("--phonopy-dir", required=True, help="folder with FORCE_SETS and phonopy_disp.yaml")
    p.add_argument("--json", required=True, help="output JSON")
    p.add_argument("--plot", help="band structure PNG: DFT, bare and (if given) corrected model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    calc = build_calculator(args)
    pset = load_phonon_set(args.phonopy_dir)
    result = compare_phonons(calc, pset, model=args.model, progress=not args.quiet)
    out: dict[str, Any] = result.metrics.as_dict()
    curves = [(args.model, result.model_phonon)]
    if isinstance(calc, SoftCorrectedCalc):
        bare = compare_phonons(calc.base, pset, model=args.model, progress=not args.quiet)
        out["scale"] = calc.correction.scale
        if calc.correction.species_scales:
            out["species_scales"] = calc.correction.species_scales
        out["bare"] = bare.metrics.as_dict()
        curves = [(f"{args.model} bare", bare.model_phonon), (f"{args.model} corrected", result.model_phonon)]
    out["data"] = {"source": pset.dataset.source, "sha256": pset.dataset.sha256}
    write_json(args.json, out)
    if args.plot:
        band_structure_plot(args.plot, pset, curves, title=f"{pset.material}: {args.model} vs DFT")
    m = result.metrics
    print(
        f"{args.model} on {m.material} ({m.n_displacements} displacements): force-set slope "
        f"{m.force_set_slope:.4f}, frequency slope {m.freq_slope:.4f}, MAE {m.freq_mae_thz:.4f} THz, "
        f"max ω ratio {m.max_freq_ratio:.4f}"
    )
    return 0


def register_bench(benchmarks: argparse._SubParsersAction) -> None:
    """`softcalc bench phonons`: added to `softcalc bench` by :mod:`softcalc.cli.bench`."""
    from softcalc.bench.phonons import PHONOPY_EXAMPLES

    p = benchmarks.add_parser(
        "phonons",
        help="phonon metrics per model and force set, bare and with a leave-one-material-out correction",
        description="For each model and phonopy force set: force-set slope, frequency slope and MAE, max "
        "frequency ratio, bare and with λ calibrated on the other PBE sets. Writes phonons.json and PNGs.",
    )
    p.add_argument("--models", required=True, help="comma-separated model names (e.g. chgnet,m3gnet)")
    p.add_argument(
        "--data",
        nargs="+",
        default=[PHONOPY_EXAMPLES],
        help=f"force-set folders (default {PHONOPY_EXAMPLES})",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="Si and NaCl only, first model only")
    p.add_argument(
        "--bootstrap", type=int, help="bootstrap replicas per calibration (default 1000; quick 200)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None)
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from softcalc.bench.phonons import run_phonon_benchmark

    summary = run_phonon_benchmark(
        [m.strip() for m in args.models.split(",") if m.strip()],
        args.data,
        args.out,
        quick=args.quick,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        progress=not args.quiet,
        plots=args.plots,
    )
    header = (
        f"{'model':14s}{'material':10s}{'func':>7s}{'F slope':>9s}{'ω slope':>9s}{'ω MAE':>8s}{'ω ratio':>9s}"
    )
    print(header + f"{'λ':>8s}{'ω MAE corr':>11s}")
    for name, per_material in summary["results"].items():
        for material, r in per_material.items():
            b, c = r["bare"], r["corrected"]
            tail = f"{c['scale']:8.3f}{c['freq_mae_thz']:11.3f}" if c else ""
            print(
                f"{name:14s}{material:10s}{r['functional'] or '?':>7s}{b['force_set_slope']:9.3f}"
                f"{b['freq_slope']:9.3f}{b['freq_mae_thz']:8.3f}{b['max_freq_ratio']:9.3f}{tail}"
            )
    print(f"results in {args.out}")
    return 0
