"""The :class:`Phonons` facade: supercell force constants in, frequencies, bands, DOS and F, S, Cv out.

phonopy builds the supercell and the primitive cell (and, on request, symmetry-reduced
displacements); softcalc computes the force constants with any calculator and the dynamical
matrices, DOS and thermal properties with its own Numba kernels.

Example::

    from softcalc import load_model
    from softcalc.phonons import Phonons
    ph = Phonons(unitcell, supercell_matrix=[2, 2, 2])
    ph.compute_force_constants(load_model("chgnet"), method="compact")
    mesh = ph.mesh([20, 20, 20])
    tp = ph.thermal_properties([300.0], mesh=[20, 20, 20])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from softcalc.errors import DataError
from softcalc.phonons import force_constants as fcmod
from softcalc.phonons.band import BandStructure, band_structure, seekpath_qpoints, segment_qpoints
from softcalc.phonons.dos import Dos, total_dos
from softcalc.phonons.dynmat import DynamicalMatrix
from softcalc.phonons.mesh import Mesh, mesh_qpoints
from softcalc.phonons.phonopy_io import (
    fit_force_constants,
    from_phonopy_atoms,
    read_phonopy,
    require_phonopy,
    to_phonopy_atoms,
    write_force_constants,
)
from softcalc.phonons.thermal import ThermalProperties, thermal_properties

if TYPE_CHECKING:
    from phonopy import Phonopy


class Phonons:
    """Harmonic phonons of a crystal from supercell force constants (like ``phonopy.Phonopy``).

    Args:
        unitcell: the crystal (Å; its masses, amu, are used throughout).
        supercell_matrix: 3 integers or a 3x3 integer matrix, as in phonopy.
        primitive_matrix: ``"auto"`` (spglib), None (the unit cell), or a 3x3 matrix, as in phonopy.
        symprec: symmetry and periodic-image tolerance, Å.

    Attributes:
        unitcell, supercell, primitive: ASE Atoms.
        p2s: (n_p,) supercell index of each primitive atom; s2p: (n_s,) primitive index (0..n_p-1)
            of each supercell atom.
        force_constants: (n_s or n_p, n_s, 3, 3) eV/Å², None until computed or set.
    """

    def __init__(
        self,
        unitcell: Atoms,
        supercell_matrix: Any,
        primitive_matrix: Any = "auto",
        symprec: float = 1e-5,
        *,
        phonopy: Phonopy | None = None,
    ) -> None:
        require_phonopy()
        from phonopy import Phonopy

        if phonopy is None:
            phonopy = Phonopy(
                to_phonopy_atoms(unitcell),
                supercell_matrix=supercell_matrix,
                primitive_matrix=primitive_matrix,
                symprec=symprec,
                log_level=0,
            )
        self._phonopy = phonopy
        self.symprec = symprec
        self.unitcell = from_phonopy_atoms(phonopy.unitcell)
        self.supercell = from_phonopy_atoms(phonopy.supercell)
        prim = phonopy.primitive
        self.primitive = from_phonopy_atoms(prim)
        self.p2s = np.asarray(prim.p2s_map, dtype=np.int64)
        self.s2p = np.array([prim.p2p_map[i] for i in prim.s2p_map], dtype=np.int64)
        self._force_constants: np.ndarray | None = None
        self._dynmat: DynamicalMatrix | None = None
        if phonopy.force_constants is not None:
            self.force_constants = np.array(phonopy.force_constants)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_phonopy(cls, phonon: Phonopy) -> Phonons:
        """Wrap a ``phonopy.Phonopy`` (its cells, masses and force constants, when produced)."""
        return cls(from_phonopy_atoms(phonon.unitcell), phonon.supercell_matrix, phonopy=phonon)

    @classmethod
    def from_phonopy_files(cls, path: str | Path, **kwargs: Any) -> Phonons:
        """Read phonopy files (see :func:`~softcalc.phonons.phonopy_io.read_phonopy` for ``kwargs``)."""
        return cls.from_phonopy(read_phonopy(path, **kwargs))

    @classmethod
    def load(cls, path: str | Path) -> Phonons:
        """Read force constants saved with :meth:`save` (HDF5)."""
        fc, unitcell, supercell_matrix, primitive_matrix, meta = fcmod.load_force_constants(path)
        out = cls(unitcell, supercell_matrix, primitive_matrix, symprec=meta.get("symprec", 1e-5))
        out.force_constants = fc
        return out

    # -- force constants -----------------------------------------------------------------------
    @property
    def force_constants(self) -> np.ndarray | None:
        """(n_s or n_p, n_s, 3, 3) eV/Å², full or compact."""
        return self._force_constants

    @force_constants.setter
    def force_constants(self, fc: np.ndarray) -> None:
        fc = np.ascontiguousarray(fc, dtype=float)
        n_s, n_p = len(self.supercell), len(self.primitive)
        if fc.shape[1:] != (n_s, 3, 3) or fc.shape[0] not in (n_s, n_p):
            raise DataError(f"force constants of shape {fc.shape} do not fit ({n_s} or {n_p}, {n_s}, 3, 3).")
        self._force_constants = fc
        self._dynmat = None

    def compute_force_constants(
        self,
        calculator: Calculator,
        method: str = "compact",
        delta: float = 0.01,
        batch_size: int | None = fcmod.FD_BATCH,
        progress: bool = False,
        acoustic_sum_rule: bool = False,
    ) -> np.ndarray:
        """Force constants from finite differences with ``calculator`` (any ASE calculator).

        Args:
            method: ``"compact"`` displaces only the primitive atoms (6 n_p structures, translational
                symmetry only: exact for any supercell); ``"full"`` displaces every supercell atom
                (6 n_s structures); ``"symmetry"`` uses phonopy's symmetry-reduced ± displacements
                and phonopy's fit.
            delta: displacement, Å.
            batch_size, progress: see :class:`softcalc.forces.ForceEvaluator`.
            acoustic_sum_rule: impose translational invariance afterwards.
        """
        if method == "compact":
            fc = fcmod.fd_force_constants(self.supercell, calculator, self.p2s, delta, batch_size, progress)
        elif method == "full":
            fc = fcmod.fd_force_constants(self.supercell, calculator, None, delta, batch_size, progress)
        elif method == "symmetry":
            fc = fcmod.symmetry_force_constants(self._phonopy, calculator, delta, batch_size, progress)
        else:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(fcmod.METHODS)}")
        if acoustic_sum_rule:
            fc = fcmod.acoustic_sum_rule(fc, self.p2s)
        self.force_constants = fc
        return fc

    def produce_force_constants(self, dataset: dict[str, Any] | None = None) -> np.ndarray:
        """Force constants fitted by phonopy to a displacement dataset (default: the loaded one)."""
        if dataset is not None:
            self._phonopy.dataset = dataset
        self.force_constants = fit_force_constants(self._phonopy, full=True)
        return self.force_constants

    def _require_fc(self) -> DynamicalMatrix:
        if self._force_constants is None:
            raise DataError("no force constants yet. Fix: call compute_force_constants() or set them.")
        if self._dynmat is None:
            self._dynmat = DynamicalMatrix(
                self.supercell, self.primitive, self.p2s, self.s2p, self._force_constants, self.symprec
            )
        return self._dynmat

    # -- phonons -------------------------------------------------------------------------------
    def dynamical_matrices(self, qpoints: np.ndarray) -> np.ndarray:
        """D(q) (n_q, 3n_p, 3n_p) complex, eV/Å²/amu, phonopy's convention; q reduced."""
        return self._require_fc().matrices(qpoints)

    def frequencies(self, qpoints: np.ndarray) -> np.ndarray:
        """Frequencies (n_q, 3n_p) in THz at reduced ``qpoints`` (imaginary as negative)."""
        return self._require_fc().frequencies(qpoints)

    def mesh(self, mesh: Sequence[int], shift: Sequence[float] = (0.0, 0.0, 0.0)) -> Mesh:
        """Frequencies on a full (not symmetry-reduced) Γ-centred grid; ``shift`` in grid units."""
        q = mesh_qpoints(mesh, shift)
        return Mesh(np.asarray(mesh), q, np.ones(len(q)), self.frequencies(q))

    def band_structure(
        self,
        path: Sequence[Sequence[float]] | None = None,
        labels: list[str] | None = None,
        npoints: int = 51,
    ) -> BandStructure:
        """Bands along ``path`` (corners in reduced q), or seekpath's standard path when None."""
        if path is None:
            segments, labels, connections = seekpath_qpoints(self.primitive, npoints)
            return band_structure(self.frequencies, self.primitive, segments, labels, connections)
        return band_structure(self.frequencies, self.primitive, segment_qpoints(path, npoints), labels)

    def dos(
        self, mesh: Sequence[int] = (20, 20, 20), sigma: float | None = None, frequency_points: Any = None
    ) -> Dos:
        """Total DOS by Gaussian smearing (σ in THz) on a full mesh; see :func:`total_dos`."""
        return total_dos(self.mesh(mesh), sigma, frequency_points)

    def thermal_properties(
        self,
        temperatures: Sequence[float] | np.ndarray,
        mesh: Sequence[int] = (20, 20, 20),
        cutoff_frequency: float = 1e-3,
    ) -> ThermalProperties:
        """F (kJ/mol), S, Cv (J/K/mol) per primitive cell at ``temperatures`` (K), phonopy's formulas."""
        return thermal_properties(self.mesh(mesh), temperatures, cutoff_frequency)

    # -- interop and storage -------------------------------------------------------------------
    def to_phonopy(self) -> Phonopy:
        """A new ``phonopy.Phonopy`` with the same cells, masses and these force constants."""
        from phonopy import Phonopy

        ph = self._phonopy
        out = Phonopy(
            ph.unitcell.copy(),
            supercell_matrix=ph.supercell_matrix,
            primitive_matrix=ph.primitive_matrix,
            symprec=self.symprec,
            log_level=0,
        )
        if self._force_constants is not None:
            out.force_constants = self._force_constants
        return out

    def write_force_constants(self, path: str | Path) -> None:
        """Write phonopy's FORCE_CONSTANTS text file."""
        fc = self._require_fc().force_constants
        write_force_constants(path, fc, self.p2s if fc.shape[0] != fc.shape[1] else None)

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
        """Write the force constants, unit cell and cell matrices to HDF5 (read back with :meth:`load`)."""
        ph = self._phonopy
        primitive_matrix = np.eye(3) if ph.primitive_matrix is None else ph.primitive_matrix
        meta = {"symprec": self.symprec, **(metadata or {})}
        fcmod.save_force_constants(
            path,
            self._require_fc().force_constants,
            self.unitcell,
            ph.supercell_matrix,
            primitive_matrix,
            meta,
        )
