"""Batched crystal graphs for matgl models, built from ASE structures.

matgl's own ``Atoms2Graph`` treats any structure that is not periodic along all three axes as a
molecule; this builder uses ASE's neighbour list, which honours mixed periodicity (slabs, wires).
Edges follow matgl's convention: ``edge_index[0]`` is the centre atom i, ``edge_index[1]`` the
neighbour j, and the bond vector is ``r_j + S·cell - r_i`` with integer image shifts S. Edges are
sorted by centre atom, as matgl's three-body line graph requires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import primitive_neighbor_list
from scipy.spatial import cKDTree


@dataclass
class GraphBatch:
    """Disjoint union of the graphs of several structures (all tensors on one device).

    Attributes:
        node_type: (N,) index of each atom's element in the model's ``element_types``.
        positions: (N, 3) Cartesian positions in Å.
        cells: (B, 3, 3) cell matrices in Å (rows are lattice vectors).
        edge_index: (2, E) centre and neighbour atom of every directed edge.
        shifts: (E, 3) integer periodic-image shifts of the neighbour.
        batch: (N,) structure index of every atom.
        n_atoms: (B,) atoms per structure.
        owned_edges: while LAMMPS exchanges ghost features (:func:`owned_messages`), the first
            ``owned_edges`` edges end at owned atoms and the rest are only three-body partners; None
            otherwise.
    """

    node_type: torch.Tensor
    positions: torch.Tensor
    cells: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    batch: torch.Tensor
    n_atoms: torch.Tensor
    owned_edges: int | None = None


def neighbour_pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre i, neighbour j and image shift S of every directed pair closer than ``cutoff`` (Å).

    Non-periodic structures (LAMMPS ghost clusters of thousands of atoms) go through a k-d tree, ten
    times faster than ASE's binned search in Python; periodic ones through ASE, which handles images.
    """
    if atoms.pbc.any():
        cell = np.asarray(atoms.cell, dtype=float)
        return primitive_neighbor_list(
            "ijS", atoms.pbc, cell, atoms.positions, cutoff, self_interaction=False
        )
    pairs = cKDTree(atoms.positions).query_pairs(cutoff, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return i, j, np.zeros((len(i), 3), dtype=int)


def build_graph_batch(
    structures: Sequence[Atoms],
    element_index: Mapping[str, int],
    cutoff: float,
    dtype: torch.dtype,
    device: torch.device | str,
) -> GraphBatch:
    """Neighbour lists (radius ``cutoff`` in Å) of ``structures`` merged into one :class:`GraphBatch`."""
    types, pos, cells, edges, shifts, batch, n_atoms = [], [], [], [], [], [], []
    offset = 0
    for k, atoms in enumerate(structures):
        cell = np.asarray(atoms.cell, dtype=float)
        i, j, s = neighbour_pairs(atoms, cutoff)
        order = np.argsort(i, kind="stable")
        edges.append(np.stack([i[order], j[order]]) + offset)
        shifts.append(s[order])
        types.append([element_index[sym] for sym in atoms.get_chemical_symbols()])
        pos.append(atoms.positions)
        cells.append(cell)
        batch.append(np.full(len(atoms), k))
        n_atoms.append(len(atoms))
        offset += len(atoms)

    def tensor(values: np.ndarray, kind: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=kind, device=device)

    return GraphBatch(
        node_type=tensor(np.concatenate(types), torch.long),
        positions=tensor(np.concatenate(pos), dtype),
        cells=tensor(np.stack(cells), dtype),
        edge_index=tensor(np.concatenate(edges, axis=1), torch.long),
        shifts=tensor(np.concatenate(shifts), dtype),
        batch=tensor(np.concatenate(batch), torch.long),
        n_atoms=tensor(np.array(n_atoms), torch.long),
    )


def owned_messages(graph: GraphBatch, owned: int, threebody_cutoff: float | None) -> GraphBatch:
    """The edges of ``graph`` (one non-periodic cluster) that the energies of its first ``owned`` atoms
    read when the other atoms' node features come from elsewhere (LAMMPS per-layer exchange).

    M3GNet (``threebody_cutoff`` given): an atom's node update reads the edges ending at it (neighbour
    j = ``edge_index[1]``), and the three-body update of such an edge i -> j, if it is shorter than the
    three-body cutoff, reads the bonds i -> k around its centre within that cutoff (their geometry and
    the features of k, never their edge features); edges ending at a ghost and bonds around other
    centres are dropped. The edges ending at owned atoms come first (``owned_edges`` of them, sorted by
    centre): only they are updated (:func:`owned_line_graph`,
    :func:`softcalc_matgl._owned_edges.owned_edges_only`).
    TensorNet (None): an atom gathers the edges it is the centre of; edges centred on a ghost are dropped.
    """
    centre, neighbour = graph.edge_index
    if threebody_cutoff is None:
        keep = centre < owned
        return replace(graph, edge_index=graph.edge_index[:, keep], shifts=graph.shifts[keep])
    to_owned = neighbour < owned
    length = torch.linalg.norm(graph.positions[neighbour] - graph.positions[centre], dim=1)
    three_body = length < threebody_cutoff
    centres = torch.zeros(len(graph.node_type), dtype=torch.bool, device=centre.device)
    centres[centre[to_owned & three_body]] = True
    partners = ~to_owned & centres[centre] & three_body
    keep = torch.cat([torch.nonzero(to_owned).squeeze(1), torch.nonzero(partners).squeeze(1)])
    return replace(
        graph,
        edge_index=graph.edge_index[:, keep],
        shifts=graph.shifts[keep],
        owned_edges=int(to_owned.sum()),
    )


def owned_line_graph(
    edge_index: torch.Tensor, bond_dist: torch.Tensor, threebody_cutoff: float, receiving: int
) -> dict[str, torch.Tensor]:
    """M3GNet's three-body line graph restricted to the bonds among the first ``receiving`` that
    receive a three-body update, in the form matgl's ``M3GNet.forward(l_g=...)`` takes.

    A triple (i -> j, i -> k) pairs a receiving bond i -> j with every other bond i -> k around the
    same centre, both no longer than ``threebody_cutoff`` (Å; matgl's own test, ``<=``). With
    ``receiving`` = all bonds this is matgl's ``create_line_graph``, built without a Python loop over
    atoms; with the bonds ending at owned atoms (:func:`owned_messages`) it leaves out the triples that
    would update bonds ending at ghosts, whose features no owned energy reads.

    Returns ``kept_edge_ids`` (bonds within the cutoff), ``line_edge_index`` ((2, T) parent bond ids,
    receiving bond first) and ``n_triple_ij`` (triples per bond).
    """
    device = edge_index.device
    kept = torch.nonzero(bond_dist <= threebody_cutoff).squeeze(1)
    centre = edge_index[0, kept]
    order = torch.argsort(centre, stable=True)
    by_centre = kept[order]
    counts = torch.bincount(centre, minlength=int(edge_index.max()) + 1 if edge_index.numel() else 0)
    starts = torch.cumsum(counts, 0) - counts
    receivers = kept[kept < receiving]
    around = counts[edge_index[0, receivers]]
    bond_ij = torch.repeat_interleave(receivers, around)
    first = torch.repeat_interleave(starts[edge_index[0, receivers]], around)
    offsets = torch.repeat_interleave(torch.cumsum(around, 0) - around, around)
    within = torch.arange(len(bond_ij), device=device) - offsets  # k's place among i's bonds
    bond_ik = by_centre[first + within]
    distinct = bond_ij != bond_ik
    n_triple_ij = torch.zeros(edge_index.shape[1], dtype=torch.long, device=device)
    n_triple_ij[receivers] = around - 1
    return {
        "kept_edge_ids": kept,
        "line_edge_index": torch.stack([bond_ij[distinct], bond_ik[distinct]]),
        "n_triple_ij": n_triple_ij,
    }
