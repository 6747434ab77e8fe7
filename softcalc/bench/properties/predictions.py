"""The predictions file of ``bench properties`` (HDF5): every DFT and model value behind the summary.

Layout (energies eV, forces eV/Å, γ eV/Å², E/N eV/atom)::

    /                                     attrs: format, config (JSON)
    /data/<material>/                     labels, groups, split, n_atoms, strain, dft_energy (NaN: none),
                                          and each property's frames and DFT values: test_forces;
                                          slab_frames, gamma; modes/<mode>/{strain, energy_per_atom}
    /models/<i>/                          attrs: name, fingerprint (JSON)
    /models/<i>/<material>/<correction>/  energy (every frame), and each property's model values:
                                          test_forces; gamma; modes/<mode>/{strain, energy_per_atom}

A property's arrays are there for the materials that have it (:meth:`Property.store_frames`,
:meth:`Property.store`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from softcalc.bench.properties.registry import registered_properties
from softcalc.fileio import atomic_path
from softcalc.model import ModelCalculator

if TYPE_CHECKING:
    from softcalc.bench.properties.materials import Material
    from softcalc.bench.properties.run import Evaluated

FORMAT = "softcalc-bench-properties/1"


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype())


def _write_data(g: h5py.Group, m: Material, dft: dict[str, Any]) -> None:
    g["labels"] = _strings([f.label for f in m.frames])
    g["groups"] = _strings([f.group for f in m.frames])
    g["split"] = _strings(["train"] * len(m.split.train) + ["test"] * len(m.split.test))
    g["n_atoms"] = np.array([len(f.atoms) for f in m.frames], dtype=np.int64)
    g["strain"] = np.array([np.nan if f.strain is None else f.strain for f in m.frames])
    g["dft_energy"] = np.array([np.nan if f.energy is None else f.energy for f in m.frames])
    for prop in registered_properties():
        if prop.name in m.located:
            prop.store_frames(g, m, m.located[prop.name])
            prop.store(g, dft[prop.name])


def write_predictions(
    path: Path,
    config: dict[str, Any],
    materials: Sequence[Material],
    dft: dict[str, dict[str, Any]],
    models: dict[str, ModelCalculator],
    arrays: dict[str, dict[str, dict[str, Evaluated]]],
) -> None:
    """Write the layout of the module docstring to ``path`` atomically.

    ``dft``: material -> property -> DFT values; ``arrays``: model -> material -> correction -> evaluation.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = FORMAT
        h5.attrs["config"] = json.dumps(config, sort_keys=True)
        for m in materials:
            _write_data(h5.create_group(f"data/{m.name}"), m, dft[m.name])
        for i, (name, calc) in enumerate(models.items()):
            g = h5.create_group(f"models/{i}")
            g.attrs.update(name=name, fingerprint=json.dumps(calc.info.fingerprint, sort_keys=True))
            for material, evaluated in arrays[name].items():
                for key, e in evaluated.items():
                    if e.energies is None:
                        continue
                    c = g.create_group(f"{material}/{key}")
                    c["energy"] = e.energies
                    for prop in registered_properties():
                        if prop.name in e.values:
                            prop.store(c, e.values[prop.name])
