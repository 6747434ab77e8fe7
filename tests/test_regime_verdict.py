"""The verdict per regime: structure groups made worse beyond noise, fits with many parameters without
held-out frames, tuned ground states whose pressure moved. Known answers from constructed forces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.io import write
from emt_frames import C, ScaledEMT, cu_frames

from softcalc.calibration.forgetting import GROUND_STATE_PRESSURE, forgetting_reason, ground_state_reason
from softcalc.calibration.pipeline import calibrate
from softcalc.calibration.properties import property_changes, worse_properties
from softcalc.calibration.verdict import error_summary, group_changes, judge
from softcalc.data import ForceDataset, read_dataset
from softcalc.evaluation import ForceComparison


def comparison(
    errors: dict[str, float], n_frames: int = 4, n_atoms: int = 16, seed: int = 0
) -> ForceComparison:
    """Frames of each group whose model forces are DFT's plus Gaussian noise of the given size (eV/Å)."""
    rng = np.random.default_rng(seed)
    model, dft, groups = [], [], []
    for group, size in errors.items():
        for _ in range(n_frames):
            d = rng.normal(0, 1.0, (n_atoms, 3))
            dft.append(d)
            model.append(d + rng.normal(0, size, (n_atoms, 3)))
            groups.append(group)
    k = len(model)
    return ForceComparison(model, dft, [["Si"] * n_atoms] * k, groups, list(range(k)), "Si")


def test_a_group_made_worse_beyond_noise_blocks_tuned_weights_and_warns_for_a_global_scale() -> None:
    before = comparison({"AIMD": 0.30, "Elastic": 0.02})
    after = comparison({"AIMD": 0.10, "Elastic": 0.06}, seed=1)  # pooled better, Elastic 3x worse
    errors = error_summary(before, after)
    assert errors["mae_after"] < errors["mae_before"]
    assert errors["by_group"]["Elastic"]["change_ci95"][0] > 0 > errors["by_group"]["AIMD"]["change_ci95"][1]
    metrics = before.metrics()
    tuned = judge(errors, heldout=True, supported=True, fit_metrics=metrics, many_parameters=True)
    assert not tuned.recommended and [r.code for r in tuned.reasons] == ["group-worse"]
    assert "Elastic" in tuned.warnings[0] and "AIMD" not in tuned.warnings[0]
    scale = judge(errors, heldout=True, supported=True, fit_metrics=metrics)
    assert scale.recommended and [r.code for r in scale.reasons] == ["group-worse"]


def test_a_change_within_noise_is_no_finding() -> None:
    before = comparison({"AIMD": 0.30, "Elastic": 0.05}, n_frames=2, n_atoms=4)
    after = comparison({"AIMD": 0.10, "Elastic": 0.05}, n_frames=2, n_atoms=4, seed=7)  # same error size
    changes = group_changes(before, after, 500, np.random.default_rng(0))
    low, high = changes["Elastic"]
    assert low < 0 < high
    errors = error_summary(before, after)
    verdict = judge(errors, heldout=True, supported=True, fit_metrics=before.metrics(), many_parameters=True)
    assert verdict.recommended and verdict.reasons == ()


def test_many_parameters_without_heldout_frames_are_never_recommended() -> None:
    before = comparison({"AIMD": 0.30})
    after = comparison({"AIMD": 0.05}, seed=1)
    errors = error_summary(before, after)
    tuned = judge(errors, heldout=False, supported=True, fit_metrics=before.metrics(), many_parameters=True)
    assert not tuned.recommended and tuned.reasons[0].code == "no-heldout"
    assert "--test" in tuned.text or "--test" in tuned.warnings[0]
    scale = judge(errors, heldout=False, supported=True, fit_metrics=before.metrics())
    assert scale.recommended


def test_a_moved_ground_state_warns_and_quiet_drifts_do_not() -> None:
    def check(pressure: float) -> dict:
        row = {"name": "Ge ground state", "kind": "ground state", "energy_drift_meV_atom": 1.0,
               "force_drift": 0.01, "pressure_drift_GPa": pressure}
        return {"structures": [row], "flagged": [], "skipped": []}

    reason = ground_state_reason(check(3.9))
    assert reason is not None and not reason.blocking and "Ge ground state (+3.90 GPa)" in reason.message
    assert ground_state_reason(check(-0.5 * GROUND_STATE_PRESSURE)) is None
    assert forgetting_reason(check(3.9)) is None  # no other chemistry flagged


def cu_dataset(folder: Path) -> ForceDataset:
    """EMT "DFT" frames of Cu with strain modes, a ground state and two slabs, read back as data are."""
    write(folder / "Cu.xyz", cu_frames(EMT()), format="extxyz")
    return read_dataset(folder / "Cu.xyz")


def test_property_ratios_are_the_energy_scales_and_a_move_away_from_dft_is_found(tmp_path: Path) -> None:
    data = cu_dataset(tmp_path)
    dft = np.array([f.energy for f in data.frames])
    changes = property_changes([data], dft, 0.8 * dft, 1.5 * dft)  # every curvature and γ scales alike
    assert set(changes["Cu"]) == {"curvature_normal", "curvature_shear", "surface_slope"}
    for before, after in changes["Cu"].values():
        assert (before, after) == pytest.approx((0.8, 1.5), rel=1e-9)
    assert len(worse_properties(changes)) == 3
    assert worse_properties(property_changes([data], dft, 0.8 * dft, 1.1 * dft)) == []  # closer to 1
    assert property_changes([data], dft, dft, dft)["Cu"]["surface_slope"] == pytest.approx([1.0, 1.0])


def test_a_property_pushed_from_dft_blocks_tuned_weights_and_warns_for_a_global_scale(tmp_path: Path) -> None:
    data = cu_dataset(tmp_path)
    dft = np.array([f.energy for f in data.frames])
    changes = property_changes([data], dft, 1.02 * dft, 1.3 * dft)
    before = comparison({"AIMD": 0.30})
    errors = error_summary(before, comparison({"AIMD": 0.10}, seed=1))
    metrics = before.metrics()
    tuned = judge(
        errors, heldout=True, supported=True, fit_metrics=metrics, many_parameters=True, properties=changes
    )
    assert not tuned.recommended and [r.code for r in tuned.reasons] == ["property-worse"]
    assert "Cu surface slope 1.02 -> 1.30" in tuned.warnings[0]
    scale = judge(errors, heldout=True, supported=True, fit_metrics=metrics, properties=changes)
    assert scale.recommended and [r.code for r in scale.reasons] == ["property-worse"]


def test_calibrate_reports_the_properties_of_its_frames(tmp_path: Path) -> None:
    """λ fitted on energies of EMT scaled by 0.8 restores DFT: properties move from 0.8 to 1."""
    data = cu_dataset(tmp_path)
    r = calibrate(ScaledEMT(C), data, frames=12, target="energy", n_bootstrap=50).report
    for before, after in r.properties["Cu"].values():
        assert before == pytest.approx(C, rel=1e-6) and after == pytest.approx(1.0, rel=1e-6)
    assert "property-worse" not in [x["code"] for x in r.reasons]
    assert r.to_dict()["properties"] == r.properties


def test_a_group_worse_on_every_frame_but_the_unchanged_ones_is_worse() -> None:
    """Frames with zero forces before and after (symmetric strained cells) put 0 at the interval's lower end;
    the group is still worse: every other frame got worse."""
    before = comparison({"AIMD": 0.30, "Elastic": 0.01}, n_frames=6)
    after = comparison({"AIMD": 0.10, "Elastic": 0.05}, n_frames=6, seed=1)
    for k in range(6, 9):  # three Elastic frames that neither model gets wrong
        for c in (before, after):
            c.model[k] = c.dft[k].copy()
    errors = error_summary(before, after)
    low, high = errors["by_group"]["Elastic"]["change_ci95"]
    assert low == 0.0 < high
    verdict = judge(errors, heldout=True, supported=True, fit_metrics=before.metrics(), many_parameters=True)
    assert [r.code for r in verdict.reasons] == ["group-worse"]


def test_frames_beyond_k_still_give_the_properties_when_test_data_are_separate(tmp_path: Path) -> None:
    """With --test, the calibration data beyond the K fitted frames are neither fitted nor held out; the
    strain series and slabs among them still give the property check."""
    data = cu_dataset(tmp_path)
    hot = data.select(lambda f: f.group == "AIMD-NVT")
    r = calibrate(ScaledEMT(C), data, frames=2, test=hot, n_bootstrap=50).report
    assert set(r.properties["Cu"]) == {"curvature_normal", "curvature_shear", "surface_slope"}
    for before, after in r.properties["Cu"].values():
        assert before == pytest.approx(C, rel=1e-6) and after == pytest.approx(C * r.scale, rel=1e-6)
