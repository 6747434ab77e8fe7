"""Acceptance: the softening scale of CHGNet on mlearn Si (test split), computed independently."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from softcalc.cli import main

pytest.importorskip("chgnet", reason="CHGNet not installed: pip install 'softcalc[chgnet]'")


def test_cli_softening_scale_matches_independent_computation(data_dir, tmp_path) -> None:
    """s = Σ f_model·f_dft / Σ f_dft² with CHGNet's own calculator and numpy; the CLI agrees within 0.005."""
    from chgnet.model import CHGNet, CHGNetCalculator
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    path = data_dir / "forces/mlearn/Si/test.json"
    records = json.loads(path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc = CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")
    f_model, f_dft = [], []
    for rec in records:
        atoms = AseAtomsAdaptor.get_atoms(Structure.from_dict(rec["structure"]))
        atoms.calc = calc
        f_model.append(atoms.get_forces())
        f_dft.append(np.asarray(rec["outputs"]["forces"]))
    fm, fd = np.concatenate(f_model).ravel(), np.concatenate(f_dft).ravel()
    s_independent = fm @ fd / (fd @ fd)

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", "chgnet", "--data", str(path), "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["n_frames"] == len(records)
    assert result["n_components"] == fd.size
    assert result["softening_scale"] == pytest.approx(s_independent, abs=0.005)
    assert result["mae"] == pytest.approx(np.mean(np.abs(fm - fd)), abs=0.002)
    assert 0.5 < result["softening_scale"] < 1.0  # CHGNet softens on these off-equilibrium structures
