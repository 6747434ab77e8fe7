"""Least-squares refit of the atom reference energies μ_Z to DFT energies, before fine-tuning.

A model and a DFT code rarely agree on absolute energies: the per-element offset (another
functional, pseudopotentials, MPtrj's corrections) is a constant shift of μ_Z that gradient descent
would spend many steps on. Over the training frames k with a DFT energy, with residuals
r_k = E_k^DFT - E_k^model (eV) and composition counts c_kZ, the shifts δ_Z minimise the per-atom error
that the energy loss measures,

    Σ_k ((r_k - Σ_Z c_kZ δ_Z) / n_k)²,

solved by least squares (numpy's ``lstsq``: the minimum-norm δ when compositions do not tell
elements apart, e.g. frames of one stoichiometry). With one element δ is the mean residual per atom.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from softcalc.data.dataset import ForceFrame
from softcalc.torch_adapter import TorchAdapter


def model_energies(adapter: TorchAdapter, frames: Sequence[ForceFrame], batch_size: int) -> np.ndarray:
    """Total energies (eV) of the frames' structures (checked already), in batches, without gradients."""
    energies = []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            structures = [f.atoms for f in frames[start : start + batch_size]]
            energies.append(adapter.energy_pass(structures, stress=False)[0].double().cpu().numpy())
    return np.concatenate(energies)


def reference_shift(adapter: TorchAdapter, frames: Sequence[ForceFrame], batch_size: int) -> dict[str, float]:
    """Per-element shifts δ_Z (eV/atom) of μ_Z that best fit the frames' DFT energies; {} without energies."""
    labelled = [f for f in frames if f.energy is not None]
    if not labelled:
        return {}
    elements = sorted({s for f in labelled for s in f.atoms.get_chemical_symbols()})
    counts = np.array([[f.atoms.get_chemical_symbols().count(e) for e in elements] for f in labelled], float)
    n_atoms = counts.sum(axis=1)
    residuals = np.array([f.energy for f in labelled]) - model_energies(adapter, labelled, batch_size)
    shift = np.linalg.lstsq(counts / n_atoms[:, None], residuals / n_atoms, rcond=None)[0]
    return {element: float(d) for element, d in zip(elements, shift)}
