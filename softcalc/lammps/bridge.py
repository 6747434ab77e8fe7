"""The Python side of ``pair_style softcalc``: what the C++ plugin calls every step.

Gather path (``decompose no``): the plugin gathers all atoms on rank 0, ordered by atom ID, and calls
:meth:`PairBridge.compute` on the periodic box. Decomposed path (``decompose yes``): every rank calls
:meth:`PairBridge.compute_local` on its local atoms plus a ghost shell of one receptive field. Both
get read-only buffers (positions, types) and fill writable ones (forces, per-atom energies) the plugin
owns. Units are LAMMPS ``metal`` units, which are softcalc's: Å, eV, eV/Å; the virial is in eV.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.data import atomic_numbers

from softcalc.calculator import SoftCorrectedCalc
from softcalc.errors import PerAtomEnergyNotSupportedError, SoftcalcError, UnsupportedElementsError

#: ASE Voigt order (xx yy zz yz xz xy) → LAMMPS virial order (xx yy zz xy xz yz)
ASE_TO_LAMMPS_VOIGT = np.array([0, 1, 2, 5, 4, 3])


def lammps_virial(stress: np.ndarray, volume: float) -> np.ndarray:
    """LAMMPS global virial W = -V σ (eV, order xx yy zz xy xz yz) from an ASE stress (eV/Å³)."""
    return -volume * np.asarray(stress, dtype=float)[ASE_TO_LAMMPS_VOIGT]


def cluster_atoms(numbers: np.ndarray, positions: np.ndarray, margin: float = 1.0) -> Atoms:
    """A non-periodic cluster translated into a bounding box (Å) that holds every atom.

    The box changes no energy or force (the cluster is not periodic and every model is translation
    invariant), but neighbour searches bin atoms by the cell: without one, or with atoms outside it,
    ASE's neighbour list becomes quadratic in time and memory (8 s for 2700 atoms instead of 0.1 s).
    """
    low = positions.min(axis=0) - margin
    extent = positions.max(axis=0) - low + margin
    return Atoms(numbers=numbers, positions=positions - low, cell=np.diag(extent), pbc=False)


class PairBridge:
    """One corrected model and the LAMMPS type → element map of a ``pair_style softcalc``.

    Args:
        model: model name or weights path (see ``softcalc models``).
        elements: chemical symbol of each LAMMPS atom type, type 1 first (``pair_coeff * * Si O``).
        correction: correction JSON path, or None.
        scale: a global λ instead of ``correction``.
        device, dtype: where and in which precision the model runs.
        check_model: refuse a correction fitted for another model, or fitted without naming one
            (see :mod:`softcalc.correction`); False is the explicit override. The C++ pair style
            does not pass it yet: ``pair_style softcalc`` always checks.
    """

    def __init__(
        self,
        model: str,
        elements: Sequence[str],
        correction: str | Path | None = None,
        scale: float | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        check_model: bool = True,
    ) -> None:
        unknown = [el for el in elements if el not in atomic_numbers or el == "X"]
        if unknown:
            raise SoftcalcError(
                f"pair_coeff: {', '.join(unknown)} is not a chemical element. "
                "Fix: give one element symbol per atom type, e.g. 'pair_coeff * * Si O'."
            )
        self.calc = SoftCorrectedCalc(
            model, correction=correction, scale=scale, device=device, dtype=dtype, check_model=check_model
        )
        info = self.calc.info
        missing = sorted(set(elements) - set(info.elements)) if info.elements else []
        if missing:
            raise UnsupportedElementsError(info.name, missing)
        self.elements = list(elements)
        self.numbers = np.array([atomic_numbers[el] for el in elements])
        #: interaction cutoff in Å (LAMMPS' pair cutoff on the gather path)
        self.cutoff = float(info.cutoff)
        #: n_message_passing × cutoff in Å: the ghost shell of the decomposed path
        self.receptive_field = float(info.receptive_field)
        self.has_per_atom_energies = "energies" in self.calc.active.implemented_properties
        self._warned_virial = False

    def _virial_available(self, atoms: Atoms) -> bool:
        if atoms.pbc.all():
            return True
        if not self._warned_virial:
            warnings.warn(
                "pair_style softcalc: the virial (pressure) needs a box periodic in x, y and z; "
                "it is reported as zero for this non-periodic box.",
                stacklevel=2,
            )
            self._warned_virial = True
        return False

    def atoms(self, positions: np.ndarray, types: np.ndarray, cell: np.ndarray, pbc: Sequence[bool]) -> Atoms:
        """ASE Atoms from LAMMPS data: positions (N, 3) Å relative to boxlo, types 1..ntypes, cell (3, 3)."""
        return Atoms(numbers=self.numbers[np.asarray(types) - 1], positions=positions, cell=cell, pbc=pbc)

    def compute(
        self,
        positions: memoryview,
        types: memoryview,
        cell: Sequence[float],
        pbc: Sequence[bool],
        forces: memoryview,
        energies: memoryview | None,
        want_virial: bool,
    ) -> tuple[float, ...]:
        """Evaluate the corrected model; fill ``forces`` (eV/Å) and ``energies`` (eV) in place.

        Returns the energy (eV) followed by the LAMMPS virial (eV, xx yy zz xy xz yz; zeros unless
        ``want_virial``).
        """
        pos = np.frombuffer(positions, dtype=np.float64).reshape(-1, 3)
        typ = np.frombuffer(types, dtype=np.intc)
        atoms = self.atoms(pos, typ, np.reshape(cell, (3, 3)), pbc)
        props = ["energy", "forces"]
        want_virial = want_virial and self._virial_available(atoms)
        if want_virial:
            props.append("stress")
        if energies is not None:
            if not self.has_per_atom_energies:
                raise PerAtomEnergyNotSupportedError(
                    f"model {self.calc.info.name} gives no per-atom energies, so compute pe/atom is not "
                    "available with pair_style softcalc. Fix: remove compute pe/atom, or use a model "
                    "with per-atom energies."
                )
            props.append("energies")
        self.calc.calculate(atoms, props, all_changes)
        res = self.calc.results
        np.frombuffer(forces, dtype=np.float64).reshape(-1, 3)[:] = res["forces"]
        if energies is not None:
            np.frombuffer(energies, dtype=np.float64)[:] = res["energies"]
        virial = lammps_virial(res["stress"], atoms.get_volume()) if want_virial else np.zeros(6)
        return (float(res["energy"]), *map(float, virial))

    def compute_local(
        self,
        positions: memoryview,
        types: memoryview,
        nlocal: int,
        forces: memoryview,
        energies: memoryview | None,
    ) -> float:
        """Evaluate one rank's share: the corrected energy of its ``nlocal`` local atoms (eV).

        ``positions`` and ``types`` hold the local atoms first, then the ghost atoms (periodic images
        included) out to one receptive field; they form a non-periodic cluster. Fills ``forces``
        (eV/Å) for local and ghost atoms (LAMMPS sums ghost forces onto their owners) and, when given,
        ``energies`` (eV) for the local atoms.
        """
        pos = np.frombuffer(positions, dtype=np.float64).reshape(-1, 3)
        typ = np.frombuffer(types, dtype=np.intc)
        cluster = cluster_atoms(self.numbers[typ - 1], pos)
        res = self.calc.local_energy(cluster, np.arange(len(cluster)) < nlocal)
        np.frombuffer(forces, dtype=np.float64).reshape(-1, 3)[:] = res["forces"]
        if energies is not None:
            np.frombuffer(energies, dtype=np.float64)[:] = res["energies"][:nlocal]
        return res["energy"]
