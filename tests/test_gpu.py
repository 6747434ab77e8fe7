"""CUDA paths: each model family on the GPU agrees with the CPU (skipped, with the reason, without a GPU)."""

from __future__ import annotations

import os
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from softcalc import SoftCorrectedCalc

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU test: no CUDA device visible to torch"),
]

MODEL_DIR = Path(os.environ["SOFTCALC_MODEL_DIR"])
MACE_SWA = MODEL_DIR / "mace" / "mace_swa.model"


def structure(model: str):
    if model == str(MACE_SWA):
        if not MACE_SWA.is_file():
            pytest.skip(f"{MACE_SWA} not found")
        return ase.io.read(MODEL_DIR / "mace" / "validate.xyz", index=0)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=7)
    return atoms


@pytest.mark.parametrize("model", ["chgnet", "m3gnet", str(MACE_SWA)], ids=["chgnet", "m3gnet", "mace"])
def test_cuda_matches_cpu(model: str) -> None:
    """Energy, forces and stress of the corrected model, float32 on both devices (tolerances for float32)."""
    atoms = structure(model)
    results = {}
    for device in ("cpu", "cuda"):
        calc = SoftCorrectedCalc(model, scale=1.1, device=device)
        a = atoms.copy()
        a.calc = calc
        results[device] = (a.get_potential_energy() / len(a), a.get_forces(), a.get_stress())
    (e_cpu, f_cpu, s_cpu), (e_gpu, f_gpu, s_gpu) = results["cpu"], results["cuda"]
    assert abs(e_gpu - e_cpu) < 1e-4  # eV/atom
    np.testing.assert_allclose(f_gpu, f_cpu, atol=2e-3)  # eV/Å
    np.testing.assert_allclose(s_gpu, s_cpu, atol=1e-4)  # eV/Å³
    assert np.abs(f_cpu).max() > 0.1
