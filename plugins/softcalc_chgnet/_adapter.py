"""CHGNet as a softcalc :class:`~softcalc.torch_adapter.TorchAdapter`.

CHGNet predicts per-site energies e_i (its readout MLP runs before pooling) plus an AtomRef
composition term μ_Z per atom; the total energy is E = Σ_i (e_i + μ_Zi). This adapter runs CHGNet's
own graph featurisation (which applies the homogeneous strain) and message passing; the base class
takes forces and stress by autograd of a weighted sum Σ_i w_i (e_i + μ_Zi), so per-species
corrections stay conservative, and evaluates many structures in one batched graph.

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

from softcalc.errors import InvalidStructureError, SoftcalcError
from softcalc.info import ModelInfo
from softcalc.torch_adapter import ForwardPass, TorchAdapter, parameters_of
from softcalc.weight_files import loading_weights, weights_sha256

# CHGNet's BatchedGraph builds its (unused here) volume tensor from tensors that need grad: harmless
warnings.filterwarnings(
    "ignore",
    message="(To copy construct from a tensor|Converting a tensor with requires_grad)",
    module=r"chgnet\.model\.model",
)

#: default bound on atoms per batched forward pass in :meth:`ChgnetAdapter.compute_many`
MAX_ATOMS_PER_BATCH = 2048
#: vacuum (Å) beyond the atom-graph cutoff around a non-periodic structure placed in a box
VACUUM_MARGIN = 1.0


def load_chgnet(checkpoint: Path, version: str | None, how_to_get: str | None = None) -> CHGNet:
    """Build CHGNet from a checkpoint file (quietly: CHGNet prints on construction).

    A damaged file raises :class:`~softcalc.errors.CorruptWeightsError` with ``how_to_get`` as the fix.
    """
    with loading_weights(checkpoint, "CHGNet", how_to_get):
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
    with loading_weights(checkpoint, "CHGNet", how_to_get), redirect_stdout(io.StringIO()):
        model = CHGNet.from_dict(model_dict, **extra)
    if not model.mlp_first:
        raise SoftcalcError(
            f"{checkpoint} is a CHGNet without per-site energies (mlp_first=False), which softcalc "
            "does not support. Fix: use a pretrained CHGNet or a checkpoint trained with mlp_first=True."
        )
    return model


class ChgnetAdapter(TorchAdapter):
    """One loaded CHGNet checkpoint.

    Args:
        checkpoint: ``.pth.tar`` file.
        name: canonical model name (``"chgnet-0.3.0"``).
        version: pretrained version tag (``"0.3.0"``), None for user checkpoints.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: ``"float32"`` (default, as trained) or ``"float64"``.
        max_atoms_per_batch: bound on atoms per batched forward pass in :meth:`compute_many`.
        how_to_get: how to get the checkpoint again should it be damaged (the fix of the error).
    """

    def __init__(
        self,
        checkpoint: Path,
        name: str,
        version: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        max_atoms_per_batch: int = MAX_ATOMS_PER_BATCH,
        how_to_get: str | None = None,
    ) -> None:
        dtype = dtype or "float32"
        super().__init__(device, dtype, max_atoms_per_batch)
        model = load_chgnet(checkpoint, version, how_to_get)
        model.graph_converter.set_isolated_atom_response("ignore")
        model = self.frozen(model)
        self.model = model
        n_elements = model.atom_embedding.embedding.num_embeddings
        symbols = chemical_symbols[1 : n_elements + 1]
        self.info = ModelInfo(
            name=name,
            family="chgnet",
            weights=str(checkpoint),
            weights_sha256=weights_sha256(checkpoint),
            elements=frozenset(symbols),
            cutoff=float(model.graph_converter.atom_graph_cutoff),
            n_message_passing=int(model.n_conv),
            reference_energies=self.reference_energies() or dict.fromkeys(symbols, 0.0),
            device=str(self.device),
            dtype=dtype,
        )

    # ------------------------------------------------------------------ fine-tuning hooks
    @property
    def module(self) -> CHGNet:
        return self.model

    def tunable_groups(self) -> tuple[list[torch.nn.Parameter], list[list[torch.nn.Parameter]]]:
        """Readout: the LayerNorm and MLP that give site energies. Block k: atom conv k with the bond and
        angle updates that follow it in CHGNet's loop (the last block is the last atom conv alone)."""
        m = self.model
        readout = parameters_of(m.readout_norm, m.mlp)
        bond_layers, angle_layers = list(m.bond_conv_layers), list(m.angle_layers)
        blocks = [
            parameters_of(
                atom_layer,
                bond_layers[k] if k < len(bond_layers) else None,
                angle_layers[k] if k < len(angle_layers) else None,
            )
            for k, atom_layer in enumerate(m.atom_conv_layers)
        ]
        return readout, blocks

    def reference_energy_table(self) -> tuple[torch.Tensor, dict[str, int]] | None:
        """AtomRef's weight (1, n_elements): μ_Z of atomic number Z at flat index Z - 1."""
        comp = self.model.composition_model
        if comp is None:
            return None
        n_elements = comp.fc.weight.shape[1]
        return comp.fc.weight, {chemical_symbols[z]: z - 1 for z in range(1, n_elements + 1)}

    def energies_outside(self, structures: Sequence[Atoms]) -> torch.Tensor | None:
        """μ_Zi of every atom (eV): CHGNet adds AtomRef to the site energies outside the network."""
        comp = self.model.composition_model
        if comp is None:
            return None
        numbers = np.concatenate([atoms.numbers for atoms in structures])
        return comp.fc.weight[0, torch.as_tensor(numbers - 1, device=comp.fc.weight.device)]

    # ------------------------------------------------------------------ evaluation
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

    def forward_pass(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        """One batched CHGNet pass: site energies e_i without μ_Z; CHGNet strains each lattice itself."""
        batch = BatchedGraph.from_graphs(
            [self._graph(atoms) for atoms in structures],
            bond_basis_expansion=self.model.bond_basis_expansion,
            angle_basis_expansion=self.model.angle_basis_expansion,
            compute_stress=stress,
        )
        # CHGNet's private _compute (its forward without the AtomRef sum): chgnet is bounded in pyproject, and
        # tests/test_plugin_chgnet.py::test_chgnet_private_api_the_plugin_relies_on fails when it changes
        site = self.model._compute(batch, return_site_energies=True)["site_energies"]
        return ForwardPass(torch.cat(site), list(batch.atom_positions), list(batch.strains) if stress else [])
