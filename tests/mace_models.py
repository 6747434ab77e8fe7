"""Small random-weight MACE models built from mace-torch's own classes, for fast tests.

``random_mace()`` returns a float64 ``ScaleShiftMACE`` for Si and Ge (2 interactions, 8 channels,
l_max 1, cutoff 4 Å): a real MACE architecture whose evaluation takes milliseconds. Its E0s are
model parameters chosen distinct so that anchoring by μ_Z is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

#: E0 (eV/atom) of the random model, per element
RANDOM_E0 = {"Si": -4.2, "Ge": -3.6}
RANDOM_CUTOFF = 4.0


def random_mace(seed: int = 0, interactions: int = 2) -> torch.nn.Module:
    """A float64 ScaleShiftMACE for Si and Ge with random weights (deterministic for a seed)."""
    from e3nn import o3
    from mace import modules
    from mace.tools import torch_tools

    torch.manual_seed(seed)
    with torch_tools.default_dtype(torch.float64):
        model = modules.ScaleShiftMACE(
            r_max=RANDOM_CUTOFF,
            num_bessel=6,
            num_polynomial_cutoff=5,
            max_ell=2,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=interactions,
            num_elements=2,
            hidden_irreps=o3.Irreps("8x0e + 8x1o"),
            MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([RANDOM_E0["Si"], RANDOM_E0["Ge"]]),
            avg_num_neighbors=8.0,
            atomic_numbers=[14, 32],
            correlation=2,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=5.0,
            atomic_inter_shift=0.0,
        )
    return model.double()


def save_random_mace(path: str | Path, seed: int = 0, interactions: int = 2) -> Path:
    """Write :func:`random_mace` as a ``.model`` file (``torch.save`` of the module, as mace does)."""
    path = Path(path)
    torch.save(random_mace(seed, interactions), path)
    return path
