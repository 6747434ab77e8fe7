"""Interop with phonopy: structures both ways, phonopy files in, FORCE_CONSTANTS out.

phonopy is an optional dependency (``pip install 'softcalc[phonons]'``); it is imported on use.
Masses travel with the structures both ways, so softcalc and phonopy always use the same masses.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from softcalc.errors import DataError, MissingDependencyError

if TYPE_CHECKING:
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

#: phonopy files that describe a structure and its supercell, in the order they are looked for
PHONOPY_YAML_NAMES = ("phonopy.yaml", "phonopy_disp.yaml", "phonopy_params.yaml")


def require_phonopy() -> None:
    """Raise :class:`MissingDependencyError` naming the extra when phonopy is not installed."""
    try:
        import phonopy  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("phonopy", "phonons", "periodic phonons") from exc


def load_phonopy(*args: Any, **kwargs: Any) -> Phonopy:
    """``phonopy.load`` without phonopy 4's warning that the primitive matrix resolved to ``"auto"``.

    softcalc wants phonopy's default primitive cell on purpose (results compare with phonopy's own),
    and phonopy warns even when ``"auto"`` is asked for explicitly.
    """
    require_phonopy()
    import phonopy

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="primitive_matrix defaulted")
        return phonopy.load(*args, **kwargs)


def to_phonopy_atoms(atoms: Atoms) -> PhonopyAtoms:
    """ASE Atoms -> PhonopyAtoms (symbols, cell Å, fractional positions, masses amu)."""
    require_phonopy()
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(wrap=False),
        masses=atoms.get_masses(),
    )


def from_phonopy_atoms(cell: Any) -> Atoms:
    """PhonopyAtoms (or phonopy's Primitive/Supercell) -> periodic ASE Atoms with phonopy's masses."""
    atoms = Atoms(
        symbols=list(cell.symbols), cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True
    )
    atoms.set_masses(cell.masses)
    return atoms


def read_phonopy(
    path: str | Path,
    supercell_matrix: Any = None,
    primitive_matrix: Any = "auto",
    force_sets: str | Path | None = None,
    force_constants: str | Path | None = None,
) -> Phonopy:
    """Load a phonopy calculation: ``phonopy.yaml``/``phonopy_disp.yaml`` or a unit-cell POSCAR.

    Args:
        path: a phonopy yaml file, a POSCAR-like unit cell (then ``supercell_matrix`` is needed), or a
            folder holding one of them (looked for: phonopy.yaml, phonopy_disp.yaml,
            phonopy_params.yaml, POSCAR-unitcell, POSCAR).
        supercell_matrix, primitive_matrix: as in phonopy, for POSCAR input or to override.
        force_sets: FORCE_SETS path (default: ``FORCE_SETS`` beside the structure, when present).
        force_constants: FORCE_CONSTANTS path (default: beside the structure, when present and no
            FORCE_SETS was found).

    Returns:
        a ``phonopy.Phonopy`` with its dataset and, when forces or constants were found, force
        constants produced (no symmetrisation, no NAC: the same numbers softcalc then uses).
    """
    require_phonopy()

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        names = (*PHONOPY_YAML_NAMES, "POSCAR-unitcell", "POSCAR")
        found = [folder / n for n in names if (folder / n).is_file()]
        if not found:
            raise DataError(f"no phonopy structure file in {folder} (looked for {', '.join(names)}).")
        path = found[0]
    if not path.is_file():
        raise DataError(f"{path} does not exist. Fix: check the path.")
    if force_sets is None and (folder / "FORCE_SETS").is_file():
        force_sets = folder / "FORCE_SETS"
    if force_sets is None and force_constants is None and (folder / "FORCE_CONSTANTS").is_file():
        force_constants = folder / "FORCE_CONSTANTS"
    kwargs: dict[str, Any] = {
        "is_nac": False,
        "symmetrize_fc": False,
        "produce_fc": force_sets is not None or force_constants is not None,
        "force_sets_filename": force_sets,
        "force_constants_filename": force_constants,
        "log_level": 0,
    }
    if path.name.endswith(".yaml"):
        if supercell_matrix is not None:
            kwargs.update(supercell_matrix=supercell_matrix, primitive_matrix=primitive_matrix)
        return load_phonopy(path, **kwargs)
    if supercell_matrix is None:
        raise DataError(f"{path} is a unit cell without a supercell matrix. Fix: pass supercell_matrix.")
    return load_phonopy(
        supercell_matrix=supercell_matrix, primitive_matrix=primitive_matrix, unitcell_filename=path, **kwargs
    )


def read_force_sets(path: str | Path, natom: int | None = None) -> dict[str, Any]:
    """Parse a phonopy FORCE_SETS file into phonopy's dataset dict (displacements Å, forces eV/Å)."""
    require_phonopy()
    from phonopy.file_IO import parse_FORCE_SETS

    if not Path(path).is_file():
        raise DataError(f"{path} does not exist. Fix: check the path.")
    return dict(parse_FORCE_SETS(path, natom=natom))


def read_force_constants(path: str | Path) -> np.ndarray:
    """Parse a phonopy FORCE_CONSTANTS file: (n_rows, n_supercell, 3, 3) eV/Å² (full or compact)."""
    require_phonopy()
    from phonopy.file_IO import parse_FORCE_CONSTANTS

    if not Path(path).is_file():
        raise DataError(f"{path} does not exist. Fix: check the path.")
    return parse_FORCE_CONSTANTS(path)


def write_force_constants(
    path: str | Path, force_constants: np.ndarray, p2s: np.ndarray | None = None
) -> None:
    """Write phonopy's FORCE_CONSTANTS text file; compact constants need ``p2s`` (supercell indices)."""
    require_phonopy()
    from phonopy.file_IO import write_FORCE_CONSTANTS

    from softcalc.fileio import atomic_path

    with atomic_path(path) as tmp:
        write_FORCE_CONSTANTS(force_constants, filename=tmp, p2s_map=p2s)
