"""`softcalc models`: list installed plugins and the model names they serve."""

from __future__ import annotations

import argparse

from softcalc.cli.common import add_command
from softcalc.registry import available_models


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, "models", run)


def run(args: argparse.Namespace) -> int:
    """list available model families and names"""
    for family, names in available_models().items():
        print(f"{family}:")
        for name, description in names.items():
            print(f"  {name:36s} {description}")
    return 0
