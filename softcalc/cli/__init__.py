"""The ``softcalc`` command line. Each subcommand lives in its own module with a ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys

from softcalc.errors import SoftcalcError

#: Subcommand modules under softcalc.cli, each defining ``register(subparsers)``.
COMMANDS = ("models", "evaluate", "calibrate", "demo", "md", "phonons", "bench", "lammps_plugin", "hessian")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="softcalc",
        description="Measure and correct PES softening of universal machine-learning potentials.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"softcalc.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``softcalc`` command. Softcalc errors print one clear message, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SoftcalcError as exc:
        print(f"softcalc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
