"""Test helpers: DFT-like frames labelled by a scaled toy model, and extxyz files of frames, the way a user's
data arrives on the command line."""

from __future__ import annotations

from pathlib import Path

from ase.build import bulk
from ase.io import write

from softcalc import SoftCorrectedCalc
from softcalc.data import ForceDataset, ForceFrame


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


def toy_labelled(n: int, scale: float, rattle: float = 0.1, group: str = "AIMD") -> ForceDataset:
    """``n`` rattled Si cells labelled (energy, forces) by the toy model with the correction λ = ``scale``:
    the right λ for the bare toy model is ``scale``."""
    calc = SoftCorrectedCalc("toy-morse", scale=scale)
    frames = []
    for k in range(n):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        atoms.rattle(rattle, seed=k)
        atoms.calc = calc
        forces, energy = atoms.get_forces(), atoms.get_potential_energy()
        atoms.calc = None
        frames.append(ForceFrame(atoms, forces, energy, group=group, label=f"f{k}"))
    return ForceDataset(frames, source="synthetic", material="Si")
