"""Guards of the calibration verdict: λ the data do not determine, λ outside the physical range, and
held-out frames that are calibration frames (synthetic 'DFT' labels from the toy model)."""

from __future__ import annotations

import json

import pytest
from ase.io import write
from test_calibrate import synthetic

from softcalc import Correction
from softcalc.calibration.frames import split_frames
from softcalc.calibration.methods import Estimate
from softcalc.calibration.pipeline import calibrate
from softcalc.calibration.verdict import PHYSICAL_SCALE_RANGE, judge
from softcalc.cli import main
from softcalc.data import ForceDataset
from softcalc.metrics import force_metrics


def _codes(report: dict) -> list[str]:
    return [r["code"] for r in report.reasons]


def _blocking(report: dict, code: str) -> dict:
    (reason,) = [r for r in report.reasons if r["code"] == code]
    return reason


def test_lambda_whose_interval_reaches_zero_is_not_recommended() -> None:
    """Near-zero DFT forces (all but one atom exactly 0): λ > 0, but a third of the replicas give 0."""
    data = synthetic(2, Correction(scale=1.0), noise=0.0, seed=5)
    for frame in data.frames:
        frame.forces[1:] = 0.0
    r = calibrate("toy-morse", data, frames=1, n_bootstrap=300).report
    assert r.scale > 0 and r.scale_ci95[0] <= 0
    assert not r.recommended
    assert _blocking(r, "undetermined")["blocking"]
    assert r.verdict == "not recommended: the data do not determine λ"
    assert "95% interval" in _blocking(r, "undetermined")["message"]


@pytest.mark.parametrize("per_species", [False, True])
def test_lambda_outside_the_physical_range_is_not_recommended(per_species: bool) -> None:
    scales = {"species_scales": {"Si": 1.2, "Ge": 3.5}} if per_species else {"scale": 3.5}
    data = synthetic(3, Correction(**scales), noise=0.005)
    r = calibrate("toy-morse", data, frames=2, per_species=per_species, n_bootstrap=100).report
    assert r.mae_after < r.mae_before  # the fit itself is fine: only the range rejects it
    assert not r.recommended
    assert _codes(r)[0] == "unphysical" and _blocking(r, "unphysical")["blocking"]
    low, high = PHYSICAL_SCALE_RANGE
    name = "λ_Ge" if per_species else "λ"
    assert r.verdict.startswith(f"not recommended: {name} = 3.50")
    assert f"outside [{low:g}, {high:g}]" in r.verdict
    assert "λ_Si" not in r.verdict


def test_lambda_inside_the_range_with_a_positive_interval_stays_recommended() -> None:
    r = calibrate("toy-morse", synthetic(3, Correction(scale=2.2)), frames=1, n_bootstrap=100).report
    assert r.recommended and not {"undetermined", "unphysical"} & set(_codes(r))


def test_per_species_interval_skips_replicas_that_drew_no_atom_of_an_element() -> None:
    """With 2 frames, e^-2 of the replicas weight both frames 0: they define no λ_Z, which is not 0."""
    data = synthetic(3, Correction(species_scales={"Si": 1.25, "Ge": 0.85}), noise=0.005)
    r = calibrate("toy-morse", data, frames=2, per_species=True, n_bootstrap=100).report
    for z, lam in {"Si": 1.25, "Ge": 0.85}.items():
        low, high = r.parameters["species_uncertainty"][z]["ci95"]
        assert lam - 0.02 < low < high < lam + 0.02
    assert r.recommended and "undetermined" not in _codes(r)


def test_judge_checks_every_species_scale() -> None:
    metrics = force_metrics([1.0, 2.0, 3.0], [1.1, 2.1, 3.3], n_frames=1)
    errors = {"mae_before": 0.10, "mae_after": 0.05}
    estimates = (Estimate("λ_Si", 1.2, (1.1, 1.3)), Estimate("λ_Ge", 0.3, (-0.1, 0.6)))
    verdict = judge(errors, heldout=True, supported=True, fit_metrics=metrics, estimates=estimates)
    assert [r.code for r in verdict.reasons] == ["undetermined", "unphysical"]
    assert verdict.text == "not recommended: the data do not determine λ_Ge"
    unphysical = verdict.reasons[1].message
    assert "λ_Si" not in unphysical and "λ_Ge = 0.300 lies outside [0.5, 2.5]" in unphysical


def test_test_data_equal_to_the_calibration_data_are_not_held_out(tmp_path) -> None:
    data = synthetic(3, Correction(scale=1.2))
    write(tmp_path / "copy.extxyz", [_labelled(f) for f in data.frames])  # the same frames, another file
    for test in (data, tmp_path / "copy.extxyz"):
        r = calibrate("toy-morse", data, test=test, n_bootstrap=100).report
        assert r.errors_on == "calibration" and r.n_heldout == 0 and r.n_heldout_overlap == 3
        assert not r.recommended
        assert "no-heldout" not in _codes(r) and _blocking(r, "heldout-overlap")["blocking"]
        assert r.verdict == "not recommended: the held-out frames are the calibration frames"


def test_partly_overlapping_test_frames_are_dropped_from_the_held_out_check() -> None:
    """Fit on the first 2 of 5 frames, test on all 5: the 2 fitted ones are dropped, 3 stay held out."""
    data = synthetic(5, Correction(scale=1.2))
    split = split_frames(data, frames=2, test=data)
    assert split.overlap == 2
    assert [f.label for d in split.heldout for f in d.frames] == ["f2", "f3", "f4"]
    r = calibrate("toy-morse", data, frames=2, test=data, n_bootstrap=100).report
    assert r.errors_on == "held-out" and r.n_heldout == 3 and r.n_heldout_overlap == 2
    reason = _blocking(r, "heldout-overlap")
    assert not reason["blocking"] and reason["message"].startswith("2 held-out frame(s) are identical")
    assert r.recommended


def test_duplicate_frames_within_one_data_set_are_not_held_out() -> None:
    data = synthetic(3, Correction(scale=1.2))
    dup = ForceDataset([*data.frames, data.frames[0]], source="dup", material="SiGe")
    split = split_frames(dup, frames=1)
    assert split.overlap == 1 and [f.label for d in split.heldout for f in d.frames] == ["f1", "f2"]
    assert split_frames(data, frames=1).overlap == 0


def test_cli_flags_test_data_equal_to_the_calibration_data(tmp_path, capsys) -> None:
    path = tmp_path / "dft.extxyz"
    write(path, [_labelled(f) for f in synthetic(3, Correction(scale=1.15)).frames])
    code = main(
        [
            "calibrate",
            "--model",
            "toy-morse",
            "--data",
            str(path),
            "--test",
            str(path),
            "--out",
            str(tmp_path / "c.json"),
            "--bootstrap",
            "50",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "WARNING: the held-out frames are the calibration frames: all 3 held-out frame(s)" in out
    assert "not recommended: the held-out frames are the calibration frames" in out
    assert "(marked NOT recommended)" in out
    assert json.loads((tmp_path / "c.json").read_text())["recommended"] is False


def _labelled(frame):
    atoms = frame.atoms.copy()
    atoms.arrays["forces"] = frame.forces
    atoms.info["group"] = frame.group
    return atoms
