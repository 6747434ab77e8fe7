"""Calibration on synthetic labels made from the toy model, where the right answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

import softcalc
from softcalc import Correction, SoftCorrectedCalc
from softcalc.calibration.pipeline import calibrate
from softcalc.cli import main
from softcalc.data import ForceDataset, ForceFrame
from softcalc.errors import DataError
from softcalc.evaluation import compare_forces
from softcalc.metrics import cmae, mae, optimal_scale, softening_scale


def synthetic(n: int, correction: Correction, noise: float = 0.02, seed: int = 0) -> ForceDataset:
    """'DFT' forces = forces of the corrected toy model + Gaussian noise (eV/Å)."""
    calc = SoftCorrectedCalc("toy-morse", correction=correction)
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        atoms.symbols[[0, 5]] = "Ge"
        atoms.rattle(0.12, seed=seed * 100 + k)
        atoms.calc = calc
        forces = atoms.get_forces() + rng.normal(0, noise, (len(atoms), 3))
        atoms.calc = None
        frames.append(ForceFrame(atoms, forces, group="AIMD" if k % 2 else "Vacancy", label=f"f{k}"))
    return ForceDataset(frames, source="synthetic", material="SiGe")


def test_metric_definitions() -> None:
    rng = np.random.default_rng(1)
    dft = rng.normal(size=300)
    model = 0.8 * dft + rng.normal(0, 0.1, 300)
    assert softening_scale(model, dft) == pytest.approx(np.sum(model * dft) / np.sum(dft**2))
    assert optimal_scale(model, dft) == pytest.approx(np.sum(model * dft) / np.sum(model**2))
    assert mae(model, dft) == pytest.approx(np.mean(np.abs(model - dft)))
    assert cmae(model, dft) == pytest.approx(np.mean(np.abs(model / softening_scale(model, dft) - dft)))
    with pytest.raises(DataError):
        softening_scale([], [])


def test_global_scale_recovered_and_checked_on_held_out_frames() -> None:
    data = synthetic(6, Correction(scale=1.2))
    result = calibrate("toy-morse", data, frames=1, n_bootstrap=300)
    r = result.report
    assert r.scale == pytest.approx(1.2, abs=0.01)
    assert r.scale_ci95[0] < r.scale < r.scale_ci95[1]
    assert r.n_frames == 1 and r.n_heldout == 5 and r.errors_on == "held-out"
    assert r.mae_after < 0.3 * r.mae_before
    assert r.recommended and result.correction.recommended
    assert result.correction.model["name"] == "toy-morse"
    assert result.correction.provenance["frames"] == 1


def test_correction_that_hurts_held_out_frames_is_rejected() -> None:
    """Fit on data that is 30 % stiffer, test on data the bare model reproduces: must warn."""
    fit = synthetic(2, Correction(scale=1.3), seed=1)
    test = synthetic(3, Correction(scale=1.0), seed=2)
    result = calibrate("toy-morse", fit, test=test, n_bootstrap=200)
    assert not result.report.recommended
    assert not result.correction.recommended
    assert any("WORSE" in w for w in result.report.warnings)
    with pytest.warns(UserWarning, match="not recommended"):
        SoftCorrectedCalc("toy-morse", correction=result.correction)


def test_unsupported_correction_when_lambda_is_one_within_noise() -> None:
    data = synthetic(2, Correction(scale=1.0), noise=0.3, seed=4)
    r = calibrate("toy-morse", data, frames=1, n_bootstrap=400).report
    assert r.scale_ci95[0] <= 1.0 <= r.scale_ci95[1]
    assert not r.recommended
    assert any("do not support" in w for w in r.warnings)


def test_single_frame_without_held_out_data_warns() -> None:
    r = calibrate("toy-morse", synthetic(1, Correction(scale=1.2)), n_bootstrap=100).report
    assert r.errors_on == "calibration"
    assert any("no held-out frames" in w for w in r.warnings)


def test_per_species_scales_recovered() -> None:
    data = synthetic(4, Correction(species_scales={"Si": 1.25, "Ge": 0.85}), noise=0.005)
    result = calibrate("toy-morse", data, frames=2, per_species=True, n_bootstrap=100)
    scales = result.report.species_scales
    assert scales["Si"] == pytest.approx(1.25, abs=0.01)
    assert scales["Ge"] == pytest.approx(0.85, abs=0.03)
    assert result.correction.kind == "per-species"
    assert result.report.mae_after < 0.2 * result.report.mae_before


def test_group_selection_and_order() -> None:
    data = synthetic(4, Correction(scale=1.1))
    r = calibrate("toy-morse", data, frames=1, groups=["aimd"], order="largest-force", n_bootstrap=50).report
    assert r.n_frames == 1 and r.n_heldout == 1
    assert set(r.errors["by_group"]) == {"AIMD"}
    with pytest.raises(DataError, match="group"):
        calibrate("toy-morse", data, groups=["Surface"])


def test_displacement_sets_use_reference_and_pairs() -> None:
    """For ± displacement pairs, residual forces of the reference cancel exactly."""
    ref = bulk("Si", "diamond", 5.43, cubic=True)
    ref.rattle(0.03, seed=9)  # not a minimum of the model: residual forces
    calc = softcalc.load_model("toy-morse")
    frames = []
    for sign in (1, -1):
        atoms = ref.copy()
        atoms.positions[0, 0] += sign * 0.01
        atoms.calc = calc
        frames.append(ForceFrame(atoms.copy(), atoms.get_forces()))
    data = ForceDataset(frames, reference=ref, pairs=[(0, 1)], material="Si")
    comp = compare_forces(calc, data)
    assert len(comp.model) == 1
    np.testing.assert_allclose(comp.model[0], comp.dft[0], atol=1e-12)
    unpaired = ForceDataset(frames[:1], reference=ref, material="Si")
    ref.calc = calc
    comp1 = compare_forces(calc, unpaired)
    np.testing.assert_allclose(comp1.model[0], frames[0].forces - ref.get_forces(), atol=1e-12)


def test_cli_calibrate_then_evaluate(tmp_path, capsys) -> None:
    data = synthetic(4, Correction(scale=1.15))
    images = []
    for f in data.frames:
        atoms = f.atoms.copy()
        atoms.arrays["forces"] = f.forces
        atoms.info["group"] = f.group
        images.append(atoms)
    write(tmp_path / "dft.extxyz", images)
    code = main(
        [
            "calibrate",
            "--model",
            "toy-morse",
            "--data",
            str(tmp_path / "dft.extxyz"),
            "--frames",
            "1",
            "--out",
            str(tmp_path / "c.json"),
            "--json",
            str(tmp_path / "r.json"),
            "--bootstrap",
            "100",
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) >= {"scale", "softening_scale", "mae_before", "mae_after", "n_frames"}
    assert report["scale"] == pytest.approx(1.15, abs=0.01)
    assert "λ =" in capsys.readouterr().out
    for extra in ([], ["--correction", str(tmp_path / "c.json")]):
        out = tmp_path / f"e{len(extra)}.json"
        assert (
            main(
                [
                    "evaluate",
                    "--model",
                    "toy-morse",
                    *extra,
                    "--data",
                    str(tmp_path / "dft.extxyz"),
                    "--json",
                    str(out),
                    "--plot",
                    str(tmp_path / "p.png"),
                    "--quiet",
                ]
            )
            == 0
        )
        ev = json.loads(out.read_text())
        assert set(ev) >= {"model", "n_frames", "n_components", "softening_scale", "scale_opt", "mae", "cmae"}
        assert ev["n_frames"] == 4 and ev["n_components"] == 4 * 8 * 3
    bare, corr = (json.loads((tmp_path / f"e{n}.json").read_text()) for n in (0, 2))
    assert bare["softening_scale"] == pytest.approx(1 / 1.15, abs=0.01)
    assert corr["softening_scale"] == pytest.approx(1.0, abs=0.01)
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys) -> None:
    (tmp_path / "empty.json").write_text("[]")
    code = main(
        [
            "evaluate",
            "--model",
            "toy-morse",
            "--data",
            str(tmp_path / "empty.json"),
            "--json",
            str(tmp_path / "o.json"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no frames" in err and "Traceback" not in err


def test_frames_without_dft_forces_cannot_calibrate() -> None:
    data = synthetic(2, Correction(scale=1.0))
    for frame in data.frames:
        frame.forces[:] = 0.0
    with pytest.raises(DataError, match="non-zero forces"):
        calibrate("toy-morse", data, n_bootstrap=10)


def test_temperature_and_strain_selection(tmp_path, capsys) -> None:
    data = synthetic(6, Correction(scale=1.1))
    for k, frame in enumerate(data.frames):
        frame.temperature = [300.0, 900.0, None][k % 3]
        frame.strain = [None, None, 0.01 * k][k % 3]
    r = calibrate("toy-morse", data, temperature=(200, 400), n_bootstrap=20).report
    assert r.n_frames == 2  # frames 0 and 3
    r = calibrate("toy-morse", data, strain=(0.0, 0.03), n_bootstrap=20).report
    assert r.n_frames == 1  # frame 2 (strain 0.02); frame 5 has 0.05
    stated = r"\(4 frame\(s\) state a temperature: from 300 to 900 K\)"
    with pytest.raises(DataError, match=r"temperature in \[1000, 2000\] K " + stated):
        calibrate("toy-morse", data, temperature=(1000, 2000))
    # the CLI reads the range; a reversed range is refused by argparse with the reason
    write(tmp_path / "d.extxyz", [_with_info(f, temperature=f.temperature) for f in data.frames])
    out = tmp_path / "c.json"
    assert main(["calibrate", "--model", "toy-morse", "--data", str(tmp_path / "d.extxyz"), "--temperature",
                 "850:950", "--bootstrap", "20", "--out", str(out), "--json", str(tmp_path / "r.json"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_frames"] == 2
    assert json.loads(out.read_text())["provenance"]["temperature_K"] == [850.0, 950.0]
    with pytest.raises(SystemExit):
        main(["calibrate", "--model", "toy-morse", "--data", "x", "--temperature", "900:300", "--out", "y"])
    assert "LOW is larger than HIGH" in capsys.readouterr().err


def _with_info(frame: ForceFrame, **info: float | None):
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = frame.atoms.copy()
    atoms.info.update({k: v for k, v in info.items() if v is not None})
    atoms.calc = SinglePointCalculator(atoms, forces=frame.forces)
    return atoms
