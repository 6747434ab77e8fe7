"""The calibration steps on their own: verdict reasons as data, input checks, stored-force contract."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from labelled_frames import toy_labelled

from softcalc import Correction, ModelCalculator, SoftCorrectedCalc
from softcalc.bench.stored import StoredForces
from softcalc.calibration.pipeline import calibrate
from softcalc.calibration.verdict import judge
from softcalc.data import ForceDataset
from softcalc.errors import SettingsError
from softcalc.metrics import force_metrics


def weakly_correlated_metrics():
    rng = np.random.default_rng(0)
    dft = rng.normal(size=600)
    model = 0.5 * dft + rng.normal(0, 0.6, 600)
    return force_metrics(model, dft, n_frames=2)


def test_verdict_names_the_blocking_reason_not_the_last_warning() -> None:
    fit_metrics = weakly_correlated_metrics()
    errors = {"mae_before": 0.10, "mae_after": 0.12}
    verdict = judge(errors, heldout=True, supported=False, fit_metrics=fit_metrics)
    assert [r.code for r in verdict.reasons] == ["not-supported", "worse", "weak-correlation"]
    assert [r.blocking for r in verdict.reasons] == [True, True, False]
    assert not verdict.recommended
    # the weak-correlation warning comes last, but the verdict cites why it is not recommended
    assert verdict.text == "not recommended: the data do not support a correction"
    assert len(verdict.warnings) == 3 and "correlate weakly" in verdict.warnings[-1]
    only_worse = judge(errors, heldout=True, supported=True, fit_metrics=fit_metrics)
    assert only_worse.text == "not recommended: the correction makes held-out forces WORSE"
    better = {"mae_before": 0.10, "mae_after": 0.08}
    fine = judge(better, heldout=False, supported=True, fit_metrics=fit_metrics)
    assert fine.recommended and [r.code for r in fine.reasons] == ["no-heldout", "weak-correlation"]
    assert fine.text == "recommended: calibration MAE 0.1000 -> 0.0800 eV/Å"


def _frames(n: int) -> ForceDataset:
    return toy_labelled(n, 1.2)


@pytest.mark.parametrize("n_bootstrap", [0, -5])
def test_calibrate_rejects_bootstrap_below_one(n_bootstrap: int) -> None:
    with pytest.raises(SettingsError, match=rf"n_bootstrap = {n_bootstrap}: .*Fix"):
        calibrate("toy-morse", _frames(2), frames=1, n_bootstrap=n_bootstrap)


def test_report_carries_reasons_as_data() -> None:
    report = calibrate("toy-morse", _frames(3), frames=1, n_bootstrap=100).report
    assert report.recommended
    assert all(set(r) == {"code", "blocking", "message"} for r in report.reasons)
    assert [r["message"] for r in report.reasons] == report.warnings == report.to_dict()["warnings"]


def test_stored_forces_keep_the_adapter_contract() -> None:
    """A per-species correction's local energy works on stored forces as on the model itself."""
    from softcalc_toy import ToyMorse

    toy = ToyMorse()
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.symbols[[0, 3]] = "Ge"
    atoms.rattle(0.05, seed=3)
    correction = Correction(species_scales={"Si": 1.1, "Ge": 0.9})
    direct = SoftCorrectedCalc(ModelCalculator(toy), correction, check_model=False)
    store = ModelCalculator(StoredForces(toy.info, base=toy))
    stored = SoftCorrectedCalc(store, correction, check_model=False)
    expected = direct.local_energy(atoms)
    for _ in range(2):  # computed, then served from the store
        got = stored.local_energy(atoms)
        assert got["energy"] == pytest.approx(expected["energy"], abs=1e-12)
        np.testing.assert_allclose(got["forces"], expected["forces"], atol=1e-12)
        np.testing.assert_allclose(got["energies"], expected["energies"], atol=1e-12)
