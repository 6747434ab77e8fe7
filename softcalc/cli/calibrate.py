"""`softcalc calibrate`: fit a softening correction on DFT forces and check it on held-out frames."""

from __future__ import annotations

import argparse

from softcalc.calibration.pipeline import ORDERS, Calibration, calibrate
from softcalc.calibration.registry import TARGETS, method_names, method_spec, methods
from softcalc.cli.common import add_command, add_model_options, build_calculator, command_line
from softcalc.cli.values import non_negative_float, non_negative_int, positive_float, positive_int
from softcalc.fileio import check_outputs, write_json
from softcalc.finetune.settings import PRESETS, FineTuneSettings

#: fine-tuning options: (FineTuneSettings field, type, help); the flag is the field with dashes
#: (``lr_final`` -> ``--lr-final``) and the default is FineTuneSettings'
TUNING_OPTIONS = (
    ("epochs", positive_int, "training epochs"),
    ("lr", positive_float, "first Adam learning rate"),
    ("lr_final", positive_float, "last learning rate of the cosine decay"),
    ("batch_size", positive_int, "structures per step"),
    ("freeze", str, "none (all train), all-but-readout, or all-but-last:K (readout and last K blocks train)"),
    ("energy_weight", non_negative_float, "per (eV/atom)²"),
    ("force_weight", non_negative_float, "per (eV/Å)²"),
    ("stress_weight", non_negative_float, "per GPa²"),
    ("patience", positive_int, "stop after this many epochs without validation gain"),
    ("anchor", non_negative_float, "pull to the starting weights (L2-SP): anchor x lr of θ - θ₀ per step"),
    ("ema", non_negative_float, "decay of the moving average of the weights (< 1), validated and kept"),
    ("loss", str, "mse or huber"),
    ("huber_delta_energy", positive_float, "Huber delta, eV/atom"),
    ("huber_delta_force", positive_float, "Huber delta, eV/Å"),
    ("huber_delta_stress", positive_float, "Huber delta, GPa"),
    ("min_epochs", positive_int, "the kept epoch is at least this one, or 0 when none validates better"),
    ("min_validation_force_rms", non_negative_float,
     "validation frames with a DFT force RMS below this (eV/Å) count for energy and stress only"),
    ("replay", non_negative_float, "weight of base-model labels on ground states and other chemistries"),
)  # fmt: skip


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
        "--order",
        choices=ORDERS,
        help="frame order before taking K (default: file for λ, spread for finetune and auto)",
    )
    p.add_argument(
        "--method",
        choices=method_names(),
        help="; ".join(f"{spec.name}: {spec.help}" for spec in methods()),
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
    tune.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="softcalc",
        help="named settings the options below override (default softcalc: the defaults below; equitrain: "
        "Huber, weights 10 / 100 / 0.039 per GPa², anchor 10; stress: stress weight 1 per GPa²)",
    )
    defaults = FineTuneSettings()
    for name, kind, text in TUNING_OPTIONS:
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        tune.add_argument(flag, dest=name, type=kind, help=f"{text} (default {default})")
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
    """Human-readable summary: the method's parameters, errors before/after, warnings, the verdict."""
    r = result.report
    for line in method_spec(r.method).describe(r):
        print(line)
    e = r.errors
    print(f"softening scale s = {r.softening_scale:.4f} on {r.errors_on} frames ({e['n_frames']})")
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
    for material, values in r.properties.items():
        pairs = [f"{name.replace('_', ' ')} {a:.2f} -> {b:.2f}" for name, (a, b) in values.items()]
        print(f"{material} properties (model/DFT, bare -> corrected): {', '.join(pairs)}")
    for w in r.warnings:
        print(f"WARNING: {w}")
    print(r.verdict)


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
    settings = _finetune_settings(args)
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
        per_species=args.per_species,
        method=args.method,
        finetune=settings,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        regime=args.regime,
        progress=not args.quiet,
        provenance={"command": command_line()},
    )
    saved = result.save(args.out)
    if args.json:
        write_json(args.json, result.report.to_dict())
    if args.plot:
        _plot(calc, args, result)
    print_report(result)
    weights = f" with tuned weights {saved.weights_file()}" if saved.weights else ""
    print(
        f"correction written to {args.out}{weights}"
        + ("" if result.correction.recommended else " (marked NOT recommended)")
    )
    return 0


def _finetune_settings(args: argparse.Namespace) -> FineTuneSettings:
    """The fine-tuning options given, over FineTuneSettings' defaults; invalid ones are a one-line error."""
    given = {name: getattr(args, name) for name, _, _ in TUNING_OPTIONS if getattr(args, name) is not None}
    given.update(seed=args.seed, device=args.device, refit_references=not args.no_refit_references)
    return FineTuneSettings.preset(args.preset, **given)


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
