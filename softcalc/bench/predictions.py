"""The benchmark's predictions file (HDF5): DFT data and every model force, enough to redo the analysis.

Layout (forces eV/Å, energies eV, positions and cells Å; per split, frames are concatenated and
``n_atoms`` gives each frame's length)::

    /                     attrs: format, config (JSON)
    /data/<material>/<split>/   numbers, positions, n_atoms, cells, pbc, dft_forces, dft_energy,
                                groups, labels, [pairs, reference_*]; attrs: source, sha256, material,
                                functional, rule
    /models/<i>/          attrs: name (as requested), info (JSON ModelInfo), per_atom_energies
    /models/<i>/<material>/<split>/  forces, energy, [reference_forces, reference_energy]
    /models/<i>/weighted/ keys, n_atoms, energy, forces, energies  (per-species components, when computed)

Splits are ``train`` (calibration) and ``test``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms

from softcalc.bench.splits import Split
from softcalc.bench.stored import StoredForces, Weighted
from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.errors import DataError
from softcalc.fileio import atomic_path
from softcalc.info import ModelInfo
from softcalc.structure import structure_key

FORMAT = "softcalc-bench-softening/1"
SPLITS = ("train", "test")


def _structures(dataset: ForceDataset) -> list[Atoms]:
    return [f.atoms for f in dataset.frames]


def _write_atoms(g: h5py.Group, structures: list[Atoms], prefix: str = "") -> None:
    g[prefix + "numbers"] = np.concatenate([a.numbers for a in structures]).astype(np.int64)
    g[prefix + "positions"] = np.concatenate([a.positions for a in structures])
    g[prefix + "n_atoms"] = np.array([len(a) for a in structures], dtype=np.int64)
    g[prefix + "cells"] = np.array([np.asarray(a.cell) for a in structures])
    g[prefix + "pbc"] = np.array([a.pbc for a in structures])


def _read_atoms(g: h5py.Group, prefix: str = "") -> list[Atoms]:
    offsets = np.concatenate([[0], np.cumsum(g[prefix + "n_atoms"][()])])
    numbers, positions = g[prefix + "numbers"][()], g[prefix + "positions"][()]
    return [
        Atoms(numbers[a:b], positions=positions[a:b], cell=cell, pbc=pbc)
        for a, b, cell, pbc in zip(offsets[:-1], offsets[1:], g[prefix + "cells"][()], g[prefix + "pbc"][()])
    ]


def _strings(g: h5py.Group, name: str) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in g[name][()]]


def _write_dataset(g: h5py.Group, d: ForceDataset, rule: str) -> None:
    _write_atoms(g, _structures(d))
    g["dft_forces"] = np.concatenate([f.forces for f in d.frames])
    g["dft_energy"] = np.array([np.nan if f.energy is None else f.energy for f in d.frames])
    g["groups"] = np.array([f.group for f in d.frames], dtype=h5py.string_dtype())
    g["labels"] = np.array([f.label for f in d.frames], dtype=h5py.string_dtype())
    if d.pairs:
        g["pairs"] = np.array(d.pairs, dtype=np.int64)
    if d.reference is not None:
        _write_atoms(g, [d.reference], prefix="reference_")
    g.attrs.update(source=d.source, sha256=d.sha256, material=d.material, functional=d.functional, rule=rule)


def _read_dataset(g: h5py.Group) -> ForceDataset:
    structures = _read_atoms(g)
    forces = np.split(g["dft_forces"][()], np.cumsum(g["n_atoms"][()])[:-1])
    frames = [
        ForceFrame(atoms, f.copy(), None if np.isnan(e) else float(e), None, group, label)
        for atoms, f, e, group, label in zip(
            structures, forces, g["dft_energy"][()], _strings(g, "groups"), _strings(g, "labels")
        )
    ]
    return ForceDataset(
        frames,
        source=str(g.attrs["source"]),
        sha256=str(g.attrs["sha256"]),
        material=str(g.attrs["material"]),
        reference=_read_atoms(g, "reference_")[0] if "reference_numbers" in g else None,
        pairs=[(int(i), int(j)) for i, j in g["pairs"][()]] if "pairs" in g else [],
        functional=str(g.attrs["functional"]),
    )


def _info_json(info: ModelInfo) -> str:
    d = asdict(info)
    d["elements"] = sorted(info.elements)
    d["reference_energies"] = dict(sorted(info.reference_energies.items()))
    return json.dumps(d, sort_keys=True)


def _write_model(g: h5py.Group, name: str, store: StoredForces, splits: dict[str, Split]) -> None:
    g.attrs.update(name=name, info=_info_json(store.info), per_atom_energies=store.supports_per_atom_energies)
    for material, split in splits.items():
        for split_name, d in split.datasets().items():
            res = store.compute_many(_structures(d))
            s = g.create_group(f"{material}/{split_name}")
            s["forces"] = np.concatenate([r["forces"] for r in res])
            s["energy"] = np.array([r["energy"] for r in res])
            if d.reference is not None:
                ref = store.compute_many([d.reference])[0]
                s["reference_forces"], s["reference_energy"] = ref["forces"], ref["energy"]
    if store.weighted:
        keys = sorted(store.weighted)
        w = g.create_group("weighted")
        w["keys"] = np.array(keys, dtype=h5py.string_dtype())
        entries = [store.weighted[k] for k in keys]
        w["n_atoms"] = np.array([len(e.forces) for e in entries], dtype=np.int64)
        w["energy"] = np.array([e.energy for e in entries])
        w["forces"] = np.concatenate([e.forces for e in entries])
        w["energies"] = np.concatenate([e.energies for e in entries])


def _read_model(g: h5py.Group, splits: dict[str, Split]) -> tuple[str, StoredForces]:
    info = json.loads(g.attrs["info"])
    info["elements"] = frozenset(info["elements"])
    store = StoredForces(ModelInfo(**info), per_atom_energies=bool(g.attrs["per_atom_energies"]))
    for material, split in splits.items():
        for split_name, d in split.datasets().items():
            s = g[f"{material}/{split_name}"]
            forces = np.split(s["forces"][()], np.cumsum([len(f.atoms) for f in d.frames])[:-1])
            for frame, f, e in zip(d.frames, forces, s["energy"][()]):
                store.forces[structure_key(frame.atoms)] = (float(e), f.copy())
            if d.reference is not None:
                ref_key = structure_key(d.reference)
                store.forces[ref_key] = (float(s["reference_energy"][()]), s["reference_forces"][()])
    if "weighted" in g:
        w = g["weighted"]
        if "energies" not in w:
            raise DataError(
                f"{g.file.filename} was written by an older softcalc without per-species energies. "
                "Fix: re-run the benchmark with the models instead of --from-h5."
            )
        bounds = np.cumsum(w["n_atoms"][()])[:-1]
        forces, energies = np.split(w["forces"][()], bounds), np.split(w["energies"][()], bounds)
        for key, e, f, ei in zip(_strings(w, "keys"), w["energy"][()], forces, energies):
            store.weighted[key] = Weighted(float(e), f.copy(), ei.copy())
    return str(g.attrs["name"]), store


def write_predictions(
    path: str | Path, config: dict[str, Any], splits: dict[str, Split], stores: dict[str, StoredForces]
) -> None:
    """Write the data, every model's forces and the benchmark configuration to ``path`` atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = FORMAT
        h5.attrs["config"] = json.dumps(config, sort_keys=True)
        for material, split in splits.items():
            for split_name, d in split.datasets().items():
                _write_dataset(h5.create_group(f"data/{material}/{split_name}"), d, split.rule)
        for i, (name, store) in enumerate(stores.items()):
            _write_model(h5.create_group(f"models/{i}"), name, store, splits)


def read_predictions(path: str | Path) -> tuple[dict[str, Any], dict[str, Split], dict[str, StoredForces]]:
    """The configuration, data splits and read-only force stores of a predictions file."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"cannot open predictions file {path}: {exc}") from None
    with h5:
        if h5.attrs.get("format") != FORMAT:
            raise DataError(f"{path} is not a softcalc softening predictions file (format {FORMAT}).")
        config = json.loads(h5.attrs["config"])
        splits = {
            m: Split(_read_dataset(g["train"]), _read_dataset(g["test"]), str(g["train"].attrs["rule"]))
            for m, g in h5["data"].items()
        }
        stores = dict(_read_model(h5[f"models/{i}"], splits) for i in range(len(h5["models"])))
    return config, splits, stores
