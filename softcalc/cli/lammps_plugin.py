"""`softcalc lammps-plugin`: build the LAMMPS plugin when needed and print its path."""

from __future__ import annotations

import argparse

from softcalc.cli.common import add_command
from softcalc.lammps.build import plugin_path


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "lammps-plugin", run)
    p.add_argument("--build-dir", default=None, help="CMake build folder (default: build/lammps-plugin "
                   "in the source tree, or $SOFTCALC_LAMMPS_BUILD_DIR)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cached plugin is current")
    p.add_argument("--env", action="store_true",
                   help="print a shell line exporting LAMMPS_PLUGIN_PATH instead of the path")


def run(args: argparse.Namespace) -> int:
    """build (cached) and locate softcalcplugin.so, the LAMMPS pair_style softcalc

    Build softcalcplugin.so with CMake (cached) and print its path. In LAMMPS: 'plugin load PATH', or
    export LAMMPS_PLUGIN_PATH=<its folder> to load it automatically.
    """
    so = plugin_path(args.build_dir, rebuild=args.rebuild)
    print(f"export LAMMPS_PLUGIN_PATH={so.parent}" if args.env else so)
    return 0
