"""Readers for reference data. Every reader returns a :class:`ForceDataset`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa

from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.data.paths import file_sha256, resolve_data_path
from softcalc.errors import DataError

#: "at 300 K", "1000K", "T = 600 K" in a frame description
_TEMPERATURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*K\b")
#: "strain -0.02", "strain=0.1" in a frame description
_STRAIN = re.compile(r"\bstrain\s*[=:]?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def _pymatgen_structure_to_atoms(struct: dict, where: str) -> Atoms:
    """Convert a pymatgen ``Structure.as_dict()`` without importing pymatgen."""
    try:
        cell = np.array(struct["lattice"]["matrix"], dtype=float)
        symbols, positions = [], []
        for site in struct["sites"]:
            species = site["species"]
            if len(species) != 1 or abs(species[0].get("occu", 1) - 1) > 1e-8:
                raise DataError(f"{where}: disordered site {site.get('label')} is not supported")
            symbols.append(species[0]["element"])
            positions.append(site["xyz"] if "xyz" in site else np.dot(site["abc"], cell))
        pbc = struct["lattice"].get("pbc", (True, True, True))
    except (KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{where}: not a pymatgen structure dict (missing {exc})") from None
    return Atoms(symbols=symbols, positions=np.array(positions, dtype=float), cell=cell, pbc=pbc)


def read_mlearn_json(path: Path) -> ForceDataset:
    """mlearn/pymatgen JSON: a list of records with ``structure``, ``outputs`` and ``group``.

    ``virial_stress`` is VASP's stress in kBar (compression positive, order xx yy zz xy yz zx);
    it is converted to ASE's convention (eV/Å³, tension positive, Voigt xx yy zz yz xz xy).
    """
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records with 'structure' and 'outputs'")
    frames = []
    for k, rec in enumerate(records):
        where = f"{path} record {k}"
        if not isinstance(rec, dict) or "structure" not in rec:
            raise DataError(f"{where}: no 'structure'")
        out = rec.get("outputs", {})
        if out.get("forces") is None:
            raise DataError(f"{where} has no forces. Fix: calibration needs DFT forces for every frame.")
        atoms = _pymatgen_structure_to_atoms(rec["structure"], where)
        stress = None
        if out.get("virial_stress") is not None:
            xx, yy, zz, xy, yz, zx = np.asarray(out["virial_stress"], dtype=float)
            stress = -0.1 * GPa * np.array([xx, yy, zz, yz, zx, xy])
        frames.append(
            ForceFrame(
                atoms=atoms,
                forces=np.asarray(out["forces"], dtype=float),
                energy=None if out.get("energy") is None else float(out["energy"]),
                stress=stress,
                group=str(rec.get("group", "")),
                label=str(rec.get("description", f"record {k}")),
                **frame_conditions(rec, str(rec.get("description", ""))),
            )
        )
    return ForceDataset(frames, source=str(path), sha256=file_sha256([path]), material=_material_name(path))


def read_ase_file(path: Path, index: str = ":") -> ForceDataset:
    """extxyz, ASE databases and any format ASE reads with forces (``forces`` array or calculator)."""
    from ase.io import read

    try:
        images = read(str(path), index=index)
    except Exception as exc:
        raise DataError(f"ASE cannot read {path}: {exc}") from None
    if isinstance(images, Atoms):
        images = [images]
    frames = []
    for k, atoms in enumerate(images):
        forces = _forces_of(atoms)
        if forces is None:
            raise DataError(
                f"{path} frame {k} has no forces. Fix: calibration needs DFT forces (extxyz 'forces' "
                "column or a stored calculator result)."
            )
        energy, stress = _energy_stress_of(atoms)
        group = str(atoms.info.get("group", atoms.info.get("config_type", "")))
        label = str(atoms.info.get("description", f"frame {k}"))
        bare = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        conditions = frame_conditions(atoms.info, label)
        frames.append(ForceFrame(bare, forces, energy, stress, group, label, **conditions))
    return ForceDataset(frames, source=str(path), sha256=file_sha256([path]), material=_material_name(path))


def frame_conditions(info: Mapping[str, Any], description: str) -> dict[str, float | None]:
    """Temperature (K) and strain of a frame: from metadata keys, else from its description text.

    Keys: ``temperature``, ``temperature_K`` or ``T``; ``strain``. Descriptions such as mlearn's
    "AIMD NVT simulation at 300 K" and "mode 0, strain -0.02" are read too.
    """
    temperature = next((info[k] for k in ("temperature", "temperature_K", "T") if k in info), None)
    strain = info.get("strain")
    if temperature is None and (match := _TEMPERATURE.search(description)):
        temperature = match.group(1)
    if strain is None and (match := _STRAIN.search(description)):
        strain = match.group(1)
    return {"temperature": None if temperature is None else float(temperature),
            "strain": None if strain is None else float(strain)}


def _forces_of(atoms: Atoms) -> np.ndarray | None:
    for key in ("forces", "REF_forces", "DFT_forces", "dft_forces"):
        if key in atoms.arrays:
            return np.asarray(atoms.arrays[key])
    if atoms.calc is not None and "forces" in atoms.calc.results:
        return np.asarray(atoms.calc.results["forces"])
    return None


def _energy_stress_of(atoms: Atoms) -> tuple[float | None, np.ndarray | None]:
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = results.get("energy", atoms.info.get("energy", atoms.info.get("REF_energy")))
    stress = results.get("stress", atoms.info.get("stress", atoms.info.get("REF_stress")))
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (3, 3):
            stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return (None if energy is None else float(energy)), stress


def _material_name(path: Path) -> str:
    """mlearn layout ``<material>/<split>.json`` gives the material; otherwise the file stem."""
    if path.suffix == ".json" and path.stem in {"training", "test", "train", "validation"}:
        return path.parent.name
    return path.stem


def read_dataset(path: str | Path, index: str = ":") -> ForceDataset:
    """Read reference data from a file or a phonopy directory, choosing the reader by path.

    Raises :class:`DataError` for unreadable files, frames without forces and empty data sets.
    """
    from softcalc.data.phonopy_sets import is_phonopy_set, phonopy_force_frames

    path = resolve_data_path(path)
    if path.is_dir() or (path.is_file() and is_phonopy_set(path)):
        if (path / "FORCE_SETS").exists() or is_phonopy_set(path):
            dataset = phonopy_force_frames(path)[0]
        else:
            raise DataError(
                f"{path} is a folder without FORCE_SETS or a phonopy yaml. Fix: give a data file (extxyz, "
                ".db, mlearn JSON) or a phonopy set (FORCE_SETS with phonopy_disp.yaml or POSCAR-unitcell, "
                "or a phonopy.yaml / phonopy_params.yaml with forces)."
            )
    elif path.suffix == ".json":
        dataset = read_mlearn_json(path)
    else:
        dataset = read_ase_file(path, index=index)
    if not dataset.frames:
        raise DataError(f"{path} holds no frames. Fix: give a data set with at least one DFT frame.")
    return dataset


def read_datasets(paths: Sequence[str | Path]) -> list[ForceDataset]:
    """Read several sources; folders that are no phonopy set are searched for supported files and sets."""
    from softcalc.data.phonopy_sets import is_phonopy_set

    out = []
    for p in paths:
        path = resolve_data_path(p)
        if path.is_dir() and not is_phonopy_set(path):
            found: dict[Path, Path] = {}  # source -> the file that sorts it (a set by its first file)
            for q in sorted(path.rglob("*")):
                if q.is_file() and is_phonopy_set(q):
                    found.setdefault(q.parent, q)
                elif q.is_file() and q.suffix in {".json", ".xyz", ".extxyz", ".db"}:
                    found[q] = q
            for q in sorted(found, key=found.__getitem__):
                out.append(read_dataset(q))
        else:
            out.append(read_dataset(path))
    if not out:
        raise DataError(f"no supported data found in {', '.join(map(str, paths))}")
    return out
