"""Options shared by several subcommands, the calculator they describe, and the structure they read."""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.io import read

from softcalc.calculator import SoftCorrectedCalc
from softcalc.cli.values import softening_scale
from softcalc.errors import DataError
from softcalc.registry import load_model


def add_command(sub: argparse._SubParsersAction, name: str, func: Callable) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` that runs ``func(args)``, documented by ``func``'s docstring.

    The docstring's first paragraph is the one-line help of ``softcalc --help``; the rest, when
    present, is the description of ``softcalc NAME --help``.
    """
    about, _, rest = inspect.getdoc(func).partition("\n\n")
    parser = sub.add_parser(name, help=" ".join(about.split()), description=" ".join(rest.split()) or None)
    parser.set_defaults(func=func)
    return parser


def add_model_options(
    parser: argparse.ArgumentParser, correction: bool = True, several: bool = False, required: bool = True
) -> None:
    """--model (or, with ``several``, --models: comma-separated names), --device, --dtype, and
    (optionally) --correction / --scale with --allow-any-model. ``required`` applies to --model /
    --models."""
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
        group.add_argument(
            "--scale", type=softening_scale, help="global softening correction λ, set by hand (0.1 to 10)"
        )
        parser.add_argument(
            "--allow-any-model",
            action="store_true",
            help="apply the --correction even if it was fitted for another model or names none "
            "(its 'model' block is missing); by default such a correction is refused",
        )


def model_names(text: str) -> list[str]:
    """The names of a comma-separated --models value, blanks dropped."""
    return [m.strip() for m in text.split(",") if m.strip()]


def build_calculator(args: argparse.Namespace) -> Calculator:
    """The bare model, or SoftCorrectedCalc when --correction or --scale is given (a correction for
    another model, or naming none, refused unless --allow-any-model)."""
    base = load_model(args.model, device=args.device, dtype=args.dtype)
    if getattr(args, "correction", None) or getattr(args, "scale", None) is not None:
        return SoftCorrectedCalc(
            base,
            correction=args.correction,
            scale=args.scale,
            check_model=not getattr(args, "allow_any_model", False),
        )
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
