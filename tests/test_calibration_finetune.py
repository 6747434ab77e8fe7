"""Fine-tuning as a calibration method: the pipeline, saving and loading, refusals, ``auto``.

"DFT" is the toy model with 30 % stiffer forces and energies, so fine-tuning and λ both have a right
answer to approach; the fine-tuning engine itself is tested in test_finetune.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from labelled_frames import write_extxyz

from softcalc import SoftCorrectedCalc
from softcalc.calibration.pipeline import Calibration, calibrate
from softcalc.cli import main
from softcalc.correction import Correction
from softcalc.data import ForceDataset, ForceFrame
from softcalc.errors import CorrectionFileError, CorrectionMismatchError, SoftcalcError
from softcalc.finetune.settings import FineTuneSettings

SETTINGS = FineTuneSettings(epochs=15, lr=0.05, lr_final=5e-3, seed=1)


def stiffer(n: int, scale: float = 1.3, seed: int = 0, swap: bool = True) -> ForceDataset:
    """Strained, rattled SiGe cells labelled by the toy model scaled by ``scale`` (all properties)."""
    ref = SoftCorrectedCalc("toy-morse", scale=scale)
    frames = []
    for k in range(n):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        if swap:
            atoms.symbols[[0, 5]] = "Ge"
        atoms.set_cell(atoms.cell * (1 + 0.01 * (k - n / 2)), scale_atoms=True)
        atoms.rattle(0.08, seed=seed * 100 + k)
        atoms.calc = ref
        frames.append(
            ForceFrame(
                atoms.copy(), atoms.get_forces(), atoms.get_potential_energy(), atoms.get_stress(), "AIMD"
            )
        )
    return ForceDataset(frames, source="synthetic", material="SiGe")


@pytest.fixture(scope="module")
def tuned() -> Calibration:
    return calibrate("toy-morse", stiffer(12), frames=8, method="finetune", finetune=SETTINGS, n_bootstrap=50)


def corrected_forces(calc: SoftCorrectedCalc, frame: ForceFrame) -> np.ndarray:
    atoms = frame.atoms.copy()
    atoms.calc = calc
    return atoms.get_forces()


def test_finetune_lowers_held_out_errors_and_reports_training(tuned: Calibration) -> None:
    r = tuned.report
    assert r.method == "finetune" and r.kind == "finetune"
    assert r.errors_on == "held-out" and r.n_heldout == 4
    assert r.mae_after < 0.8 * r.mae_before
    assert r.recommended and tuned.correction.kind == "finetune"
    ft = r.parameters["finetune"]
    # one frame in ten would be one validation frame (8 -> 1), and one frame is no validation: all train
    assert ft["n_train"] == 8 and ft["n_validation"] == 0
    assert len(ft["loss_curve"]) == 16 and ft["best_epoch"] == 15  # epoch 0: before training; last kept
    assert ft["stopping"].startswith("last epoch")
    assert ft["settings"]["lr"] == 0.05 and r.parameters["elements"] == ["Ge", "Si"]
    names = [s["name"] for s in r.checks["forgetting"]["structures"]]
    assert "Si ground state" in names and "Ge ground state" in names
    assert all(np.isfinite(s["energy_drift_meV_atom"]) for s in r.checks["forgetting"]["structures"])
    # the toy's tuned μ_Z shift every Si-containing structure: SiO2 drifts and is flagged, as a warning
    assert "SiO2-HP" in r.checks["forgetting"]["flagged"]
    codes = {x["code"]: x["blocking"] for x in r.reasons}
    assert codes.get("forgetting") is False and any("SiO2-HP (" in w for w in r.warnings)


def test_saved_weights_give_the_same_predictions(tuned: Calibration, tmp_path: Path) -> None:
    saved = tuned.save(tmp_path / "tuned.json")
    data = json.loads((tmp_path / "tuned.json").read_text())
    assert data["kind"] == "finetune" and data["weights"]["file"] == "tuned.weights.pt"
    assert data["model"]["name"] == "toy-morse" and saved.weights_file() == tmp_path / "tuned.weights.pt"
    frame = stiffer(1, seed=7).frames[0]
    in_memory = corrected_forces(SoftCorrectedCalc("toy-morse", correction=tuned.correction), frame)
    from_file = corrected_forces(SoftCorrectedCalc("toy-morse", correction=tmp_path / "tuned.json"), frame)
    bare = corrected_forces(SoftCorrectedCalc("toy-morse"), frame)
    np.testing.assert_array_equal(in_memory, from_file)
    assert np.abs(from_file - bare).max() > 1e-3
    # the file moves with its folder: the weights path is relative to the JSON
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("tuned.json", "tuned.weights.pt"):
        (tmp_path / name).rename(moved / name)
    again = corrected_forces(SoftCorrectedCalc("toy-morse", correction=moved / "tuned.json"), frame)
    np.testing.assert_array_equal(again, from_file)


def test_missing_altered_or_foreign_weights_are_refused(tuned: Calibration, tmp_path: Path) -> None:
    tuned.save(tmp_path / "t.json")
    weights = tmp_path / "t.weights.pt"
    blob = weights.read_bytes()
    weights.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CorrectionFileError, match="t.weights.pt"):
        SoftCorrectedCalc("toy-morse", correction=tmp_path / "t.json")
    weights.unlink()
    with pytest.raises(CorrectionFileError, match="t.weights.pt"):
        SoftCorrectedCalc("toy-morse", correction=tmp_path / "t.json")
    weights.write_bytes(blob)
    data = json.loads((tmp_path / "t.json").read_text())
    data["model"]["name"] = "chgnet-0.3.0"
    (tmp_path / "other.json").write_text(json.dumps(data))
    with pytest.raises(CorrectionMismatchError, match="different model"):
        SoftCorrectedCalc("toy-morse", correction=tmp_path / "other.json")
    data["weights"] = {"file": 3}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(CorrectionFileError, match="'weights'"):
        Correction.load(tmp_path / "bad.json")


def test_elements_outside_the_tuning_data_warn_once(tmp_path: Path) -> None:
    si_only = calibrate(
        "toy-morse",
        stiffer(6, swap=False),
        frames=4,
        method="finetune",
        n_bootstrap=20,
        finetune=FineTuneSettings(epochs=2, seed=0),
    )
    calc = SoftCorrectedCalc("toy-morse", correction=si_only.correction)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corrected_forces(calc, stiffer(1, swap=False, seed=3).frames[0])
    with pytest.warns(UserWarning, match="tuned on Si only; Ge were not in the tuning data"):
        corrected_forces(calc, stiffer(1, seed=3).frames[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corrected_forces(calc, stiffer(1, seed=4).frames[0])  # once per element


def test_auto_picks_the_method_that_validates_best() -> None:
    """A pure scale error: λ is exact, so auto must choose it and report every method."""
    r = calibrate(
        "toy-morse", stiffer(12), frames=10, method="auto", finetune=FineTuneSettings(epochs=3)
    ).report
    assert r.parameters["auto"]["chosen"] in ("scale", "per-species")
    assert set(r.checks["methods"]) == {"none", "scale", "per-species", "finetune"}
    assert r.checks["methods"]["scale"]["mae_after"] < 1e-6 < r.checks["methods"]["none"]["mae_after"]
    assert r.scale == pytest.approx(1.3, rel=1e-9)  # refitted on all calibration frames


def test_auto_keeps_the_bare_model_when_nothing_helps() -> None:
    r = calibrate(
        "toy-morse", stiffer(12, scale=1.0), frames=10, method="auto", finetune=FineTuneSettings(epochs=2)
    ).report
    assert r.parameters["auto"]["chosen"] == "none" and r.kind == "none"
    assert not r.recommended and r.reasons[0]["code"] == "bare-best"


def test_method_errors_are_clear() -> None:
    data = stiffer(4)
    with pytest.raises(SoftcalcError, match="method must be one of"):
        calibrate("toy-morse", data, method="magic")
    with pytest.raises(SoftcalcError, match="method .auto. fits on forces only"):
        calibrate("toy-morse", data, method="auto", target="energy")
    from ase.calculators.emt import EMT

    with pytest.raises(SoftcalcError, match="needs a softcalc torch model"):
        calibrate(EMT(), data, method="finetune")


def test_cli_finetune_writes_weights_and_loads_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_extxyz(tmp_path / "d.extxyz", stiffer(8), "AIMD")
    out = tmp_path / "c.json"
    args = ["calibrate", "--model", "toy-morse", "--data", str(tmp_path / "d.extxyz"), "--frames", "6"]
    tune = ["--method", "finetune", "--epochs", "3", "--lr", "0.01", "--freeze", "none", "--quiet"]
    assert main([*args, *tune, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fine-tuned" in text and "drift on Si ground state" in text
    assert (tmp_path / "c.weights.pt").is_file() and "with tuned weights" in text
    data = str(tmp_path / "d.extxyz")
    evaluate = ["evaluate", "--model", "toy-morse", "--correction", str(out), "--data", data, "--quiet"]
    assert main([*evaluate, "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())
    assert main([*args, "--method", "finetune", "--freeze", "most", "--out", str(out)]) == 2
    assert "freeze must be one of" in capsys.readouterr().err
    assert main([*args, "--method", "finetune", "--per-species", "--out", str(out)]) == 2
