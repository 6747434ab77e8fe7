"""Options shared by several subcommands and the calculator they describe."""

from __future__ import annotations

import argparse
import shlex
import sys

from ase.calculators.calculator import Calculator

from softcalc.calculator import SoftCorrectedCalc
from softcalc.registry import load_model


def add_model_options(parser: argparse.ArgumentParser, correction: bool = True) -> None:
    """--model, --device, --dtype, and (optionally) --correction / --scale."""
    parser.add_argument("--model", required=True, help="model name (see `softcalc models`) or weights path")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None, help="model precision")
    if correction:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--correction", help="correction JSON from `softcalc calibrate`")
        group.add_argument("--scale", type=float, help="global softening correction λ")


def build_calculator(args: argparse.Namespace) -> Calculator:
    """The bare model, or SoftCorrectedCalc when --correction or --scale is given."""
    base = load_model(args.model, device=args.device, dtype=args.dtype)
    if getattr(args, "correction", None) or getattr(args, "scale", None) is not None:
        return SoftCorrectedCalc(base, correction=args.correction, scale=args.scale)
    return base


def command_line() -> str:
    """The command as typed, for provenance."""
    return shlex.join(["softcalc", *sys.argv[1:]])
