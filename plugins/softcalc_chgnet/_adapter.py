"""CHGNet as a softcalc :class:`~softcalc.model.ModelAdapter`.

CHGNet predicts per-site energies e_i (its readout MLP runs before pooling) plus an AtomRef
composition term μ_Z per atom; the total energy is E = Σ_i (e_i + μ_Zi). This adapter runs CHGNet's
own graph featurisation and message passing and takes forces and stress by autograd of a weighted
sum Σ_i w_i (e_i + μ_Zi) with respect to Cartesian positions and a homogeneous strain, so per-species
corrections stay conservative. Many structures are evaluated in one batched graph.

Units: energies eV, forces eV/Å, stress eV/Å³ (ASE sign: σ = (1/V) ∂E/∂ε; CHGNet itself reports GPa).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from chgnet.graph import CrystalGraph
from chgnet.model.model import BatchedGraph, CHGNet
from pymatgen.core import Lattice, Structure

from softcalc.autograd import voigt_stress
from softcalc.errors import InvalidStructureError, SoftcalcError
from softcalc.model import ModelAdapter, ModelInfo, atom_batches
from softcalc.structure import check_structure
from softcalc.weights import weights_sha256

# CHGNet's BatchedGraph builds its (unused here) volume tensor from tensors that need grad: harmless
warnings.filterwarnings(
    "ignore",
    message="(To copy construct from a tensor|Converting a tensor with requires_grad)",
    module=r"chgnet\.model\.model",
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: default bound on atoms per batched forward pass in :meth:`ChgnetAdapter.compute_many`
MAX_ATOMS_PER_BATCH = 2048
#: vacuum (Å) beyond the atom-graph cutoff around a non-periodic structure placed in a box
VACUUM_MARGIN = 1.0


def load_chgnet(checkpoint: Path, version: str | None) -> CHGNet:
    """Build CHGNet from a checkpoint file (quietly: CHGNet prints on construction)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    try:
        model_dict = state["model"]
        args = model_dict["model_args"]
        params = model_dict["state_dict"]
    except (KeyError, TypeError) as exc:
        raise SoftcalcError(
            f"{checkpoint} is not a CHGNet checkpoint (no model.state_dict / model.model_args). "
            "Fix: pass a file written by CHGNet's trainer or one of the pretrained names."
        ) from exc
    extra: dict[str, Any] = {}
    if "mlp_out_bias" not in args:  # 0.2.0-style checkpoints carry biases in the conv output MLPs
        extra["mlp_out_bias"] = any(".mlp_out." in k and k.endswith(".bias") for k in params)
    if version and "version" not in args:
        extra["version"] = version
    with redirect_stdout(io.StringIO()):
        model = CHGNet.from_dict(model_dict, **extra)
    if not model.mlp_first:
        raise SoftcalcError(
            f"{checkpoint} is a CHGNet without per-site energies (mlp_first=False), which softcalc "
            "does not support. Fix: use a pretrained CHGNet or a checkpoint trained with mlp_first=True."
        )
    return model


class ChgnetAdapter(ModelAdapter):
    """One loaded CHGNet checkpoint.

    Args:
        checkpoint: ``.pth.tar`` file.
        name: canonical model name (``"chgnet-0.3.0"``).
        version: pretrained version tag (``"0.3.0"``), None for user checkpoints.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: ``"float32"`` (default, as trained) or ``"float64"``.
        max_atoms_per_batch: bound on atoms per batched forward pass in :meth:`compute_many`.
    """

    supports_per_atom_energies = True

    def __init__(
        self,
        checkpoint: Path,
        name: str,
        version: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        max_atoms_per_batch: int = MAX_ATOMS_PER_BATCH,
    ) -> None:
        dtype = dtype or "float32"
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype]
        model = load_chgnet(checkpoint, version)
        model.graph_converter.set_isolated_atom_response("ignore")
        model = model.to(device=self.device, dtype=self.dtype).eval()
        model.requires_grad_(False)
        self.model = model
        self.max_atoms_per_batch = max_atoms_per_batch
        n_elements = model.atom_embedding.embedding.num_embeddings
        comp = model.composition_model
        mu = np.zeros(n_elements)
        if comp is not None:
            mu = comp.fc.weight.detach().cpu().double().numpy().reshape(-1)[:n_elements]
        #: μ_Z by atomic number (index Z), eV/atom
        self.mu_by_z = np.concatenate([[0.0], mu])
        symbols = chemical_symbols[1 : n_elements + 1]
        self.info = ModelInfo(
            name=name,
            family="chgnet",
            weights=str(checkpoint),
            weights_sha256=weights_sha256(checkpoint),
            elements=frozenset(symbols),
            cutoff=float(model.graph_converter.atom_graph_cutoff),
            n_message_passing=int(model.n_conv),
            reference_energies={s: float(self.mu_by_z[z]) for z, s in enumerate(symbols, start=1)},
            device=str(self.device),
            dtype=dtype,
        )

    def _structure(self, atoms: Atoms) -> Structure:
        """pymatgen Structure CHGNet's graph converter reads; non-periodic atoms go in a vacuum box."""
        positions = atoms.positions
        if atoms.pbc.all():
            cell = np.asarray(atoms.cell)
        elif not atoms.pbc.any():
            lo = positions.min(axis=0)
            cell = np.diag(np.ptp(positions, axis=0) + self.info.cutoff + VACUUM_MARGIN)
            positions = positions - lo
        else:
            raise InvalidStructureError(
                "CHGNet needs a fully periodic or a fully non-periodic structure, "
                f"got pbc={atoms.pbc.tolist()}. "
                f"Fix: set pbc=True with more than {self.info.cutoff} Å of vacuum along the open axes."
            )
        return Structure(Lattice(cell), atoms.numbers, positions, coords_are_cartesian=True)

    def _graph(self, atoms: Atoms) -> CrystalGraph:
        structure = self._structure(atoms)
        graph = self.model.graph_converter(structure)
        if self.dtype != torch.float32:  # CHGNet's converter builds float32 geometry
            graph.atom_frac_coord = torch.tensor(structure.frac_coords, dtype=self.dtype, requires_grad=True)
            graph.lattice = torch.tensor(structure.lattice.matrix, dtype=self.dtype, requires_grad=True)
            graph.neighbor_image = graph.neighbor_image.to(self.dtype)
        return graph.to(self.device)

    def _evaluate(
        self,
        structures: Sequence[Atoms],
        weights: Sequence[np.ndarray] | None,
        forces: bool,
        stress: bool,
    ) -> list[dict[str, Any]]:
        """One batched forward pass: weighted energies, their gradients and the unweighted site energies."""
        graphs = [self._graph(atoms) for atoms in structures]
        stress = stress and all(atoms.pbc.all() for atoms in structures)
        with torch.enable_grad():
            batch = BatchedGraph.from_graphs(
                graphs,
                bond_basis_expansion=self.model.bond_basis_expansion,
                angle_basis_expansion=self.model.angle_basis_expansion,
                compute_stress=stress,
            )
            site = self.model._compute(batch, return_site_energies=True)["site_energies"]
            if weights is None:
                objective = torch.cat(site).sum()
            else:
                w = torch.as_tensor(np.concatenate(weights), dtype=self.dtype, device=self.device)
                objective = (w * torch.cat(site)).sum()
            inputs = [*batch.atom_positions, *batch.strains] if stress else [*batch.atom_positions]
            grads = torch.autograd.grad(objective, inputs) if forces or stress else ()
        out = []
        for k, atoms in enumerate(structures):
            energies = site[k].detach().cpu().double().numpy() + self.mu_by_z[atoms.numbers]
            wk = 1.0 if weights is None else np.asarray(weights[k], dtype=float)
            res: dict[str, Any] = {"energy": float(np.sum(wk * energies)), "energies": energies}
            if forces:
                res["forces"] = -grads[k].detach().cpu().double().numpy()
            if stress:
                grad_strain = grads[len(structures) + k].detach().cpu().double().numpy()
                res["stress"] = voigt_stress(grad_strain, atoms.get_volume())
            out.append(res)
        return out

    @staticmethod
    def _select(res: dict[str, Any], properties: Sequence[str]) -> dict[str, Any]:
        if "energies" not in properties:
            res.pop("energies")
        return res

    def compute(self, atoms: Atoms, properties: Sequence[str]) -> dict[str, Any]:
        res = self._evaluate([atoms], None, forces=True, stress="stress" in properties)[0]
        return self._select(res, properties)

    def compute_many(
        self, structures: Sequence[Atoms], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate many structures in batched forward passes (chunks of ≤ ``max_atoms_per_batch`` atoms).

        Stress is returned for every structure when requested and all structures of a chunk are
        periodic. Results are in input order and equal :meth:`compute` structure by structure.
        """
        for atoms in structures:
            check_structure(atoms, self.info)
        results: list[dict[str, Any]] = []
        wanted = {"forces": "forces" in properties, "stress": "stress" in properties}
        for batch in atom_batches(structures, self.max_atoms_per_batch):
            results += self._evaluate(batch, None, **wanted)
        return [self._select(res, properties) for res in results]

    def weighted_energy(
        self, atoms: Atoms, atom_weights: np.ndarray, compute_stress: bool = True
    ) -> dict[str, Any]:
        weights = np.asarray(atom_weights, dtype=float)
        if weights.shape != (len(atoms),):
            raise ValueError(f"atom_weights must have shape ({len(atoms)},), got {weights.shape}")
        return self._evaluate([atoms], [weights], forces=True, stress=compute_stress)[0]
