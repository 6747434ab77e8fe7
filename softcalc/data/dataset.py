"""Containers for reference frames: structures with DFT forces (eV/Å), energies (eV), stress (eV/Å³)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from ase import Atoms

from softcalc.errors import DataError


@dataclass
class ForceFrame:
    """One DFT-labelled structure.

    Attributes:
        atoms: the structure (positions Å, cell Å), no calculator attached.
        forces: DFT forces, (N, 3) eV/Å.
        energy: DFT total energy in eV, or None.
        stress: DFT stress, Voigt (6,) eV/Å³ in ASE's sign convention, or None.
        group: structure group (``"AIMD-NVT"``, ``"Vacancy"``, ``"Elastic"``, ``"Surface"``...).
        label: free-text description of the frame.
        temperature: temperature (K) of the simulation the frame comes from, when the data say it.
        strain: applied strain (dimensionless, signed) of a deformed cell, when the data say it.
    """

    atoms: Atoms
    forces: np.ndarray
    energy: float | None = None
    stress: np.ndarray | None = None
    group: str = ""
    label: str = ""
    temperature: float | None = None
    strain: float | None = None

    def __post_init__(self) -> None:
        self.forces = np.asarray(self.forces, dtype=float)
        if self.forces.shape != (len(self.atoms), 3):
            raise DataError(
                f"frame {self.label or '?'}: forces have shape {self.forces.shape}, "
                f"expected ({len(self.atoms)}, 3)"
            )
        if not np.isfinite(self.forces).all():
            raise DataError(f"frame {self.label or '?'}: DFT forces contain NaN or inf")


@dataclass
class ForceDataset:
    """Frames from one source (usually one material).

    Attributes:
        frames: the labelled structures, in file order.
        source: where they came from (path).
        sha256: hash of the source file(s), for provenance.
        material: short name (chemical formula or folder name).
        reference: for finite-displacement (phonopy) sets, the undisplaced supercell; the model's
            forces on it are subtracted from its forces on every frame before comparing with DFT,
            because the DFT-relaxed cell is not a minimum of the model.
        pairs: for finite-displacement sets, index pairs (i, j) of frames displaced by +u and -u;
            comparing (F_i - F_j)/2 cancels residual forces of both DFT and model.
        functional: exchange-correlation functional of the reference data ("PBE", "PBEsol", "").
    """

    frames: list[ForceFrame]
    source: str = ""
    sha256: str = ""
    material: str = ""
    reference: Atoms | None = None
    pairs: list[tuple[int, int]] = field(default_factory=list)
    functional: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def groups(self) -> list[str]:
        """Distinct structure groups, in order of first appearance."""
        return list(dict.fromkeys(f.group for f in self.frames))

    @property
    def elements(self) -> list[str]:
        """Distinct chemical symbols over all frames, sorted."""
        return sorted({s for f in self.frames for s in f.atoms.get_chemical_symbols()})

    def select(self, predicate: Callable[[ForceFrame], bool]) -> ForceDataset:
        """A dataset with the frames for which ``predicate`` is true (pairs kept where both stay)."""
        keep = [i for i, f in enumerate(self.frames) if predicate(f)]
        return self.subset(keep)

    def subset(self, indices: Sequence[int]) -> ForceDataset:
        """A dataset with the frames at ``indices`` (in that order)."""
        index = {old: new for new, old in enumerate(indices)}
        pairs = [(index[i], index[j]) for i, j in self.pairs if i in index and j in index]
        return replace(self, frames=[self.frames[i] for i in indices], pairs=pairs)
