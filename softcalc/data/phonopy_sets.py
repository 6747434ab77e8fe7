"""phonopy finite-displacement data sets (displacements with DFT forces) as reference data.

Every set phonopy reads is accepted, through the one phonopy loader
(:func:`softcalc.phonons.phonopy_io.read_phonopy`, phonopy's own reader, with the primitive and
supercell matrices of the file):

- a folder with ``FORCE_SETS`` (type 1, or type 2 with random displacements) and the
  ``phonopy_disp.yaml`` it was made with (or another phonopy yaml, or ``POSCAR-unitcell``);
- a folder or file with ``phonopy_params.yaml`` / ``phonopy.yaml`` / ``phonopy_disp.yaml`` with the
  forces embedded (phonopy ≥ 2 ``phonopy.save()``, atomate2's one ``phonopy.yaml`` per material);
- a ``phonopy.Phonopy`` object holding a dataset with forces.

A set with DFT force constants and no forces (FORCE_CONSTANTS, force_constants.hdf5 beside a phonopy yaml)
is no force data: :func:`phonopy_force_frames` refuses it, and :func:`phonopy_harmonic_frames` reads it as a
frequency reference for the phonon comparison (:mod:`softcalc.phonons.comparison`).

Each displaced supercell becomes one :class:`ForceFrame`; the undisplaced supercell is the dataset's
``reference`` and displacements by +u and −u (of one atom, or whole type-2 snapshots) form ``pairs``.
:func:`phonopy_force_frames` also returns the matching ``phonopy.Phonopy`` object (dataset attached, no
force constants).

Residual forces. A DFT-relaxed supercell keeps small forces F_res (incomplete relaxation, numerical
noise), and every displaced frame carries them on top of its response to the displacement. No phonopy
format holds the perfect supercell's forces, so they cannot be subtracted as ``phonopy --fz`` does; but
where the set has a ± pair, F₊ = F_res − Φu + O(u²) and F₋ = F_res + Φu + O(u²), so the pair's mean
(F₊ + F₋)/2 estimates F_res (with the even-order anharmonic term ½Ψuu). The frames of a pair carry their
DFT forces with that mean removed, ±(F₊ − F₋)/2 (:func:`remove_pair_residuals`): the central-difference
response that phonopy's own fit of a ± set uses. Nothing changes for the comparisons, which difference
pairs anyway ((F₊' − F₋')/2 = (F₊ − F₋)/2) and whose DFT force constants fit ± pairs without an offset,
but every consumer that takes frames one at a time gets forces free of the residual: above all
fine-tuning (``calibrate --method finetune``), which trains the model's absolute forces on each frame and
would otherwise learn the residual of the DFT relaxation as forces of the crystal near equilibrium.
Frames without a partner keep their DFT forces as given (nothing in the data estimates their residual).
The functional of a shared set (:data:`KNOWN_FUNCTIONALS`) and a ``Phonopy`` object's hash are taken on
the forces as given, and the returned ``Phonopy`` keeps them.

The exchange-correlation functional is not part of any phonopy format. A set is labelled with one only
when it is one of the shared example sets, recognised by the SHA-256 of its DFT forces
(:data:`KNOWN_FUNCTIONALS`), so a copy or a yaml conversion of a shared set keeps its label and no other
set gets one (``functional`` is then "", unstated); nothing is inferred from a file or folder name.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.data.paths import file_sha256, resolve_data_path
from softcalc.errors import DataError
from softcalc.phonons.phonopy_io import from_phonopy_atoms, has_forces, read_phonopy

#: exchange-correlation functional of the shared phonopy example force sets (VASP; the comment names the
#: folder under ``$SOFTCALC_DATA_DIR/phonons/phonopy-examples``), keyed on :func:`forces_sha256` of their
#: DFT forces. LiF-nosym states no functional and is not listed.
KNOWN_FUNCTIONALS: dict[str, str] = {
    "434e72c393bf053e7b81945e3a66a1c438ca04fb79122fe1f03f65920c880d9c": "PBEsol",  # Al2O3
    "ca3b8224fe40aaae6429036fe982a4f3a1432f4a5be4478d08e363c25ee82863": "PBE",  # MgB2
    "99bde5bbef2228dfcbc4578b2c91bd696582964cc3a2f077767e8590f57ce9ff": "PBE",  # MgO
    "a5903299e2a986d82095bb114b576f6921a10c64d6647007f419a429a415c447": "PBE",  # NaCl
    "0c9ffd9a08a5580856f042bced761f5ccc40adf360824751b9a098422c68ed3f": "PBE",  # Si
    "de9f5957d1433b05bb9bcb960251f539738ea040a042b465f1cabc87e85915a1": "PBE",  # SiO2-HP
    "4f7debcd4ccf5014a1575d621a6d777242c42448ebb4f0cf26dd8501b6ed57f5": "PBEsol",  # SnO2
}
#: files that define a FORCE_SETS set, in the order they are hashed
SET_FILES = ("phonopy_disp.yaml", "POSCAR-unitcell", "FORCE_SETS")
#: structure files a FORCE_SETS is read with, in the order they are looked for
FORCE_SETS_STRUCTURES = ("phonopy_disp.yaml", "phonopy.yaml", "phonopy_params.yaml", "POSCAR-unitcell")
#: phonopy yaml files that may embed forces, in the order they are looked for
FORCE_YAML_NAMES = ("phonopy_params.yaml", "phonopy.yaml", "phonopy_disp.yaml")
#: two displacements u, v of one atom form a ± pair when |u + v| is below this fraction of |u|
PAIR_TOLERANCE = 1e-6
#: files of DFT force constants, read as the reference where a set holds no forces, in the order looked for
FC_FILES = ("FORCE_CONSTANTS", "force_constants.hdf5")
#: top-level keys of a phonopy yaml that hold Born charges (phonopy ≥ 2.18; older)
YAML_NAC_KEYS = ("nac:", "born_effective_charge:")
#: the fix for a yaml without forces
FIX_NO_FORCES = (
    "Fix: put the FORCE_SETS made from its displaced supercells (`phonopy -f ...`) beside it, or give the "
    "phonopy.yaml / phonopy_params.yaml written with the forces (atomate2's phonopy.yaml; phonopy's "
    "`phonon.save()` after the forces are set)"
)


def forces_sha256(frames: list[ForceFrame]) -> str:
    """SHA-256 of the forces of ``frames`` in order, as little-endian float64 (eV/Å): the identity of a
    force set whatever file format or folder it comes in."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(np.ascontiguousarray(frame.forces, dtype="<f8").tobytes())
    return digest.hexdigest()


def known_functional(frames: list[ForceFrame]) -> str:
    """The functional of a shared example force set (:data:`KNOWN_FUNCTIONALS`), "" for any other set."""
    return KNOWN_FUNCTIONALS.get(forces_sha256(frames), "")


def is_phonopy_set(path: str | Path) -> bool:
    """Whether ``path`` is a folder (or file) :func:`phonopy_force_frames` reads: FORCE_SETS or a phonopy
    yaml."""
    path = Path(path)
    if path.is_file():
        return path.name == "FORCE_SETS" or path.name in FORCE_YAML_NAMES
    return path.is_dir() and any((path / n).is_file() for n in ("FORCE_SETS", *FORCE_YAML_NAMES))


def phonopy_force_frames(
    source: str | Path | Any, supercell_matrix: np.ndarray | None = None, nac: bool = False
) -> tuple[ForceDataset, Any]:
    """A phonopy force set as reference frames and as phonopy sees it (see the module docstring).

    Args:
        source: a folder, a phonopy yaml or FORCE_SETS file, or a ``phonopy.Phonopy`` object. A
            relative path that does not exist is looked up under ``$SOFTCALC_DATA_DIR``.
        supercell_matrix: overrides the file's (a POSCAR-unitcell without one is n×n×n from FORCE_SETS).
        nac: read the non-analytic correction (``BORN`` beside the files, else the yaml's Born
            charges and dielectric tensor, ``nac:``) onto the returned phonopy object; by default none.

    Returns:
        (dataset, phonon): one frame per displaced supercell with its DFT forces (eV/Å; frames of a ±
        pair with the pair's mean removed, see the module docstring), and the ``phonopy.Phonopy``
        (dataset attached with the forces as given, no force constants).

    Raises:
        DataError: no phonopy data there, a yaml without forces and no FORCE_SETS beside it, forces
            whose shape does not fit the supercell, or any malformed file; the message names the file
            and the fix.
    """
    if not isinstance(source, (str, Path)):
        return _from_phonopy_object(source, supercell_matrix)
    path = resolve_data_path(source)
    if not path.exists():
        raise DataError(f"{path} does not exist. Fix: check the path.")
    folder = path if path.is_dir() else path.parent
    if path.is_file() and not (path.name == "FORCE_SETS" or path.name.endswith(".yaml")):
        raise DataError(
            f"{path} is neither a phonopy folder nor a phonopy yaml or FORCE_SETS. Fix: give the folder "
            "holding FORCE_SETS with phonopy_disp.yaml (or POSCAR-unitcell), or a phonopy.yaml / "
            "phonopy_params.yaml with forces."
        )
    if path.is_dir() and (path / "FORCE_SETS").exists() and not (path / "FORCE_SETS").is_file():
        raise DataError(
            f"{path} has a folder named FORCE_SETS. Fix: give a phonopy folder with a FORCE_SETS file."
        )
    force_sets = path if path.name == "FORCE_SETS" else folder / "FORCE_SETS"
    if path.name.endswith(".yaml"):
        yamls = [path]
    else:
        yamls = [folder / n for n in FORCE_YAML_NAMES if (folder / n).is_file()]
    if force_sets.is_file():
        if path.name.endswith(".yaml"):
            structure = path
        else:
            found = [folder / n for n in FORCE_SETS_STRUCTURES if (folder / n).is_file()]
            if not found:
                raise DataError(
                    f"{folder} has FORCE_SETS but neither phonopy_disp.yaml nor POSCAR-unitcell. Fix: add "
                    "the phonopy_disp.yaml (or the unit cell as POSCAR-unitcell) the FORCE_SETS was made "
                    "with."
                )
            structure = found[0]
        # malformed files and a FORCE_SETS of another supercell end in read_phonopy as DataErrors
        phonon = read_phonopy(structure, supercell_matrix, force_sets=force_sets, produce_fc=False, nac=nac)
        files = [folder / name for name in SET_FILES if (folder / name).exists()]
        files += [] if structure.name in SET_FILES else [structure]
        where = force_sets
    else:
        if not yamls:
            raise DataError(
                f"{folder} has no FORCE_SETS and no phonopy yaml ({', '.join(FORCE_YAML_NAMES)}). Fix: give "
                "a phonopy folder: FORCE_SETS with phonopy_disp.yaml, or a phonopy.yaml with forces."
            )
        for structure in yamls:
            phonon = read_phonopy(structure, supercell_matrix, produce_fc=False, nac=nac)
            if has_forces(phonon.dataset):
                break
        else:
            names = " and ".join(str(y) for y in yamls)
            fc = force_constants_source(path)
            only_fc = (
                f" The set holds force constants only ({fc.name}): `softcalc phonons` and `bench phonons` "
                "compare frequencies with them, but force data need forces."
                if fc is not None
                else ""
            )
            raise DataError(
                f"{names} hold{'s' if len(yamls) == 1 else ''} no forces and there is no FORCE_SETS beside "
                f"{'it' if len(yamls) == 1 else 'them'}.{only_fc} {FIX_NO_FORCES}."
            )
        files, where = [structure], structure
    _check_supercell(phonon, supercell_matrix, where)
    frames, reference, pairs = _frames(phonon, where)
    material = folder.resolve().name
    dataset = ForceDataset(
        remove_pair_residuals(frames, pairs),
        source=str(path),
        sha256=file_sha256(files),
        material=material,
        reference=reference,
        pairs=pairs,
        functional=known_functional(frames),  # the forces as given identify a shared set
    )
    return dataset, phonon


def _from_phonopy_object(phonon: Any, supercell_matrix: Any) -> tuple[ForceDataset, Any]:
    """A ``phonopy.Phonopy`` with forces in its dataset (not changed) as reference data."""
    if not hasattr(phonon, "supercells_with_displacements"):
        raise DataError(
            f"{type(phonon).__name__} is not a phonopy data set. Fix: give a folder, a phonopy yaml or "
            "FORCE_SETS file, or a phonopy.Phonopy object."
        )
    where = "the phonopy.Phonopy object"
    _check_supercell(phonon, supercell_matrix, where)
    if not has_forces(phonon.dataset):
        raise DataError(
            f"{where} holds no forces. Fix: set them (`phonon.forces = ...`) or load them with the dataset "
            "(`phonopy.load(..., force_sets_filename=...)`)."
        )
    frames, reference, pairs = _frames(phonon, where)
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(np.ascontiguousarray(frame.atoms.positions).tobytes())
        digest.update(np.ascontiguousarray(frame.forces).tobytes())
    material = from_phonopy_atoms(phonon.primitive).get_chemical_formula(mode="metal")
    dataset = ForceDataset(
        remove_pair_residuals(frames, pairs),
        source=where,
        sha256=digest.hexdigest(),
        material=material,
        reference=reference,
        pairs=pairs,
        functional=known_functional(frames),
    )
    return dataset, phonon


def _check_supercell(phonon: Any, supercell_matrix: Any, where: Any) -> None:
    """A DataError when ``supercell_matrix`` (n, 3 numbers or 3×3) is given and is not ``phonon``'s."""
    if supercell_matrix is None:
        return
    wanted = np.asarray(supercell_matrix)
    wanted = np.diag(wanted) if wanted.ndim == 1 else wanted
    if not np.array_equal(wanted, phonon.supercell_matrix):
        raise DataError(
            f"{where} has supercell matrix {np.asarray(phonon.supercell_matrix).tolist()}, not "
            f"{wanted.tolist()}: the supercell does not match. Fix: give the data of that supercell, or "
            "pass no supercell matrix (the file's is used)."
        )


def _frames(phonon: Any, where: Any) -> tuple[list[ForceFrame], Any, list[tuple[int, int]]]:
    """Frames, reference supercell and ± pairs of a phonopy dataset with forces (type 1 or type 2).

    Raises:
        DataError: forces that do not fit the supercell (another supercell, or a damaged file).
    """
    dataset = phonon.dataset if isinstance(phonon.dataset, dict) else {}
    n = len(phonon.supercell)
    fix = (
        "Fix: give the forces of this supercell: the displacements and forces must come from the same "
        "phonopy calculation as the structure (its supercell matrix unchanged)"
    )

    def checked(forces: Any, what: str) -> np.ndarray:
        try:
            array = np.asarray(forces, dtype=float)
        except (TypeError, ValueError):
            array = np.empty(0)
        if array.shape != (n, 3):
            raise DataError(
                f"{where}: {what} has forces of shape {array.shape}, but the supercell has {n} atoms "
                f"(expected ({n}, 3)): the forces do not match the supercell. {fix}."
            )
        if not np.all(np.isfinite(array)):
            raise DataError(f"{where}: {what} has forces that are not finite. {fix}.")
        return array

    displaced = phonon.supercells_with_displacements
    frames, displacements = [], []
    if dataset.get("first_atoms"):
        for k, (entry, cell) in enumerate(zip(dataset["first_atoms"], displaced)):
            if entry.get("forces") is None:
                raise DataError(f"{where}: displacement {k + 1} has no forces. {FIX_NO_FORCES}.")
            forces = checked(entry["forces"], f"displacement {k + 1}")
            u = np.asarray(entry["displacement"], dtype=float)
            displacements.append((int(entry["number"]), u))
            frames.append(
                ForceFrame(
                    atoms=from_phonopy_atoms(cell),
                    forces=forces,
                    group="displacement",
                    label=f"atom {entry['number']} displaced by {np.round(u, 5).tolist()} Å",
                )
            )
    elif dataset.get("displacements") is not None:
        if dataset.get("forces") is None:
            raise DataError(f"{where} holds displacements but no forces. {FIX_NO_FORCES}.")
        snapshots = np.asarray(dataset["displacements"], dtype=float)
        forces = dataset["forces"]
        if snapshots.ndim != 3 or snapshots.shape[1:] != (n, 3) or len(forces) != len(snapshots):
            raise DataError(
                f"{where}: displacements of shape {snapshots.shape} with {len(forces)} force arrays, but the "
                f"supercell has {n} atoms (expected (n_snapshots, {n}, 3) for both): the forces do not "
                f"match the supercell. {fix}."
            )
        for k, (u, f, cell) in enumerate(zip(snapshots, forces, displaced)):
            displacements.append((-1, u))  # a snapshot moves every atom: pairs are whole ± snapshots
            moved = int((np.linalg.norm(u, axis=1) > 0).sum())
            frames.append(
                ForceFrame(
                    atoms=from_phonopy_atoms(cell),
                    forces=checked(f, f"snapshot {k + 1}"),
                    group="displacement",
                    label=f"snapshot {k + 1}: {moved} atoms displaced, max {np.abs(u).max():.5f} Å",
                )
            )
    else:
        raise DataError(f"{where} holds no displacements with forces. {FIX_NO_FORCES}.")
    return frames, from_phonopy_atoms(phonon.supercell), displacement_pairs(displacements)


def force_constants_source(source: str | Path | Any) -> Path | None:
    """The DFT force-constants file (FORCE_CONSTANTS, force_constants.hdf5) of a phonopy set without a
    FORCE_SETS; None for a set with FORCE_SETS, without such a file, or a ``phonopy.Phonopy`` object."""
    if not isinstance(source, (str, Path)):
        return None
    path = resolve_data_path(source)
    folder = path if path.is_dir() else path.parent
    if (folder / "FORCE_SETS").exists():
        return None
    return next((folder / n for n in FC_FILES if (folder / n).is_file()), None)


def phonopy_harmonic_frames(source: str | Path, nac: bool = False) -> tuple[ForceDataset, Any]:
    """A phonopy set that holds DFT force constants instead of forces, as frames with the harmonic forces
    of those force constants: a reference for frequencies, not force data.

    The structure (a phonopy yaml beside the force constants) fixes the supercell; phonopy's default
    displacements (0.01 Å, symmetry-reduced, one atom each) are generated on it for the model. The
    frames carry the harmonic forces of the DFT force constants, −Φu: they are not DFT force data, so
    a force slope is not available from such a set and it must not be calibrated on.

    Returns:
        (dataset, phonon): the frames, and the ``phonopy.Phonopy`` with the generated displacements and
        the DFT force constants as read (full; NAC parameters when ``nac``).
    """
    from softcalc.phonons.phonopy_io import compact_to_full

    path = resolve_data_path(source)
    fc_file = force_constants_source(path)
    if fc_file is None:
        raise DataError(f"{path} holds no FORCE_CONSTANTS or force_constants.hdf5 (and no FORCE_SETS).")
    structure = path if path.name.endswith(".yaml") else path.parent if path.is_file() else path
    phonon = read_phonopy(structure, force_constants=fc_file, nac=nac)
    if phonon.force_constants is None:
        raise DataError(f"phonopy read no force constants from {fc_file}. Fix: check the file.")
    fc = compact_to_full(phonon)
    phonon.generate_displacements(distance=0.01)  # phonopy's default; this drops the force constants
    phonon.force_constants = fc
    frames = []
    for entry, cell in zip(phonon.dataset["first_atoms"], phonon.supercells_with_displacements):
        u = np.asarray(entry["displacement"], dtype=float)
        frames.append(
            ForceFrame(
                atoms=from_phonopy_atoms(cell),
                forces=-fc[:, entry["number"]] @ u,
                group="displacement",
                label=f"atom {entry['number']} displaced by {np.round(u, 5).tolist()} Å (harmonic forces)",
            )
        )
    material = (path if path.is_dir() else path.parent).resolve().name
    used = [structure] if structure.is_file() else []
    dataset = ForceDataset(
        frames,
        source=str(path),
        sha256=file_sha256([*used, fc_file]),
        material=material,
        reference=from_phonopy_atoms(phonon.supercell),
        pairs=[],  # no DFT forces: the functional is not recognised (see the module docstring)
    )
    return dataset, phonon


def nac_source(source: str | Path | Any) -> str:
    """Where a phonopy data set keeps DFT Born charges: its BORN file, the yaml with them (``nac:``), or
    the ``phonopy.Phonopy`` object; "" when it has none. Only looked up, not read."""
    if not isinstance(source, (str, Path)):
        return "the phonopy.Phonopy object" if getattr(source, "nac_params", None) is not None else ""
    path = resolve_data_path(source)
    folder = path if path.is_dir() else path.parent
    if (folder / "BORN").is_file():
        return str(folder / "BORN")
    yamls = [path] if path.name.endswith(".yaml") else [folder / n for n in FORCE_YAML_NAMES]
    for yaml in yamls:
        if yaml.is_file() and any(line.startswith(YAML_NAC_KEYS) for line in yaml.open(errors="replace")):
            return str(yaml)
    return ""


def remove_pair_residuals(frames: list[ForceFrame], pairs: list[tuple[int, int]]) -> list[ForceFrame]:
    """``frames`` with the residual of each ± pair (i, j) removed: F_i − m and F_j − m, m = (F_i + F_j)/2,
    i.e. ±(F_i − F_j)/2 (eV/Å); frames in no pair unchanged. New frames: ``frames`` is not modified.

    See the module docstring: m is the residual force of the undisplaced supercell plus the even-order
    anharmonic term, which a ± central difference drops as well.
    """
    out = list(frames)
    for i, j in pairs:
        mean = 0.5 * (frames[i].forces + frames[j].forces)
        out[i] = replace(frames[i], forces=frames[i].forces - mean)
        out[j] = replace(frames[j], forces=frames[j].forces - mean)
    return out


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
