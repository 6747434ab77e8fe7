"""Options shared by several subcommands, the calculator they describe, and the structure they read."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.io import read

from softcalc.calculator import SoftCorrectedCalc
from softcalc.errors import DataError
from softcalc.registry import load_model


def _at_least(text: str, convert: Callable[[str], float], what: str, low: float, strict: bool) -> float:
    """``text`` as a finite number >= ``low`` (> ``low`` when ``strict``); ArgumentTypeError otherwise.

    argparse prefixes the message with the option (``argument --bootstrap: ...``) and exits with 2.
    """
    bound = f"{'>' if strict else '>='} {low:g}"
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}") from None
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise argparse.ArgumentTypeError(f"must be {what} {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts: frames, steps, replicas, batch sizes)."""
    return int(_at_least(text, int, "an integer", 1, strict=False))


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (random seeds, step counts that may be zero)."""
    return int(_at_least(text, int, "an integer", 0, strict=False))


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (time steps, displacements, time constants, scales)."""
    return _at_least(text, float, "a number", 0, strict=True)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (temperatures in K, friction, equilibration time)."""
    return _at_least(text, float, "a number", 0, strict=False)


def add_model_options(
    parser: argparse.ArgumentParser, correction: bool = True, several: bool = False, required: bool = True
) -> None:
    """--model (or, with ``several``, --models: comma-separated names), --device, --dtype, and
    (optionally) --correction / --scale. ``required`` applies to --model / --models."""
    if several:
        name, text = "--models", "comma-separated model names (e.g. chgnet,m3gnet)"
    else:
        name, text = "--model", "model name (see `softcalc models`) or weights path"
    parser.add_argument(name, required=required, help=text)
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None, help="model precision")
    if correction:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--correction", help="correction JSON from `softcalc calibrate`")
        group.add_argument("--scale", type=positive_float, help="global softening correction λ")


def model_names(text: str) -> list[str]:
    """The names of a comma-separated --models value, blanks dropped."""
    return [m.strip() for m in text.split(",") if m.strip()]


def build_calculator(args: argparse.Namespace) -> Calculator:
    """The bare model, or SoftCorrectedCalc when --correction or --scale is given."""
    base = load_model(args.model, device=args.device, dtype=args.dtype)
    if getattr(args, "correction", None) or getattr(args, "scale", None) is not None:
        return SoftCorrectedCalc(base, correction=args.correction, scale=args.scale)
    return base


def read_structure(path: str | Path) -> Atoms:
    """The structure in ``path`` (its last frame, as ASE reads by default).

    Raises:
        DataError: the file is missing, a folder, not readable by ASE, or holds no atoms; the message
            names the file, the problem and the fix.
    """
    path = Path(path)
    fix = "Fix: pass a structure file ASE reads (extxyz, POSCAR, cif, ...) whose name tells its format."
    if not path.exists():
        raise DataError(f"the structure file {path} does not exist. Fix: check the path.")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a structure file. {fix}")
    try:
        atoms = read(path)
    except Exception as exc:  # ASE's readers raise whatever their parser hits in a malformed file
        problem = str(exc) or type(exc).__name__
        raise DataError(f"cannot read a structure from {path}: {problem}. {fix}") from exc
    if len(atoms) == 0:
        raise DataError(f"{path} holds no atoms. {fix}")
    return atoms


def command_line() -> str:
    """The command as typed, for provenance."""
    return shlex.join(["softcalc", *sys.argv[1:]])
