"""Checks a structure before a model evaluates it."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from softcalc.errors import InvalidStructureError, UnsupportedElementsError
from softcalc.info import ModelInfo


def check_structure(atoms: Atoms, info: ModelInfo | None = None) -> None:
    """Raise a clear error for structures no model can evaluate.

    Checks: at least one atom; finite positions and cell; a non-degenerate cell along periodic
    directions; every element covered by the model (when ``info`` is given and lists elements).
    """
    if len(atoms) == 0:
        raise InvalidStructureError("the structure has no atoms. Fix: pass a structure with atoms.")
    pos = atoms.positions
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise InvalidStructureError(
            f"positions of atom(s) {bad[:10].tolist()} are NaN or infinite. "
            "Fix: check the input file or the previous MD/optimisation step that produced them."
        )
    cell = np.asarray(atoms.cell)
    if not np.isfinite(cell).all():
        raise InvalidStructureError("the cell contains NaN or infinite entries. Fix: set a valid cell.")
    if atoms.pbc.any():
        lengths = atoms.cell.lengths()
        degenerate = [ax for ax, (p, n) in enumerate(zip(atoms.pbc, lengths)) if p and n < 1e-6]
        if degenerate:
            raise InvalidStructureError(
                f"the cell vector(s) along periodic axis {degenerate} have zero length. "
                "Fix: set the cell, or turn periodicity off along those axes (atoms.pbc)."
            )
        if atoms.pbc.all() and abs(atoms.cell.volume) < 1e-6:
            raise InvalidStructureError(
                "the periodic cell has zero volume. Fix: set three linearly independent cell vectors."
            )
    if info is not None and info.elements:
        missing = set(atoms.get_chemical_symbols()) - set(info.elements)
        if missing:
            raise UnsupportedElementsError(info.name, sorted(missing))
