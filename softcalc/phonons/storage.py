"""HDF5 storage of Hessians, force constants and phonon data, with structures and metadata.

Layout: one group per file kind (``/hessian``, ``/force_constants``...) holding the arrays as
datasets, structures as sub-groups (numbers, positions Å, cell Å, pbc, masses amu) and metadata as a
JSON string attribute ``metadata``. Files are written atomically (see :mod:`softcalc.fileio`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms

from softcalc.errors import DataError
from softcalc.fileio import atomic_path, json_default

FORMAT_VERSION = 1


def _write_atoms(group: h5py.Group, atoms: Atoms) -> None:
    group.create_dataset("numbers", data=atoms.numbers)
    group.create_dataset("positions", data=atoms.positions)
    group.create_dataset("cell", data=np.asarray(atoms.cell))
    group.create_dataset("pbc", data=atoms.pbc)
    group.create_dataset("masses", data=atoms.get_masses())


def _read_atoms(group: h5py.Group) -> Atoms:
    atoms = Atoms(
        numbers=group["numbers"][()],
        positions=group["positions"][()],
        cell=group["cell"][()],
        pbc=group["pbc"][()],
    )
    atoms.set_masses(group["masses"][()])
    return atoms


def write_h5(
    path: str | Path,
    kind: str,
    arrays: Mapping[str, np.ndarray],
    structures: Mapping[str, Atoms],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write arrays, structures and JSON metadata under group ``kind`` of a new HDF5 file."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group(kind)
        group.attrs["format_version"] = FORMAT_VERSION
        group.attrs["metadata"] = json.dumps(dict(metadata or {}), default=json_default)
        for name, value in arrays.items():
            group.create_dataset(name, data=np.asarray(value))
        for name, atoms in structures.items():
            _write_atoms(group.create_group(name), atoms)


def read_h5(
    path: str | Path, kind: str, structure_names: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, Atoms], dict[str, Any]]:
    """Read what :func:`write_h5` wrote: (arrays, structures, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist. Fix: check the path.")
    with h5py.File(path, "r") as f:
        if kind not in f:
            raise DataError(f"{path} holds no '{kind}' group (found: {', '.join(f) or 'nothing'}).")
        group = f[kind]
        structures = {name: _read_atoms(group[name]) for name in structure_names if name in group}
        arrays = {name: item[()] for name, item in group.items() if isinstance(item, h5py.Dataset)}
        metadata = json.loads(group.attrs.get("metadata", "{}"))
    return arrays, structures, metadata
