"""`softcalc calibrate`: fit a softening correction on DFT forces and check it on held-out frames."""

from __future__ import annotations

import argparse
from typing import Any

from softcalc.calibrate import ALL_METHODS, ORDERS, Calibration, calibrate
from softcalc.calibration.methods import TARGETS
from softcalc.cli.common import add_command, add_model_options, build_calculator, command_line
from softcalc.cli.values import non_negative_float, non_negative_int, positive_float, positive_int
from softcalc.errors import DataError
from softcalc.fileio import check_outputs, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "calibrate", run)
    add_model_options(p, correction=False)
    p.add_argument("--data", nargs="+", required=True, help="calibration data (files or phonopy folders)")
    p.add_argument(
        "--frames", type=positive_int, help="fit on the first K frames of each data set; hold out the rest"
    )
    p.add_argument("--test", nargs="+", help="held-out data (replaces the rest of --data when given)")
    p.add_argument("--groups", help="comma-separated structure groups to use (e.g. AIMD-NVT)")
    p.add_argument(
        "--temperature",
        type=value_range,
        metavar="LOW:HIGH",
        help="keep frames from simulations at LOW-HIGH K (e.g. 300:900; from the data's metadata)",
    )
    p.add_argument(
        "--strain",
        type=value_range,
        metavar="LOW:HIGH",
        help="keep strained cells with LOW <= strain <= HIGH (e.g. -0.02:0.02)",
    )
    p.add_argument(
        "--order", choices=ORDERS, default="file", help="frame order before taking K (default file)"
    )
    p.add_argument(
        "--method",
        choices=ALL_METHODS,
        help="scale (one λ; default), per-species (λ per element), finetune (tune the weights, saved "
        "beside --out) or auto (the method with the lowest validation error)",
    )
    p.add_argument(
        "--per-species", action="store_true", help="same as --method per-species (needs per-atom energies)"
    )
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="forces",
        help="what λ is fitted on: forces (hot MD; default), energy (energy differences within a "
        "composition: strain, surfaces, i.e. curvature for elastic and phonon properties) or forces+energy",
    )
    p.add_argument(
        "--bootstrap", type=positive_int, default=1000, help="bootstrap replicas for the λ uncertainty"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="bootstrap, validation split and training"
    )
    tune = p.add_argument_group("fine-tuning (--method finetune or auto)")
    tune.add_argument("--epochs", type=positive_int, default=30, help="training epochs (default 30)")
    tune.add_argument("--lr", type=positive_float, default=1e-3, help="first Adam learning rate (1e-3)")
    tune.add_argument(
        "--lr-final", type=positive_float, default=1e-5, help="last learning rate of the cosine decay (1e-5)"
    )
    tune.add_argument("--batch-size", type=positive_int, default=2, help="structures per step (default 2)")
    tune.add_argument(
        "--freeze",
        default="none",
        help="none (train everything; default), all-but-readout, or all-but-last:K (readout and the last "
        "K interaction blocks train)",
    )
    tune.add_argument("--energy-weight", type=non_negative_float, default=1.0, help="per (eV/atom)² (1)")
    tune.add_argument("--force-weight", type=non_negative_float, default=1.0, help="per (eV/Å)² (1)")
    tune.add_argument("--stress-weight", type=non_negative_float, default=0.1, help="per GPa² (0.1)")
    tune.add_argument(
        "--patience", type=positive_int, help="stop after this many epochs without validation gain"
    )
    tune.add_argument(
        "--no-refit-references",
        action="store_true",
        help="keep the model's per-element reference energies (by default refitted to the DFT energies)",
    )
    p.add_argument("--regime", choices=("own-material", "transfer"), default="own-material")
    p.add_argument("--out", required=True, help="correction JSON to write")
    p.add_argument("--json", help="calibration report JSON")
    p.add_argument("--plot", help="parity plot PNG (held-out frames, before and after)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def print_report(result: Calibration) -> None:
    """Human-readable summary: scale with uncertainty, errors before/after, warnings."""
    r = result.report
    _print_method(r)
    if r["kind"] == "global":
        lo, hi = r["scale_ci95"]
        print(
            f"λ = {r['scale']:.4f} ± {r['scale_std']:.4f} (95% CI {lo:.4f}-{hi:.4f}), "
            f"fitted on {r['n_frames']} frame(s)"
        )
    elif r["kind"] == "per-species":
        for z, lam in r["species_scales"].items():
            u = r["species_uncertainty"][z]
            print(f"λ_{z} = {lam:.4f} ± {u['std']:.4f} (95% CI {u['ci95'][0]:.4f}-{u['ci95'][1]:.4f})")
    e = r["errors"]
    print(f"softening scale s = {r['softening_scale']:.4f} on {r['errors_on']} frames ({e['n_frames']})")
    print(f"{'':14s}{'MAE (eV/Å)':>12s}{'RMSE (eV/Å)':>13s}")
    print(f"{'before':14s}{e['mae_before']:12.4f}{e['rmse_before']:13.4f}")
    print(f"{'after':14s}{e['mae_after']:12.4f}{e['rmse_after']:13.4f}")
    for group, g in e["by_group"].items():
        print(f"  {group:12s}{g['mae_before']:12.4f} -> {g['mae_after']:.4f}  ({g['n_frames']} frames)")
    en = e.get("energy")
    if en is not None:
        after = "n/a" if en["mae_after"] is None else f"{1e3 * en['mae_after']:.2f}"
        print(
            f"energy differences within a composition, MAE (meV/atom): {1e3 * en['mae_before']:.2f} -> "
            f"{after} ({en['n_frames']} frames)"
        )
    for w in r["warnings"]:
        print(f"WARNING: {w}")
    print(r["verdict"])


def _print_method(r: dict[str, Any]) -> None:
    """What ``auto`` compared and chose, and what a fine-tune did (epochs, time, forgetting check)."""
    if "methods" in r:
        print(f"auto: chose {r['auto']['chosen']} ({r['auto']['n_validation']} validation frame(s))")
        print(f"  {'method':12s}{'validation MAE':>16s}{r['errors_on'] + ' MAE':>18s}  (eV/Å)")
        for name, m in r["methods"].items():
            print(f"  {name:12s}{m['validation_mae']:16.4f}{m['mae_after']:18.4f}")
    tune = r.get("finetune")
    if tune is not None:
        print(
            f"fine-tuned {tune['n_parameters']} parameters on {tune['n_train']} frame(s), "
            f"{tune['n_validation']} for validation: best epoch {tune['best_epoch']} of "
            f"{len(tune['loss_curve'])}, {tune['seconds']:.0f} s"
        )
    for row in r.get("forgetting", {}).get("structures", []):
        print(
            f"  drift on {row['name']:22s} {row['energy_drift_meV_atom']:8.2f} meV/atom "
            f"{row['force_drift']:7.4f} eV/Å {row['pressure_drift_GPa']:7.3f} GPa"
        )


def value_range(text: str) -> tuple[float, float]:
    """``"LOW:HIGH"`` (or one value for both) as an inclusive (low, high) range."""
    try:
        low, _, high = text.partition(":")
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range LOW:HIGH of numbers") from None
    if bounds[0] > bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: LOW is larger than HIGH")
    return bounds


def run(args: argparse.Namespace) -> int:
    """fit a softening correction λ on DFT forces or energies

    Fit λ (on --target forces, energy or both) on the first K frames of --data (after --groups,
    --temperature, --strain and --order), hold out the rest (or --test), report force and energy errors
    before/after, the λ uncertainty and warnings.
    """
    method = args.method or ("per-species" if args.per_species else "scale")
    if args.per_species and method != "per-species":
        raise DataError(f"--per-species contradicts --method {method}. Fix: give one of them.")
    settings = _finetune_settings(args) if method in ("finetune", "auto") else None
    outputs = {"--out": args.out, "--json": args.json, "--plot": args.plot}
    check_outputs(outputs, inputs=[*args.data, *(args.test or [])])
    calc = build_calculator(args)  # the bare model: calibrate has no --correction / --scale
    result = calibrate(
        calc,
        args.data,
        frames=args.frames,
        test=args.test,
        groups=args.groups.split(",") if args.groups else None,
        order=args.order,
        temperature=args.temperature,
        strain=args.strain,
        target=args.target,
        method=method,
        finetune=settings,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        regime=args.regime,
        progress=not args.quiet,
        provenance={"command": command_line()},
    )
    saved = result.save(args.out)
    report: dict[str, Any] = dict(result.report)
    if args.json:
        write_json(args.json, report)
    if args.plot:
        _plot(calc, args, result)
    print_report(result)
    weights = f" with tuned weights {saved.weights_file()}" if saved.weights else ""
    print(
        f"correction written to {args.out}{weights}"
        + ("" if result.correction.recommended else " (marked NOT recommended)")
    )
    return 0


def _finetune_settings(args: argparse.Namespace):  # noqa: ANN202 - FineTuneSettings
    """The fine-tuning options as settings; invalid combinations are a one-line error."""
    from softcalc.finetune.settings import FineTuneSettings

    try:
        return FineTuneSettings(
            epochs=args.epochs,
            lr=args.lr,
            lr_final=args.lr_final,
            batch_size=args.batch_size,
            freeze=args.freeze,
            energy_weight=args.energy_weight,
            force_weight=args.force_weight,
            stress_weight=args.stress_weight,
            seed=args.seed,
            device=args.device,
            patience=args.patience,
            refit_references=not args.no_refit_references,
        )
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _plot(calc, args: argparse.Namespace, result: Calibration) -> None:  # noqa: ANN001
    from softcalc.calculator import SoftCorrectedCalc
    from softcalc.data import read_datasets
    from softcalc.evaluation import compare_forces, merge_comparisons
    from softcalc.plots import parity_plot

    data = read_datasets(args.test or args.data)
    before = merge_comparisons([compare_forces(calc, d) for d in data])
    corrected = SoftCorrectedCalc(calc, correction=result.correction)
    after = merge_comparisons([compare_forces(corrected, d) for d in data])
    parity_plot(args.plot, [("bare", *before.pooled()), ("corrected", *after.pooled())], title=args.model)
