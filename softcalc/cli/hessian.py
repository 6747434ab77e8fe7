"""`softcalc hessian`: finite-difference Hessian and vibrational frequencies of any structure."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from softcalc.cli.common import add_command, add_model_options, build_calculator, command_line, read_structure
from softcalc.cli.values import positive_float, positive_int
from softcalc.fileio import check_outputs, write_json
from softcalc.hessian import acoustic_sum_rule, fd_hessian, save_hessian, thz_to_cm1, vibrational_modes


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "hessian", run)
    add_model_options(p)
    p.add_argument("structure", help="structure file readable by ASE (extxyz, POSCAR, cif...)")
    p.add_argument("--out", required=True, help="output HDF5 file of the Hessian (eV/Å²)")
    p.add_argument("--json", help="summary JSON: frequencies in THz and cm⁻¹")
    p.add_argument("--delta", type=positive_float, default=0.01, help="displacement in Å (default 0.01)")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="displaced structures per model batch (default by --device: 1 on cpu, 8 on cuda)",
    )
    p.add_argument("--asr", action="store_true", help="impose the acoustic sum rule")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """finite-difference Hessian (HDF5) and vibrational frequencies"""
    check_outputs({"--out": args.out, "--json": args.json}, inputs=[args.structure])
    atoms = read_structure(args.structure)
    calc = build_calculator(args)
    hessian = fd_hessian(atoms, calc, delta=args.delta, batch_size=args.batch_size, progress=not args.quiet)
    if args.asr:
        hessian = acoustic_sum_rule(hessian)
    meta = {
        "model": args.model,
        "scale": args.scale,
        "correction": args.correction,
        "delta_angstrom": args.delta,
        "acoustic_sum_rule": args.asr,
        "structure": str(Path(args.structure).resolve()),
        "command": command_line(),
    }
    save_hessian(args.out, hessian, atoms, meta)
    freqs, _ = vibrational_modes(hessian, atoms.get_masses())
    n_imag = int(np.sum(freqs < -1e-3))
    print(f"{len(atoms)} atoms, {n_imag} imaginary modes; highest {thz_to_cm1(freqs.max()):.1f} cm^-1")
    print(f"wrote {args.out}")
    if args.json:
        write_json(args.json, {**meta, "frequencies_thz": freqs, "frequencies_cm1": thz_to_cm1(freqs)})
    return 0
