"""The phonopy boundary: every phonopy file softcalc reads and every force-constant fit goes through here.

What phonopy does: it reads its files (``phonopy.load``: phonopy*.yaml, a unit-cell POSCAR,
FORCE_SETS, FORCE_CONSTANTS; :func:`read_phonopy` is softcalc's one reader of phonopy files, through
:func:`phonopy_object`), builds the supercell and the primitive cell (spglib; ``"auto"`` primitive
matrix by default), chooses symmetry-reduced displacements, and fits force constants to a
displacement dataset (:func:`fit_force_constants`, the one fit, optionally symmetrised).

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

Malformed files end here as a :class:`~softcalc.errors.DataError` naming the file, the problem and
the fix, never as phonopy's internals: :func:`check_force_sets` reads a FORCE_SETS before phonopy
does (phonopy's parser recurses until RecursionError on a truncated one), and :func:`_phonopy_errors`
turns what phonopy and its YAML reader raise into an explanation (a FORCE_SETS of another supercell,
an empty or unparsable yaml, a yaml without a structure). phonopy reads FORCE_SETS and
FORCE_CONSTANTS from the current directory when it is given none; softcalc runs it in an empty
temporary folder and names every file it should read, so files that happen to lie where the user
runs softcalc are never mixed in.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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
#: keys of a phonopy yaml that hold a structure
YAML_STRUCTURE_KEYS = ("unit_cell", "primitive_cell", "supercell")
#: the fix for a damaged or mismatched phonopy folder
FIX_FOLDER = (
    "Fix: put the phonopy_disp.yaml written by `phonopy -d` and the FORCE_SETS made from its displaced "
    "supercells (`phonopy -f ...`) of the same calculation into the folder, complete"
)


def require_phonopy() -> None:
    """Raise :class:`MissingDependencyError` naming the extra when phonopy is not installed."""
    try:
        import phonopy  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("phonopy", "phonons", "periodic phonons") from exc


def phonopy_object(*args: Any, **kwargs: Any) -> Phonopy:
    """A ``phonopy.Phonopy`` built by ``phonopy.load(*args, **kwargs)``, without phonopy 4's warning that
    the primitive matrix resolved to ``"auto"``. Files are read through :func:`read_phonopy`, which calls
    this with absolute paths in an empty folder.

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


def check_force_sets(path: str | Path) -> int | None:
    """Check the text of a phonopy FORCE_SETS before phonopy parses it; returns its supercell atom count.

    Type 1 (phonopy's usual format): the atom count, the number of displacements, then per
    displacement the displaced atom (1-based), its displacement (Å) and one force line (eV/Å) per
    supercell atom. Type 2: one line of displacement and force per atom, no header (None returned).

    Raises:
        DataError: the file is a folder, empty, binary, truncated, has lines that are not the numbers
            expected there (or not finite), or more lines than its header announces; the message names
            the file, the line and the fix.
    """
    path = Path(path)
    fix = "Fix: copy the complete FORCE_SETS again, or write it anew with `phonopy -f` from the calculations."
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a FORCE_SETS file. {fix}")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file, so not a phonopy FORCE_SETS. {fix}") from None
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise DataError(f"{path} is empty. {fix}")

    def numbers(line: tuple[int, list[str]], count: int, what: str, kind: type = float) -> list[float]:
        n, tokens = line
        try:
            values = [kind(t) for t in tokens]
        except ValueError:
            values = []
        if len(values) != count:
            raise DataError(
                f"{path} line {n}: expected {what} ({count} {'integer' if kind is int else 'number'}"
                f"{'s' if count > 1 else ''}), found {' '.join(tokens)!r}. {fix}"
            )
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{path} line {n}: {what} is not finite ({' '.join(tokens)}). {fix}")
        return values

    if len(lines[0][1]) == 6:  # type 2
        for k, line in enumerate(lines):
            numbers(line, 6, f"displacement and force of row {k + 1}")
        return None
    if len(lines[0][1]) != 1:
        raise DataError(
            f"{path} is not a phonopy FORCE_SETS: its first line should be the number of supercell atoms, "
            f"found {' '.join(lines[0][1])[:60]!r}. {fix}"
        )
    natom = int(numbers(lines[0], 1, "the number of supercell atoms", int)[0])
    if len(lines) < 2:
        raise DataError(f"{path} is truncated: it ends after the atom count. {fix}")
    n_disp = int(numbers(lines[1], 1, "the number of displacements", int)[0])
    if natom < 1 or n_disp < 1:
        raise DataError(f"{path} declares {natom} atoms and {n_disp} displacements: no force data. {fix}")
    block = 2 + natom
    for k in range(n_disp):
        rows = lines[2 + k * block : 2 + (k + 1) * block]
        if len(rows) < block:
            raise DataError(
                f"{path} is truncated: it declares {n_disp} displacement(s) of {natom} atoms but ends in "
                f"displacement {k + 1} ({max(len(rows) - 2, 0)} of {natom} force lines; last line "
                f"{lines[-1][0]}). {fix}"
            )
        atom = int(numbers(rows[0], 1, f"the displaced atom of displacement {k + 1}", int)[0])
        if not 1 <= atom <= natom:
            raise DataError(
                f"{path} line {rows[0][0]}: displaced atom {atom} is not one of the {natom} supercell "
                f"atoms. {fix}"
            )
        numbers(rows[1], 3, f"the displacement (Å) of displacement {k + 1}")
        for i, row in enumerate(rows[2:]):
            numbers(row, 3, f"the force on atom {i + 1} of displacement {k + 1}")
    extra = len(lines) - (2 + n_disp * block)
    if extra > 0:
        raise DataError(
            f"{path} has {extra} line(s) after its {n_disp} displacement(s) of {natom} atoms (line "
            f"{lines[2 + n_disp * block][0]} on): the counts on its first two lines do not match its data. "
            f"{fix}"
        )
    return natom


def _yaml_problem(path: Path) -> str | None:
    """What makes ``path`` unusable as a phonopy yaml (empty, not YAML, no structure), else None."""
    import yaml

    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return "it is not a text file"
    if not text.strip():
        return "it is empty"
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"it is not valid YAML ({getattr(exc, 'problem', None) or 'syntax error'}{where})"
    if not isinstance(content, dict):
        return f"it holds a YAML {type(content).__name__}, not phonopy's mapping of keys"
    if not any(key in content for key in YAML_STRUCTURE_KEYS):
        return f"it holds no structure (none of {', '.join(YAML_STRUCTURE_KEYS)})"
    return None


def _supercell_atoms(structure: Path, supercell_matrix: Any) -> int | None:
    """Atoms in the supercell that ``structure`` (yaml, or POSCAR with a matrix) defines; None if unknown."""
    try:
        with _isolated():
            if structure.name.endswith(".yaml"):
                kwargs = {} if supercell_matrix is None else {"supercell_matrix": supercell_matrix}
                phonon = phonopy_object(structure, produce_fc=False, log_level=0, **kwargs)
            elif supercell_matrix is not None:
                phonon = phonopy_object(
                    supercell_matrix=supercell_matrix, unitcell_filename=structure, produce_fc=False
                )
            else:
                return None
        return len(phonon.supercell)
    except Exception:  # only a diagnosis: the caller reports the original failure
        return None


@contextmanager
def _isolated() -> Iterator[None]:
    """Run phonopy in an empty temporary folder (paths given to it must be absolute): it reads
    FORCE_SETS, FORCE_CONSTANTS and force_constants.hdf5 from the current directory when it is given
    none, and those must never be files that happen to lie where softcalc was started."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="softcalc-phonopy-") as empty:
        os.chdir(empty)
        try:
            yield
        finally:
            os.chdir(before)


@contextmanager
def _phonopy_errors(
    structure: Path, force_sets: Path | None = None, supercell_matrix: Any = None, other: Path | None = None
) -> Iterator[None]:
    """What phonopy raises on malformed files, as a DataError that names the file, the problem and the fix."""
    try:
        yield
    except (DataError, MissingDependencyError, MemoryError):
        raise
    except Exception as exc:
        problem = _yaml_problem(structure) if structure.name.endswith(".yaml") else None
        if problem is not None:
            raise DataError(f"{structure} cannot be used: {problem}. {FIX_FOLDER}.") from exc
        reason = _reason(exc)
        if force_sets is not None:
            n_forces = check_force_sets(force_sets)
            n_super = _supercell_atoms(structure, supercell_matrix)
            if n_forces is not None and n_super is not None and n_forces != n_super:
                raise DataError(
                    f"{force_sets} holds forces on {n_forces} atoms but the supercell of {structure} has "
                    f"{n_super}: the FORCE_SETS belongs to another structure or supercell. {FIX_FOLDER}."
                ) from exc
        files = " with ".join(str(f) for f in (structure, force_sets or other) if f is not None)
        raise DataError(f"phonopy cannot use {files}: {reason}. {FIX_FOLDER}.") from exc


def _reason(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, shortened, without a final period."""
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _force_sets_natom(path: Path) -> int:
    """Number of supercell atoms of a type-1 ``FORCE_SETS`` (the file checked whole)."""
    natom = check_force_sets(path)
    if natom is None:
        raise DataError(
            f"{path} is a type-2 FORCE_SETS, whose supercell size softcalc cannot infer. "
            "Fix: add phonopy_disp.yaml or pass supercell_matrix."
        )
    return natom


def _diagonal_supercell(unitcell: Path, force_sets: Path) -> np.ndarray:
    """n×n×n supercell matrix inferred from the atom counts of FORCE_SETS and the unit cell."""
    from ase.io import read

    try:
        n_unit = len(read(unitcell, format="vasp"))
    except Exception as exc:  # ASE's VASP reader raises whatever a malformed POSCAR makes it hit
        raise DataError(
            f"cannot read the unit cell from {unitcell}: {_reason(exc)}. Fix: give the unit cell as a POSCAR."
        ) from exc
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
    nac: bool = False,
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
        produce_fc: fit force constants to the force sets (:func:`fit_force_constants`, compact as
            ``phonopy.load`` makes them, no symmetrisation) or read the FORCE_CONSTANTS file; False loads
            the dataset only. Forces embedded in a phonopy yaml (``phonopy.yaml`` of atomate2,
            ``phonopy_params.yaml``) are used like a FORCE_SETS when no FORCE_SETS file is given.
        nac: read the non-analytic correction (Born charges and dielectric tensor) from ``BORN``
            beside the structure or, without one, from the yaml's ``nac:`` entry; False ignores both.

    Returns:
        a ``phonopy.Phonopy`` with its dataset, the non-analytic correction parameters when ``nac``
        and available (else none) and, when asked and available, force constants.
    """
    require_phonopy()

    path = Path(path).absolute()
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
    force_sets = None if force_sets is None else Path(force_sets).absolute()
    force_constants = None if force_constants is None else Path(force_constants).absolute()
    if force_sets is not None:
        if not force_sets.exists():
            raise DataError(f"{force_sets} does not exist. Fix: check the path.")
        check_force_sets(force_sets)
    born = folder / "BORN" if nac and (folder / "BORN").is_file() else None
    kwargs: dict[str, Any] = {
        "primitive_matrix": primitive_matrix,
        "is_nac": nac,
        "born_filename": born,
        "symmetrize_fc": False,
        "produce_fc": produce_fc and force_sets is None and force_constants is not None,
        "force_sets_filename": force_sets,
        "force_constants_filename": force_constants,
        "log_level": 0,
    }
    if path.name.endswith(".yaml"):
        if supercell_matrix is not None:
            kwargs["supercell_matrix"] = supercell_matrix
        with _phonopy_errors(path, force_sets, supercell_matrix, force_constants or born), _isolated():
            phonon = phonopy_object(path, **kwargs)
    else:
        if supercell_matrix is None:
            if force_sets is None:
                raise DataError(
                    f"{path} is a unit cell without a supercell matrix. Fix: pass supercell_matrix."
                )
            supercell_matrix = _diagonal_supercell(path, force_sets)
        with _phonopy_errors(path, force_sets, supercell_matrix, force_constants or born), _isolated():
            # a unit-cell POSCAR is VASP input: phonopy then reads FORCE_SETS in VASP's units (eV/Å)
            phonon = phonopy_object(
                supercell_matrix=supercell_matrix, unitcell_filename=path, calculator="vasp", **kwargs
            )
    if produce_fc and force_constants is None and has_forces(phonon.dataset):
        with _phonopy_errors(path, force_sets, supercell_matrix):
            fit_force_constants(phonon, full=False)  # compact, as phonopy.load produces them
    return phonon


def has_forces(dataset: Any) -> bool:
    """Whether a phonopy displacement dataset (type 1 or type 2) carries forces."""
    if not isinstance(dataset, dict):
        return False
    if "first_atoms" in dataset:
        entries = dataset["first_atoms"]
        return bool(entries) and all(e.get("forces") is not None for e in entries)
    return dataset.get("forces") is not None and dataset.get("displacements") is not None


def fit_force_constants(
    phonon: Phonopy, forces: Any = None, full: bool = True, symmetrize: bool = False
) -> np.ndarray:
    """phonopy's fit of force constants to the displacement dataset of ``phonon`` (set on it too).

    Args:
        phonon: a ``phonopy.Phonopy`` with a displacement dataset.
        forces: (n_displacements, n_supercell, 3) eV/Å replacing the dataset's forces, if given.
        full: every supercell row (n_s, n_s, 3, 3), phonopy's default; False: phonopy's compact
            (n_p, n_s, 3, 3) rows of the primitive atoms.
        symmetrize: phonopy's symmetrisation (translational invariance and index permutation).

    Type-1 datasets (one displaced atom per supercell) are fitted by phonopy's traditional solver;
    type-2 datasets (random displacements of all atoms, FORCE_SETS type 2 or ``displacements`` arrays
    in a yaml) need phonopy's ``symfc`` back end (``pip install symfc``).

    Returns:
        the force constants in eV/Å² (a copy).
    """
    if phonon.dataset is None:
        raise DataError("the phonopy object holds no displacement dataset. Fix: load FORCE_SETS or pass one.")
    if forces is not None:
        forces = np.asarray(forces, dtype=float)
        expected = (len(phonon.supercells_with_displacements), len(phonon.supercell), 3)
        if forces.shape != expected:
            raise DataError(
                f"forces of shape {forces.shape} for a dataset of {expected[0]} displaced supercells of "
                f"{expected[1]} atoms; expected {expected}."
            )
        if not np.all(np.isfinite(forces)):
            raise DataError("the forces for the force constants hold NaN or inf values.")
        phonon.forces = forces
    solver = None
    if isinstance(phonon.dataset, dict) and "first_atoms" not in phonon.dataset:
        solver = "symfc"
        try:
            import symfc  # noqa: F401
        except ImportError as exc:
            feature = "force constants of type-2 (random) displacements"
            raise MissingDependencyError("symfc", "phonons", feature) from exc
    phonon.produce_force_constants(calculate_full_force_constants=full, fc_calculator=solver)
    if symmetrize:
        phonon.symmetrize_force_constants()
    return np.array(phonon.force_constants)


def compact_to_full(phonon: Phonopy) -> np.ndarray:
    """The force constants of ``phonon`` as full (n_s, n_s, 3, 3) eV/Å², compact ones expanded by phonopy."""
    fc = np.asarray(phonon.force_constants)
    if fc.shape[0] == fc.shape[1]:
        return np.array(fc)
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    return compact_fc_to_full_fc(phonon.primitive, fc)


def read_force_sets(path: str | Path, natom: int | None = None) -> dict[str, Any]:
    """Parse a phonopy FORCE_SETS file into phonopy's dataset dict (displacements Å, forces eV/Å)."""
    require_phonopy()
    from phonopy.file_IO import parse_FORCE_SETS

    if not Path(path).exists():
        raise DataError(f"{path} does not exist. Fix: check the path.")
    found = check_force_sets(path)
    if natom is not None and found is not None and found != natom:
        raise DataError(f"{path} holds forces on {found} atoms, not {natom}. {FIX_FOLDER}.")
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
