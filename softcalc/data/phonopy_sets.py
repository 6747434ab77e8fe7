"""phonopy finite-displacement force sets (``FORCE_SETS``) as reference data.

A phonopy folder holds ``FORCE_SETS`` (displacements and DFT forces, eV/Å) with ``phonopy_disp.yaml``
(unit cell, supercell and primitive matrices) or, without it, ``POSCAR-unitcell``. Each displaced
supercell becomes one :class:`ForceFrame`; the undisplaced supercell is the dataset's ``reference``
and ± displacements of the same atom form ``pairs``. :func:`load_phonopy_set` also returns the matching
``phonopy.Phonopy`` object (dataset attached, no force constants), read through the one phonopy
loader, :func:`softcalc.phonons.phonopy_io.read_phonopy`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.data.paths import file_sha256, resolve_data_path
from softcalc.errors import DataError
from softcalc.phonons.phonopy_io import from_phonopy_atoms, read_phonopy

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


def load_phonopy_set(
    path: str | Path, supercell_matrix: np.ndarray | None = None
) -> tuple[ForceDataset, Any]:
    """A force-set folder as reference data and as phonopy sees it (see the module docstring).

    Returns:
        (dataset, phonon): one frame per displaced supercell with its DFT forces (eV/Å), and the
        ``phonopy.Phonopy`` (read by :func:`~softcalc.phonons.phonopy_io.read_phonopy`, dataset
        attached, no force constants). A relative ``path`` that does not exist is looked up under
        ``$SOFTCALC_DATA_DIR``.
    """
    path = resolve_data_path(path)
    if not path.is_dir():
        raise DataError(
            f"{path} is a file, not a phonopy folder. Fix: give the folder holding FORCE_SETS and "
            "phonopy_disp.yaml (or POSCAR-unitcell)."
        )
    if not (path / "FORCE_SETS").is_file():
        why = "a folder named FORCE_SETS" if (path / "FORCE_SETS").exists() else "no FORCE_SETS"
        raise DataError(f"{path} has {why}. Fix: give a phonopy folder with a FORCE_SETS file.")
    if not any((path / name).is_file() for name in ("phonopy_disp.yaml", "POSCAR-unitcell")):
        raise DataError(
            f"{path} has FORCE_SETS but neither phonopy_disp.yaml nor POSCAR-unitcell. Fix: add the "
            "phonopy_disp.yaml (or the unit cell as POSCAR-unitcell) the FORCE_SETS was made with."
        )
    structure = path / "phonopy_disp.yaml"
    if not structure.is_file():
        structure = path / "POSCAR-unitcell"
    # malformed files and a FORCE_SETS of another supercell end in read_phonopy as DataErrors
    phonon = read_phonopy(structure, supercell_matrix, force_sets=path / "FORCE_SETS", produce_fc=False)
    first_atoms = phonon.dataset.get("first_atoms") if isinstance(phonon.dataset, dict) else None
    if not first_atoms:
        raise DataError(
            f"{path / 'FORCE_SETS'} holds no type-1 displacements (one displaced atom per supercell). "
            "Fix: write FORCE_SETS with phonopy's default type-1 format."
        )
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
    dataset = ForceDataset(
        frames,
        source=str(path),
        sha256=file_sha256(files),
        material=path.resolve().name,
        reference=from_phonopy_atoms(phonon.supercell),
        pairs=displacement_pairs(displacements),
        functional=FUNCTIONALS.get(path.resolve().name, ""),
    )
    return dataset, phonon


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
    """One frame per displaced supercell with its DFT forces (eV/Å); see :func:`load_phonopy_set`."""
    return load_phonopy_set(path, supercell_matrix)[0]
