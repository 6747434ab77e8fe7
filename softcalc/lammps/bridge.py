"""The Python side of ``pair_style softcalc``: what the C++ plugin calls every step.

Gather path (``decompose no``): the plugin gathers all atoms on rank 0, ordered by atom ID, and calls
:meth:`PairBridge.compute` on the periodic box. Decomposed path: every rank calls
:meth:`PairBridge.compute_local` on its local atoms plus a ghost shell, either of one exchange cutoff
with the node features exchanged before every layer (``decompose yes`` for models with exchange
points, after :meth:`PairBridge.connect`; :mod:`softcalc.exchange`) or of one receptive field
(``decompose field``, and models without). Both get read-only buffers (positions, types) and fill
writable ones (forces, per-atom energies, per-atom virials) the plugin owns. Units are LAMMPS
``metal`` units, which are softcalc's: Å, eV, eV/Å; virials are in eV.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.data import atomic_numbers
from scipy.spatial import cKDTree

from softcalc.calculator import SoftCorrectedCalc
from softcalc.errors import PerAtomEnergyNotSupportedError, SoftcalcError, UnsupportedElementsError
from softcalc.exchange import Communicate, FeatureExchange, probe_structure
from softcalc.virial import cluster_atoms

#: ASE Voigt order (xx yy zz yz xz xy) → LAMMPS virial order (xx yy zz xy xz yz)
ASE_TO_LAMMPS_VOIGT = np.array([0, 1, 2, 5, 4, 3])


def lammps_virial(stress: np.ndarray, volume: float) -> np.ndarray:
    """LAMMPS global virial W = -V σ (eV, order xx yy zz xy xz yz) from an ASE stress (eV/Å³)."""
    return -volume * np.asarray(stress, dtype=float)[ASE_TO_LAMMPS_VOIGT]


def lammps_atom_virials(virials: np.ndarray) -> np.ndarray:
    """LAMMPS per-atom centroid virials (N, 9) eV, order xx yy zz xy xz yz yx zx zy, from W_i^ab
    ((N, 3, 3), a the distance and b the force component: :mod:`softcalc.virial`). The first six are
    the symmetric ``stress/atom`` components once xy, xz, yz are averaged with yx, zx, zy."""
    w = np.asarray(virials)
    return w[:, [0, 1, 2, 0, 0, 1, 1, 2, 2], [0, 1, 2, 1, 2, 2, 0, 0, 1]]


def owned_atoms_read_neighbours(positions: np.ndarray, nlocal: int, cutoff: float) -> bool:
    """Whether one of the first ``nlocal`` of ``positions`` (Å) has another atom within ``cutoff``."""
    if nlocal == 0 or len(positions) < 2:
        return False
    distances, _ = cKDTree(positions).query(positions[:nlocal], k=2, distance_upper_bound=cutoff)
    return bool(np.isfinite(distances[:, 1]).any())


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
        model = getattr(self.calc.active, "model", None)
        points = model.exchange_points() if self.has_per_atom_energies and model is not None else []
        #: Å, the ghost shell of per-layer exchange; 0 when the model has none
        self.exchange_cutoff = float(model.exchange_cutoff) if points else 0.0
        #: the model's per-layer exchange (None without), in use once :meth:`connect` has been called
        self.exchange = FeatureExchange(model) if points else None
        if self.exchange is not None:
            probe = probe_structure(self.elements[0], self.cutoff)
            try:
                self.exchange.record(lambda: self.calc.local_energy(probe), len(probe))
            except SoftcalcError as err:  # the receptive-field shell still works
                warnings.warn(f"{err} decompose yes uses the receptive-field shell instead.", stacklevel=2)
                self.exchange, self.exchange_cutoff = None, 0.0
        self._warned_virial = False

    @property
    def exchange_width(self) -> int:
        """The most values per atom one exchange sends (0 without per-layer exchange)."""
        return self.exchange.width if self.exchange is not None else 0

    def connect(self, forward: Communicate, reverse: Communicate) -> None:
        """Use LAMMPS' forward and reverse communication for per-layer exchange (``decompose yes``)."""
        if self.exchange is None:
            raise SoftcalcError(f"model {self.calc.info.name} has no per-layer exchange")
        self.exchange.connect(forward, reverse)

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
        virials: memoryview | None = None,
    ) -> tuple[float, ...]:
        """Evaluate the corrected model; fill ``forces`` (eV/Å), ``energies`` (eV) and ``virials``
        (per-atom centroid virials, (N, 9) eV, :func:`lammps_atom_virials`) in place.

        Per-atom virials come from the box unfolded to one receptive field (:mod:`softcalc.virial`);
        the global virial is then their sum, so the two agree to round-off.

        Returns the energy (eV) followed by the LAMMPS virial (eV, xx yy zz xy xz yz; zeros unless
        ``want_virial``).
        """
        pos = np.frombuffer(positions, dtype=np.float64).reshape(-1, 3)
        typ = np.frombuffer(types, dtype=np.intc)
        atoms = self.atoms(pos, typ, np.reshape(cell, (3, 3)), pbc)
        want_virial = want_virial and self._virial_available(atoms)
        if energies is not None or virials is not None:
            self._require_per_atom_energies("compute pe/atom" if virials is None else "compute stress/atom")
        if virials is not None:
            from softcalc.virial import per_atom_virials

            res = per_atom_virials(self.calc, atoms)
            atom_virials = lammps_atom_virials(res["virials"])
            np.frombuffer(virials, dtype=np.float64).reshape(-1, 9)[:] = atom_virials
            total = atom_virials.sum(axis=0)
            virial = total[[0, 1, 2, 3, 4, 5]] + total[[0, 1, 2, 6, 7, 8]]
            virial = 0.5 * virial if want_virial else np.zeros(6)
        else:
            props = ["energy", "forces"]
            if want_virial:
                props.append("stress")
            if energies is not None:
                props.append("energies")
            self.calc.calculate(atoms, props, all_changes)
            res = self.calc.results
            virial = lammps_virial(res["stress"], atoms.get_volume()) if want_virial else np.zeros(6)
        np.frombuffer(forces, dtype=np.float64).reshape(-1, 3)[:] = res["forces"]
        if energies is not None:
            np.frombuffer(energies, dtype=np.float64)[:] = res["energies"]
        return (float(res["energy"]), *map(float, virial))

    def _require_per_atom_energies(self, what: str) -> None:
        if not self.has_per_atom_energies:
            raise PerAtomEnergyNotSupportedError(
                f"model {self.calc.info.name} gives no per-atom energies, so {what} is not available "
                f"with pair_style softcalc. Fix: remove {what}, or use a model with per-atom energies."
            )

    def compute_local(
        self,
        positions: memoryview,
        types: memoryview,
        nlocal: int,
        forces: memoryview,
        energies: memoryview | None,
        virials: memoryview | None = None,
    ) -> float:
        """Evaluate one rank's share: the corrected energy of its ``nlocal`` local atoms (eV).

        ``positions`` and ``types`` hold the local atoms first, then the ghost atoms (periodic images
        included) out to the ghost cutoff (one exchange cutoff with per-layer exchange, else one
        receptive field); they form a non-periodic cluster. Fills ``forces``
        (eV/Å) for local and ghost atoms (LAMMPS sums ghost forces onto their owners), when given
        ``energies`` (eV) for the local atoms and ``virials`` ((nall, 9) eV, per-atom centroid virials
        of local and ghost atoms, :func:`lammps_atom_virials`; LAMMPS sums the ghosts' onto their owners).
        """
        pos = np.frombuffer(positions, dtype=np.float64).reshape(-1, 3)
        typ = np.frombuffer(types, dtype=np.intc)
        exchange = self.exchange if self.exchange is not None and self.exchange.connected else None
        wants_virials = virials is not None
        if exchange is not None and not owned_atoms_read_neighbours(pos, nlocal, self.cutoff):
            # no own atom reads a neighbour: nothing here depends on a ghost's features, so only zeros
            # would go back; keep the other ranks' exchanges in step on zero rows, then evaluate alone
            exchange.idle(pos, wants_virials)
            exchange = None
            if nlocal == 0:
                return 0.0
        cluster = cluster_atoms(self.numbers[typ - 1], pos)
        owned = np.arange(len(cluster)) < nlocal
        if exchange is None:
            res = self.calc.local_energy(cluster, owned, virials=wants_virials)
        else:
            origin = cluster.positions[0] - pos[0]  # every rank's virials in one frame: LAMMPS' (boxlo)
            with exchange.running(nlocal, len(pos), pos if wants_virials else None):
                try:
                    res = self.calc.local_energy(cluster, owned, virials=wants_virials, virial_origin=origin)
                except Exception:
                    exchange.complete(wants_virials, pos)  # the other ranks wait in these exchanges
                    raise
        np.frombuffer(forces, dtype=np.float64).reshape(-1, 3)[:] = res["forces"]
        if energies is not None:
            np.frombuffer(energies, dtype=np.float64)[:] = res["energies"][:nlocal]
        if virials is not None:
            np.frombuffer(virials, dtype=np.float64).reshape(-1, 9)[:] = lammps_atom_virials(res["virials"])
        return res["energy"]
