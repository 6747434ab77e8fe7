"""LAMMPS input pieces for ``pair_style softcalc``: data files and set-up commands from ASE Atoms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ase.io
from ase import Atoms


def species_order(atoms: Atoms) -> list[str]:
    """Elements of ``atoms`` in order of first appearance: LAMMPS type 1, 2, ..."""
    return list(dict.fromkeys(atoms.get_chemical_symbols()))


def write_data(path: str | Path, atoms: Atoms, elements: Sequence[str] | None = None) -> list[str]:
    """Write ``atoms`` as a LAMMPS data file (atom_style atomic, masses included).

    The cell is turned into LAMMPS' lower-triangular form; a cell already in that form (a along x,
    b in the xy plane) keeps its Cartesian frame, so forces compare one to one. Returns the
    elements in type order (``elements`` or :func:`species_order`).
    """
    order = list(elements) if elements is not None else species_order(atoms)
    ase.io.write(path, atoms, format="lammps-data", specorder=order, masses=True, atom_style="atomic")
    return order


def pair_style(
    model: str | Path,
    correction: str | Path | None = None,
    scale: float | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    decompose: bool | str = False,
    check_model: bool = True,
) -> str:
    """The ``pair_style softcalc`` line for a model and its correction (file or global scale).

    ``decompose``: True (``decompose yes``) evaluates each rank's atoms with a ghost shell of one
    exchange cutoff and per-layer feature exchange (or of one receptive field for models without),
    ``"field"`` always with a shell of one receptive field; both need ``newton on`` (the default).
    False gathers all atoms on rank 0. ``check_model=False`` (``check_model no``) accepts a fitted
    correction that names no model or another one.
    """
    if decompose not in (True, False, "yes", "no", "field"):
        raise ValueError(f"decompose must be True, False, 'yes', 'no' or 'field', not {decompose!r}")
    words = ["pair_style softcalc", str(model)]
    if correction is not None:
        words += ["correction", str(correction)]
    if scale is not None:
        words += ["scale", repr(float(scale))]
    if device != "cpu":
        words += ["device", device]
    if dtype is not None:
        words += ["dtype", dtype]
    if decompose not in (False, "no"):
        words += ["decompose", "field" if decompose == "field" else "yes"]
    if not check_model:
        words += ["check_model", "no"]
    return " ".join(words)


def setup_commands(
    data_file: str | Path,
    elements: Sequence[str],
    model: str | Path,
    *,
    plugin: str | Path | None = None,
    **pair_options: object,
) -> list[str]:
    """Commands reading ``data_file`` and setting up ``pair_style softcalc`` (metal units, periodic).

    ``plugin``: a ``plugin load`` line for this path (omit when LAMMPS_PLUGIN_PATH loads it);
    ``pair_options``: ``correction``, ``scale``, ``device``, ``dtype``, ``decompose``, ``check_model`` of
    :func:`pair_style`.
    """
    commands = ["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p",
                f"read_data {data_file}"]
    if plugin is not None:
        commands.append(f"plugin load {plugin}")
    commands += [pair_style(model, **pair_options), "pair_coeff * * " + " ".join(elements)]  # type: ignore[arg-type]
    return commands
