"""phonopy finite-displacement force sets (``FORCE_SETS``) as reference data.

A phonopy folder holds ``FORCE_SETS`` (displacements and DFT forces, eV/Å) with ``phonopy_disp.yaml``
(unit cell, supercell and primitive matrices) or, without it, ``POSCAR-unitcell``. Each displaced
supercell becomes one :class:`ForceFrame`; the undisplaced supercell is the dataset's ``reference``
and ± displacements of the same atom form ``pairs``. :func:`load_phonopy_dir` returns the matching
``phonopy.Phonopy`` object (dataset attached, no force constants) for building force constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.data.paths import file_sha256, resolve_data_path
from softcalc.errors import DataError
from softcalc.phonons.phonopy_io import from_phonopy_atoms, load_phonopy

#: exchange-correlation functional of the shared phonopy example force sets, by folder name
FUNCTIONALS = {
    "Si": "PBE",
    "NaCl": "PBE",
    "MgO": "PBE",
    "MgB2": "PBE",
    "SiO2-HP": "PBE",
    "Al2O3": "PBEsol",
    "SnO2": "PBEsol",
    "LiF-nosym": "",
}
#: files that define a phonopy set, in the order they are hashed
SET_FILES = ("phonopy_disp.yaml", "POSCAR-unitcell", "FORCE_SETS")
#: two displacements u, v of one atom form a ± pair when |u + v| is below this fraction of |u|
PAIR_TOLERANCE = 1e-6


def _force_sets_natom(path: Path) -> int:
    """Number of supercell atoms declared on the first line of a type-1 ``FORCE_SETS``."""
    try:
        return int((path / "FORCE_SETS").read_text().split()[0])
    except (IndexError, ValueError):
        raise DataError(f"{path / 'FORCE_SETS'} does not start with the supercell atom count") from None


def _diagonal_supercell(path: Path) -> np.ndarray:
    """n×n×n supercell inferred from the atom counts of FORCE_SETS and POSCAR-unitcell."""
    from ase.io import read

    n_unit = len(read(path / "POSCAR-unitcell", format="vasp"))
    n_super = _force_sets_natom(path)
    n = round((n_super / n_unit) ** (1 / 3))
    if n**3 * n_unit != n_super:
        raise DataError(
            f"{path}: no phonopy_disp.yaml, and {n_super} supercell atoms are not an n×n×n multiple of the "
            f"{n_unit}-atom unit cell. Fix: add phonopy_disp.yaml or pass supercell_matrix."
        )
    return np.diag([n, n, n])


def load_phonopy_dir(path: str | Path, supercell_matrix: np.ndarray | None = None) -> Any:
    """A ``phonopy.Phonopy`` for a force-set folder, with the DFT dataset and no force constants.

    The primitive cell is phonopy 4's default (``primitive_matrix="auto"``). Without
    ``phonopy_disp.yaml`` the supercell matrix is ``supercell_matrix`` or inferred as n×n×n from the
    atom counts. A relative ``path`` that does not exist is looked up under ``$SOFTCALC_DATA_DIR``.
    Non-analytic corrections (``BORN``) are not read.
    """
    path = resolve_data_path(path)
    if not (path / "FORCE_SETS").exists():
        raise DataError(f"{path} has no FORCE_SETS. Fix: give a phonopy folder with FORCE_SETS.")
    common = {
        "force_sets_filename": str(path / "FORCE_SETS"),
        "primitive_matrix": "auto",
        "produce_fc": False,
        "is_nac": False,
        "log_level": 0,
    }
    if (path / "phonopy_disp.yaml").exists():
        return load_phonopy(str(path / "phonopy_disp.yaml"), **common)
    if not (path / "POSCAR-unitcell").exists():
        raise DataError(f"{path} has FORCE_SETS but neither phonopy_disp.yaml nor POSCAR-unitcell")
    matrix = _diagonal_supercell(path) if supercell_matrix is None else np.asarray(supercell_matrix)
    return load_phonopy(
        supercell_matrix=matrix, unitcell_filename=str(path / "POSCAR-unitcell"), calculator="vasp", **common
    )


def displacement_pairs(displacements: list[tuple[int, np.ndarray]]) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, of displacements of the same atom by +u and −u (each index used once)."""
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    for i, (atom_i, u_i) in enumerate(displacements):
        for j in range(i + 1, len(displacements)):
            atom_j, u_j = displacements[j]
            if i in used or j in used or atom_i != atom_j:
                continue
            if np.linalg.norm(u_i + u_j) <= PAIR_TOLERANCE * np.linalg.norm(u_i):
                pairs.append((i, j))
                used.update((i, j))
    return pairs


def read_phonopy_dir(path: str | Path, supercell_matrix: np.ndarray | None = None) -> ForceDataset:
    """One frame per displaced supercell with its DFT forces (eV/Å); see the module docstring."""
    path = resolve_data_path(path)
    phonon = load_phonopy_dir(path, supercell_matrix)
    first_atoms = phonon.dataset.get("first_atoms") if isinstance(phonon.dataset, dict) else None
    if not first_atoms:
        raise DataError(f"{path / 'FORCE_SETS'} holds no displacements (only type-1 FORCE_SETS supported)")
    displaced = phonon.supercells_with_displacements
    frames, displacements = [], []
    for k, (entry, cell) in enumerate(zip(first_atoms, displaced)):
        if entry.get("forces") is None:
            raise DataError(f"{path / 'FORCE_SETS'}: displacement {k + 1} has no forces")
        u = np.asarray(entry["displacement"], dtype=float)
        displacements.append((int(entry["number"]), u))
        frames.append(
            ForceFrame(
                atoms=from_phonopy_atoms(cell),
                forces=np.asarray(entry["forces"], dtype=float),
                group="displacement",
                label=f"atom {entry['number']} displaced by {np.round(u, 5).tolist()} Å",
            )
        )
    files = [path / name for name in SET_FILES if (path / name).exists()]
    return ForceDataset(
        frames,
        source=str(path),
        sha256=file_sha256(files),
        material=path.resolve().name,
        reference=from_phonopy_atoms(phonon.supercell),
        pairs=displacement_pairs(displacements),
        functional=FUNCTIONALS.get(path.resolve().name, ""),
    )
