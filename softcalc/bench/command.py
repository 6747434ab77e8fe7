"""`softcalc bench`: benchmarks of softening and its correction (`bench softening`, `bench phonons`,
`bench properties`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from softcalc.cli.common import add_command, add_model_options, model_names
from softcalc.cli.values import non_negative_int, positive_int
from softcalc.errors import DataError
from softcalc.fileio import check_outputs

#: default data of `bench softening`, resolved under $SOFTCALC_DATA_DIR
MLEARN = "forces/mlearn"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: softening on DFT forces, ...")
    benchmarks = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    register_softening(benchmarks)
    register_phonons(benchmarks)
    register_properties(benchmarks)


def _frame_counts(text: str) -> list[int]:
    """``"1,2,5"`` as a list of integers >= 1."""
    try:
        values = [positive_int(v) for v in text.split(",") if v]
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 1, got {text!r}")
    return values


def _add_run_options(p: argparse.ArgumentParser, quick: str) -> None:
    """--quick (its help: ``quick``), --bootstrap and --seed, shared by the bench commands."""
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument(
        "--bootstrap", type=positive_int, help="bootstrap replicas per calibration (default 1000; quick 200)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """--no-plots and --quiet, shared by the bench commands."""
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of run_softening / run_phonon_benchmark from the shared options."""
    return {
        "quick": args.quick,
        "n_bootstrap": args.bootstrap,
        "seed": args.seed,
        "device": args.device,
        "dtype": args.dtype,
        "progress": not args.quiet,
        "plots": args.plots,
    }


def register_softening(benchmarks: argparse._SubParsersAction) -> None:
    p = add_command(benchmarks, "softening", run_softening_cli)
    add_model_options(p, correction=False, several=True, required=False)
    p.add_argument("--data", nargs="+", default=[MLEARN], help=f"data files or folders (default {MLEARN})")
    p.add_argument("--out", help="output folder (default: the folder of --from-h5)")
    _add_run_options(p, quick="first material, 2 frames per group and split")
    p.add_argument("--frames", type=_frame_counts, default=[1, 2, 5, 10], help="learning-curve frame counts")
    p.add_argument("--draws", type=positive_int, help="random draws per frame count (default 5; quick 2)")
    p.add_argument("--from-h5", dest="from_h5", help="recompute summary.json and plots from predictions.h5")
    _add_output_options(p)


def _print_headline(summary: dict[str, Any]) -> None:
    print(f"{'model':34s}{'material':10s}{'s':>7s}{'λ*':>7s}{'MAE':>8s}{'1-shot λ':>9s}{'MAE 1-shot':>11s}")
    for r in summary["headline"]:
        flag = "" if r["one_shot_helps"] else "  (correction does not help)"
        print(
            f"{r['model']:34s}{r['material']:10s}{r['softening_scale']:7.3f}{r['scale_opt']:7.3f}"
            f"{r['mae']:8.4f}{r['one_shot_scale']:9.3f}{r['one_shot_mae']:11.4f}{flag}"
        )


def run_softening_cli(args: argparse.Namespace) -> int:
    """softening scale, λ*, MAE, cMAE and one-shot corrections per model and material

    Calibrate on each material's calibration split (mlearn training.json; other data: the first half in
    file order) and evaluate on its test split. Writes summary.json, predictions.h5 (every model and DFT
    force) and PNG plots into --out.
    """
    from softcalc.bench.softening import recompute, run_softening

    if args.from_h5:
        out = args.out or Path(args.from_h5).parent
        check_outputs({"--out": out}, folders={"--out"})
        summary = recompute(args.from_h5, out, plots=args.plots)
    else:
        if not args.models or not args.out:
            raise DataError("bench softening needs --models and --out (or --from-h5 FILE).")
        out = args.out
        check_outputs({"--out": out}, folders={"--out"})
        options = {**_run_options(args), "frames": args.frames, "draws": args.draws}
        summary = run_softening(model_names(args.models), args.data, out, **options)
    _print_headline(summary)
    print(f"results in {out}")
    return 0


def register_phonons(benchmarks: argparse._SubParsersAction) -> None:
    """`softcalc bench phonons`."""
    from softcalc.bench.phonons import PHONOPY_EXAMPLES

    p = add_command(benchmarks, "phonons", run_phonons_cli)
    add_model_options(p, correction=False, several=True)
    p.add_argument(
        "--data",
        nargs="+",
        default=[PHONOPY_EXAMPLES],
        help=f"force-set folders (default {PHONOPY_EXAMPLES})",
    )
    p.add_argument("--out", required=True, help="output folder")
    _add_run_options(p, quick="Si and NaCl only, first model only")
    _add_output_options(p)


def run_phonons_cli(args: argparse.Namespace) -> int:
    """phonon metrics per model and force set, bare and with a leave-one-material-out correction

    For each model and phonopy force set: force-set slope, frequency slope and MAE, max frequency ratio,
    bare and with λ calibrated on the other PBE sets. Writes phonons.json and PNGs.
    """
    from softcalc.bench.phonons import run_phonon_benchmark

    check_outputs({"--out": args.out}, folders={"--out"})
    summary = run_phonon_benchmark(model_names(args.models), args.data, args.out, **_run_options(args))
    header = (
        f"{'model':14s}{'material':10s}{'func':>7s}{'F slope':>9s}{'ω slope':>9s}{'ω MAE':>8s}{'ω ratio':>9s}"
    )
    print(header + f"{'λ':>8s}{'ω MAE corr':>11s}")
    for name, per_material in summary["results"].items():
        for material, r in per_material.items():
            b, c = r["bare"], r["corrected"]
            tail = f"{c['scale']:8.3f}{c['freq_mae_thz']:11.3f}" if c else ""
            slope = "n/a" if b["force_set_slope"] is None else f"{b['force_set_slope']:.3f}"  # fc reference
            print(
                f"{name:14s}{material:10s}{r['functional'] or '?':>7s}{slope:>9s}"
                f"{b['freq_slope']:9.3f}{b['freq_mae_thz']:8.3f}{b['max_freq_ratio']:9.3f}{tail}"
            )
    print(f"results in {args.out}")
    return 0


def _paths(text: str) -> list[str]:
    """The paths of a comma-separated value, blanks dropped."""
    return [p.strip() for p in text.split(",") if p.strip()]


def register_properties(benchmarks: argparse._SubParsersAction) -> None:
    """`softcalc bench properties`."""
    p = add_command(benchmarks, "properties", run_properties_cli)
    add_model_options(p, correction=False, several=True)
    p.add_argument(
        "--corrections", type=_paths, default=[], help="comma-separated correction JSON files to compare too"
    )
    p.add_argument("--data", nargs="+", default=[MLEARN], help=f"data files or folders (default {MLEARN})")
    p.add_argument(
        "--phonons", nargs="+", default=[], metavar="DIR", help="phonopy force set(s) of materials of --data"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap replicas per calibration")
    p.add_argument("--seed", type=non_negative_int, default=0)
    _add_output_options(p)


def _print_properties(summary: dict[str, Any]) -> None:
    """The bare models' headline: s (test), γ slope, slabs underestimated, curvature ratios."""
    header = ("s", "γ slope", "γ under", "curv. normal", "shear")
    print(f"{'model':34s}{'material':10s}" + "".join(f"{h:>13s}" for h in header))
    for r in summary["headline"]:
        under = "—" if r["n_slabs"] is None else f"{r['surface_under']}/{r['n_slabs']}"
        s, slope, normal, shear = (
            "—" if v is None else f"{v:.3f}"
            for v in (r["softening_scale"], r["surface_slope"], r["curvature_normal"], r["curvature_shear"])
        )
        cells = "".join(f"{c:>13s}" for c in (s, slope, under, normal, shear))
        print(f"{r['model']:34s}{r['material']:10s}{cells}")


def run_properties_cli(args: argparse.Namespace) -> int:
    """surface energies, energy-strain curvature, held-out forces and phonons, bare and corrected

    For each model and material: surface energies (slope of model vs DFT, MAE, slabs underestimated),
    the energy-strain curvature ratio model/DFT per strain mode, held-out force errors and, with
    --phonons, phonon frequency errors; for the bare model, λ fitted on forces (all, or hot AIMD
    frames), on energies (all, or strain frames), on the phonon force set, and for --corrections
    files. Writes summary.json, summary.md, predictions.h5 and PNG plots into --out.
    """
    from softcalc.bench.properties import run_properties

    check_outputs({"--out": args.out}, inputs=args.corrections, folders={"--out"})
    summary = run_properties(
        model_names(args.models),
        args.data,
        args.out,
        corrections=args.corrections,
        phonons=args.phonons,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        progress=not args.quiet,
        plots=args.plots,
    )
    _print_properties(summary)
    print(f"results in {args.out}")
    return 0
