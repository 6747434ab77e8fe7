"""Per-atom virials and per-atom stresses of a corrected model, periodic cells included.

A model's per-atom virial needs ∂U_j/∂r_i for every image of atom i separately, which a periodic
evaluation sums away. Here the cell is unfolded: its atoms plus periodic images form a non-periodic
cluster in which only the cell's own atoms carry energy (the cluster of LAMMPS' decomposed path, built
from the cell instead of a subdomain). For a model with exchange points (MACE, M3GNet, TensorNet) the
images reach one exchange cutoff and take their node features from the atoms they copy before every
layer (:mod:`softcalc.exchange`); for the others (CHGNet) they reach one receptive field. The
cluster's centroid virials (:func:`softcalc.autograd.centroid_virials`) are then folded back onto the
atoms whose images they belong to:

    W_i^ab = Σ_(images i' of i) Σ_j (r_j - r_i')^a ∂U_j/∂r_i'^b   (eV)

with U_j the corrected per-atom energy. Σ_i W_i is the virial Σ r ⊗ F of the cell, so
Σ_i W_i = -V σ. The per-atom stresses of ASE (``atoms.get_stresses()``) are -W_i / V (eV/Å³, Voigt,
symmetrised), which sum to the stress as in ASE's own calculators. The cost is one evaluation of the
cluster (for a small cell several times the cell's atoms) and three extra backward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.neighborlist import primitive_neighbor_list
from ase.stress import full_3x3_to_voigt_6_stress

from softcalc.exchange import FeatureExchange, image_exchange
from softcalc.torch_adapter import TorchAdapter

if TYPE_CHECKING:
    from softcalc.calculator import SoftCorrectedCalc

#: Å added to the receptive field when collecting images: atoms exactly at a cutoff contribute zero,
#: the margin keeps round-off from dropping one that does not
IMAGE_MARGIN = 0.01


@dataclass(frozen=True)
class ImageCluster:
    """A structure unfolded into a non-periodic cluster.

    Attributes:
        atoms: the cluster: the structure's atoms first (same order), then their periodic images.
        owner: (M,) index into the structure of each cluster atom.
    """

    atoms: Atoms
    owner: np.ndarray  # the structure's atoms first, translated into a bounding box (cluster_atoms)

    @property
    def home(self) -> np.ndarray:
        """(M,) True for the structure's own atoms (the first N)."""
        return np.arange(len(self.atoms)) < int(self.owner.max()) + 1


def cluster_atoms(numbers: np.ndarray, positions: np.ndarray, margin: float = 1.0) -> Atoms:
    """A non-periodic cluster translated into a bounding box (Å) that holds every atom.

    The box changes no energy or force (the cluster is not periodic and every model is translation
    invariant), but neighbour searches bin atoms by the cell: without one, or with atoms outside it,
    ASE's neighbour list becomes quadratic in time and memory (8 s for 2700 atoms instead of 0.1 s).
    """
    low = positions.min(axis=0) - margin
    extent = positions.max(axis=0) - low + margin
    return Atoms(numbers=numbers, positions=positions - low, cell=np.diag(extent), pbc=False)


def image_cluster(atoms: Atoms, radius: float) -> ImageCluster:
    """``atoms`` plus every periodic image lying within ``radius`` (Å) of one of its atoms.

    A non-periodic structure is its own cluster. The neighbour search follows ``atoms.pbc``, so a slab
    periodic in x and y is unfolded in x and y only.
    """
    n = len(atoms)
    if not atoms.pbc.any():
        return ImageCluster(cluster_atoms(atoms.numbers, atoms.positions), np.arange(n))
    j, shifts = primitive_neighbor_list(
        "jS",
        atoms.pbc,
        np.asarray(atoms.cell),
        atoms.positions,
        radius + IMAGE_MARGIN,
        self_interaction=False,
    )
    images = np.unique(np.column_stack([j, shifts])[np.any(shifts != 0, axis=1)], axis=0)
    owner = np.concatenate([np.arange(n), images[:, 0]])
    positions = np.vstack(
        [atoms.positions, atoms.positions[images[:, 0]] + images[:, 1:] @ np.asarray(atoms.cell)]
    )
    return ImageCluster(cluster_atoms(atoms.numbers[owner], positions), owner)


def per_atom_virials(calc: SoftCorrectedCalc, atoms: Atoms) -> dict[str, np.ndarray | float]:
    """Corrected energy, forces, per-atom energies and per-atom virials of ``atoms`` from its image
    cluster (module docstring).

    Returns:
        ``energy`` (eV), ``forces`` ((N, 3) eV/Å), ``energies`` ((N,) eV), ``virials`` ((N, 3, 3) eV,
        W_i^ab with a the position and b the force component); for a 3D-periodic cell also ``stress``
        ((6,) eV/Å³, -Σ W_i / V) and ``stresses`` ((N, 6) eV/Å³, -W_i / V, ASE Voigt order).

    Raises:
        PerAtomEnergyNotSupportedError: the model gives no differentiable per-atom energies.
    """
    model = getattr(calc.active, "model", None)
    exchange = FeatureExchange(model) if isinstance(model, TorchAdapter) and model.exchange_points() else None
    n = len(atoms)
    if exchange is None:
        unfolded = image_cluster(atoms, calc.receptive_field)
        res = calc.local_energy(unfolded.atoms, unfolded.home, virials=True)
    else:
        unfolded = image_cluster(atoms, model.exchange_cutoff)
        exchange.connect(*image_exchange(unfolded.owner))
        with exchange.running(n, len(unfolded.atoms), unfolded.atoms.positions):
            res = calc.local_energy(unfolded.atoms, unfolded.home, virials=True)
    forces = np.zeros((n, 3))
    np.add.at(forces, unfolded.owner, res["forces"])
    virials = np.zeros((n, 3, 3))
    np.add.at(virials, unfolded.owner, res["virials"])
    out: dict[str, np.ndarray | float] = {
        "energy": res["energy"],
        "forces": forces,
        "energies": np.asarray(res["energies"])[:n],
        "virials": virials,
    }
    if atoms.pbc.all():
        volume = atoms.get_volume()
        out["stresses"] = np.array([full_3x3_to_voigt_6_stress(-w / volume) for w in virials])
        out["stress"] = full_3x3_to_voigt_6_stress(-virials.sum(axis=0) / volume)
    return out
