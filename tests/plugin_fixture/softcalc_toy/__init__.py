"""A third-party softcalc plugin, registered only through package metadata (entry_points.txt).

It serves ``toy-morse``: a smooth Morse pair potential written in torch, with per-atom energies
e_i = μ_Zi + ½ Σ_j φ(r_ij), so tests of the core (conservative corrections, per-species scales,
finite differences) run in milliseconds without a real uMLIP. Like the bundled plugins it builds on
:class:`softcalc.torch_adapter.TorchAdapter`, which supplies autograd forces and stress, batching
and weighted energies; the toy only writes its forward pass. Its Morse parameters are torch
parameters (:class:`MorseParameters`), so it can be fine-tuned like the real models: the well depths
are its "readout", widths and distances its one "interaction block".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import primitive_neighbor_list

from softcalc.autograd import strained
from softcalc.info import ModelInfo
from softcalc.registry import ModelPlugin
from softcalc.torch_adapter import ForwardPass, TorchAdapter

#: Morse parameters per element: well depth D (eV), width a (1/Å), equilibrium distance r0 (Å).
PARAMS = {"Si": (2.2, 1.5, 2.35), "Ge": (1.9, 1.4, 2.45), "C": (3.0, 1.9, 1.54), "O": (2.5, 2.2, 1.45)}
#: reference energies μ_Z (eV/atom), arbitrary but distinct so anchoring is tested
REFERENCES = {"Si": -0.8, "Ge": -0.5, "C": -1.2, "O": -2.0}
CUTOFF = 5.0
#: most atoms per forward pass of ``compute_many``
MAX_ATOMS_PER_BATCH = 4096
#: element order of the per-element tensors of :class:`MorseParameters`
ELEMENTS = tuple(PARAMS)


class MorseParameters(torch.nn.Module):
    """Per-element Morse parameters (in :data:`ELEMENTS` order) and reference energies, float64.

    Parameters: ``depth`` D (eV), ``width`` a (1/Å), ``distance`` r0 (Å); buffer ``references`` μ_Z
    (eV/atom). A pair i-j uses D = √(D_i D_j), a = (a_i + a_j)/2, r0 = (r0_i + r0_j)/2.
    """

    def __init__(self) -> None:
        super().__init__()
        table = torch.tensor([PARAMS[s] for s in ELEMENTS], dtype=torch.float64)
        self.depth = torch.nn.Parameter(table[:, 0].clone())
        self.width = torch.nn.Parameter(table[:, 1].clone())
        self.distance = torch.nn.Parameter(table[:, 2].clone())
        self.register_buffer(
            "references", torch.tensor([REFERENCES[s] for s in ELEMENTS], dtype=torch.float64)
        )


class ToyMorse(TorchAdapter):
    """Morse pair potential with a cosine cutoff; float64 on CPU."""

    def __init__(self) -> None:
        super().__init__("cpu", "float64", MAX_ATOMS_PER_BATCH)
        self.params = self.frozen(MorseParameters())
        self.index = {s: k for k, s in enumerate(ELEMENTS)}
        self.info = ModelInfo(
            name="toy-morse",
            family="toy",
            weights=None,
            weights_sha256=None,
            elements=frozenset(PARAMS),
            cutoff=CUTOFF,
            n_message_passing=1,
            reference_energies=self.reference_energies(),
            device="cpu",
            dtype="float64",
        )

    @property
    def module(self) -> MorseParameters:
        return self.params

    def tunable_groups(self) -> tuple[list[torch.nn.Parameter], list[list[torch.nn.Parameter]]]:
        """Readout: the well depths (energy scales). One block: the widths and distances (geometry)."""
        return [self.params.depth], [[self.params.width, self.params.distance]]

    def reference_energy_table(self) -> tuple[torch.Tensor, dict[str, int]]:
        return self.params.references, dict(self.index)

    def _site_energies(self, atoms: Atoms, positions: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        i, j, shifts = primitive_neighbor_list(
            "ijS", atoms.pbc, np.asarray(atoms.cell), atoms.positions, CUTOFF
        )
        kind = torch.tensor([self.index[s] for s in atoms.get_chemical_symbols()])
        ki, kj = kind[torch.as_tensor(i)], kind[torch.as_tensor(j)]
        par = self.params
        d = torch.sqrt(par.depth[ki] * par.depth[kj])
        a = 0.5 * (par.width[ki] + par.width[kj])
        r0 = 0.5 * (par.distance[ki] + par.distance[kj])
        vec = positions[j] - positions[i] + torch.tensor(shifts, dtype=positions.dtype) @ cell
        r = torch.linalg.norm(vec, dim=1)
        fc = 0.5 * (torch.cos(torch.pi * r / CUTOFF) + 1.0)
        phi = d * ((1.0 - torch.exp(-a * (r - r0))) ** 2 - 1.0) * fc
        mu = par.references[kind]
        return mu + 0.5 * torch.zeros(len(atoms), dtype=positions.dtype).index_add(0, torch.tensor(i), phi)

    def forward_pass(self, structures: Sequence[Atoms], stress: bool) -> ForwardPass:
        energies, positions, strains = [], [], []
        for atoms in structures:
            pos = torch.tensor(atoms.positions, dtype=self.dtype, requires_grad=True)
            cell = torch.tensor(np.asarray(atoms.cell), dtype=self.dtype)[None]
            strain, pos_s, cell_s = strained(pos, cell, torch.zeros(len(atoms), dtype=torch.long))
            energies.append(self._site_energies(atoms, pos_s, cell_s[0]))
            positions.append(pos)
            strains.append(strain)
        return ForwardPass(torch.cat(energies), positions, strains if stress else [])


class ToyPlugin(ModelPlugin):
    """Serves the toy Morse model by name and ``*.toy`` files by path."""

    family = "toy"
    package = "torch"
    extra = "mace"

    def names(self) -> dict[str, str]:
        return {"toy-morse": "Morse pair potential for tests (Si, Ge, C, O)"}

    def claims_path(self, path: Path) -> bool:
        return path.suffix == ".toy"

    def load(self, name_or_path: str, device: str = "cpu", dtype: str | None = None) -> ToyMorse:
        return ToyMorse()
