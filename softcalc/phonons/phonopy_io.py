"""The phonopy boundary: every phonopy file softcalc reads and every force-constant fit goes through here.

What phonopy does: it reads its files (``phonopy.load``: phonopy*.yaml, a unit-cell POSCAR,
FORCE_SETS, FORCE_CONSTANTS; :func:`read_phonopy` is softcalc's one loader), builds the supercell
and the primitive cell (spglib; ``"auto"`` primitive matrix by default), chooses symmetry-reduced
displacements, and fits force constants to a displacement dataset (:func:`fit_force_constants`, the
one fit, optionally symmetrised).

What softcalc does itself: finite-difference force constants with any calculator, batched
(:mod:`softcalc.phonons.force_constants`), the dynamical matrices and their diagonalisation on
meshes and band paths (Numba kernels, faster than phonopy's path on the same q-points: see
benchmarks/README.md), the acoustic sum rule, and the DOS and thermal properties of those mesh
frequencies (:mod:`softcalc.phonons.dos`, :mod:`softcalc.phonons.thermal`). The last two stay in
softcalc because phonopy computes them only from its own ``Mesh`` object (its classes read the
dynamical matrix, the Γ index and the BZ grid of that object, internals that changed between
phonopy 2 and 4), so taking them from phonopy would mean recomputing the mesh with phonopy and
dropping the Numba one; phonopy's public DOS also takes only an even frequency grid. Tests check
every shared quantity against phonopy's own numbers (frequencies 1e-6 THz, DOS 1e-8, F, S, Cv 1e-9).

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


def _force_sets_natom(path: Path) -> int:
    """Number of supercell atoms declared on the first line of a type-1 ``FORCE_SETS``."""
    try:
        return int(path.read_text().split()[0])
    except (IndexError, ValueError):
        raise DataError(f"{path} does not start with the supercell atom count") from None


def _diagonal_supercell(unitcell: Path, force_sets: Path) -> np.ndarray:
    """n×n×n supercell matrix inferred from the atom counts of FORCE_SETS and the unit cell."""
    from ase.io import read

    n_unit = len(read(unitcell, format="vasp"))
    n_super = _force_sets_natom(force_sets)
    n = round((n_super / n_unit) ** (1 / 3))
    if n**3 * n_unit != n_super:
        raise DataError(
            f"{unitcell.parent}: no phonopy yaml, and {n_super} supercell atoms are not an n×n×n multiple "
            f"of the {n_unit}-atom unit cell. Fix: add phonopy_disp.yaml or pass supercell_matrix."
        )
    return np.diag([n, n, n])


def read_phonopy(
    path: str | Path,
    supercell_matrix: Any = None,
    primitive_matrix: Any = "auto",
    force_sets: str | Path | None = None,
    force_constants: str | Path | None = None,
    produce_fc: bool = True,
) -> Phonopy:
    """Load a phonopy calculation: ``phonopy.yaml``/``phonopy_disp.yaml`` or a unit-cell POSCAR.

    Args:
        path: a phonopy yaml file, a POSCAR-like unit cell, or a folder holding one of them (looked
            for: phonopy.yaml, phonopy_disp.yaml, phonopy_params.yaml, POSCAR-unitcell, POSCAR).
        supercell_matrix: as in phonopy; needed for POSCAR input unless a type-1 FORCE_SETS beside it
            fixes an n×n×n supercell; overrides the yaml's when given.
        primitive_matrix: as in phonopy (default ``"auto"``: spglib's primitive cell).
        force_sets: FORCE_SETS path (default: ``FORCE_SETS`` beside the structure, when present).
        force_constants: FORCE_CONSTANTS path (default: beside the structure, when present and no
            FORCE_SETS was found).
        produce_fc: fit force constants to the force sets (:func:`fit_force_constants`, compact, no
            symmetrisation) or read the FORCE_CONSTANTS file; False loads the dataset only.

    Returns:
        a ``phonopy.Phonopy`` with its dataset (no non-analytic correction) and, when asked and
        available, force constants.
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
        "primitive_matrix": primitive_matrix,
        "is_nac": False,
        "symmetrize_fc": False,
        "produce_fc": produce_fc and force_sets is None and force_constants is not None,
        "force_sets_filename": force_sets,
        "force_constants_filename": force_constants,
        "log_level": 0,
    }
    if path.name.endswith(".yaml"):
        if supercell_matrix is not None:
            kwargs["supercell_matrix"] = supercell_matrix
        phonon = load_phonopy(path, **kwargs)
    else:
        if supercell_matrix is None:
            if force_sets is None:
                raise DataError(
                    f"{path} is a unit cell without a supercell matrix. Fix: pass supercell_matrix."
                )
            supercell_matrix = _diagonal_supercell(path, Path(force_sets))
        phonon = load_phonopy(supercell_matrix=supercell_matrix, unitcell_filename=path, **kwargs)
    if produce_fc and force_sets is not None:
        fit_force_constants(phonon)
    return phonon


def fit_force_constants(
    phonon: Phonopy, forces: Any = None, full: bool = False, symmetrize: bool = False
) -> np.ndarray:
    """phonopy's fit of force constants to the displacement dataset of ``phonon`` (set on it too).

    Args:
        phonon: a ``phonopy.Phonopy`` with a displacement dataset.
        forces: (n_displacements, n_supercell, 3) eV/Å replacing the dataset's forces, if given.
        full: every supercell row (n_s, n_s, 3, 3) instead of phonopy's compact (n_p, n_s, 3, 3).
        symmetrize: phonopy's symmetrisation (translational invariance and index permutation).

    Returns:
        the force constants in eV/Å² (a copy).
    """
    if phonon.dataset is None:
        raise DataError("the phonopy object holds no displacement dataset. Fix: load FORCE_SETS or pass one.")
    if forces is not None:
        phonon.forces = np.asarray(forces, dtype=float)
    phonon.produce_force_constants(calculate_full_force_constants=full)
    if symmetrize:
        phonon.symmetrize_force_constants()
    return np.array(phonon.force_constants)


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
