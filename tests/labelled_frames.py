"""Test helper: write DFT-labelled frames as extxyz, the way a user's data arrives on the command line."""

from __future__ import annotations

from pathlib import Path

from ase.io import write

from softcalc.data import ForceDataset


def write_extxyz(path: Path, data: ForceDataset, group: str) -> Path:
    """``data``'s frames with their energies and forces (and ``group``) written to the extxyz ``path``."""
    images = []
    for f in data.frames:
        atoms = f.atoms.copy()
        atoms.info.update(energy=f.energy, group=group)
        atoms.arrays["forces"] = f.forces
        images.append(atoms)
    write(path, images)
    return path
