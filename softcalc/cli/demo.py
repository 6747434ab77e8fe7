"""`softcalc demo`: the one-shot workflow of the paper on the shared mlearn DFT data.

For each material, λ is fitted on ONE DFT frame of the training split (the frame with the largest
forces, as in the paper), then checked on the held-out test split. Prints the before/after table and
writes corrections, reports and parity plots to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from softcalc.calibration.pipeline import calibrate
from softcalc.cli.common import add_command, command_line
from softcalc.data.paths import resolve_data_path
from softcalc.fileio import write_json
from softcalc.registry import load_model


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "demo", run)
    p.add_argument("--model", default="chgnet", help="model name (default chgnet)")
    p.add_argument("--materials", default="Si,Ge,Li,Mo", help="mlearn materials (default Si,Ge,Li,Mo)")
    p.add_argument(
        "--data", default="forces/mlearn", help="mlearn folder (default $SOFTCALC_DATA_DIR/forces/mlearn)"
    )
    p.add_argument("--out", default="demo_out", help="output folder")


def run(args: argparse.Namespace) -> int:
    """calibrate a model on one DFT frame per material and test it"""
    root = resolve_data_path(args.data)
    out = Path(args.out)
    calc = load_model(args.model)
    rows = []
    for material in args.materials.split(","):
        result = calibrate(
            calc,
            root / material / "training.json",
            frames=1,
            order="largest-force",
            test=root / material / "test.json",
            n_bootstrap=500,
            progress=True,
            provenance={"command": command_line()},
        )
        r = result.report
        result.correction.save(out / f"{args.model}-{material}.correction.json")
        write_json(out / f"{args.model}-{material}.report.json", r.to_dict())
        rows.append((material, r))
    print(
        f"\n{args.model}: λ fitted on 1 DFT frame (largest forces) of mlearn training, tested on mlearn test"
    )
    header = f"{'material':9s}{'s(test)':>9s}{'λ':>8s}{'±':>7s}{'MAE bare':>10s}{'MAE corr':>10s}  verdict"
    print(header)
    print("-" * len(header))
    for material, r in rows:
        print(
            f"{material:9s}{r.softening_scale:9.3f}{r.scale:8.3f}{r.scale_std:7.3f}"
            f"{r.mae_before:10.4f}{r.mae_after:10.4f}  {'applies' if r.recommended else 'REJECTED'}"
        )
    for material, r in rows:
        for w in r.warnings:
            print(f"{material}: WARNING: {w}")
    write_json(out / "summary.json", {m: r.to_dict() for m, r in rows})
    print(f"\ncorrections and reports in {out}/ (MAE in eV/Å on the held-out test frames)")
    return 0
