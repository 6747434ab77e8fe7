"""The calibration method registry: a method from outside softcalc reaches the pipeline, the CLI, auto and
the printed report through one registration line; the built-in specs agree with what they fit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from labelled_frames import toy_labelled, write_extxyz
from median_ratio_method import MEDIAN_RATIO

from softcalc.calibration.pipeline import calibrate
from softcalc.calibration.registry import method_names, method_spec, register_method, unregister_method
from softcalc.cli import main
from softcalc.data import ForceDataset
from softcalc.errors import SettingsError
from softcalc.finetune.settings import FineTuneSettings


def stiffer(n: int) -> ForceDataset:
    """Rattled Si cells labelled by the toy model scaled by 1.25: the right λ is 1.25."""
    return toy_labelled(n, 1.25, rattle=0.08)


@pytest.fixture
def median_ratio() -> Iterator[None]:
    register_method(MEDIAN_RATIO)  # the one registration line
    yield
    unregister_method(MEDIAN_RATIO.name)


def test_registered_method_runs_through_the_pipeline(median_ratio: None) -> None:
    r = calibrate("toy-morse", stiffer(4), frames=2, method="median-ratio", n_bootstrap=100).report
    assert r.method == "median-ratio" and r.kind == "global"
    assert r.scale == pytest.approx(1.25, rel=1e-6)  # every force ratio is exactly 1.25
    assert r.recommended and r.mae_after < 1e-6 < r.mae_before


def test_auto_tries_a_registered_method(median_ratio: None) -> None:
    tune = FineTuneSettings(epochs=1)
    r = calibrate("toy-morse", stiffer(11), frames=10, method="auto", finetune=tune, n_bootstrap=50).report
    assert set(r.checks["methods"]) == {"none", "scale", "per-species", "finetune", "median-ratio"}
    assert r.checks["methods"]["median-ratio"]["mae_after"] < 1e-6


def test_cli_offers_and_prints_a_registered_method(
    median_ratio: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_extxyz(tmp_path / "d.extxyz", stiffer(4), "AIMD")
    args = ["calibrate", "--model", "toy-morse", "--data", str(tmp_path / "d.extxyz"), "--frames", "2"]
    assert main([*args, "--method", "median-ratio", "--quiet", "--out", str(tmp_path / "c.json")]) == 0
    assert "median ratio: λ = 1.2500" in capsys.readouterr().out


def test_unregistered_method_is_gone_and_names_the_registered_ones(capsys: pytest.CaptureFixture) -> None:
    assert "median-ratio" not in method_names()
    with pytest.raises(SettingsError, match="method must be one of scale, per-species, finetune, auto"):
        method_spec("median-ratio")
    with pytest.raises(SystemExit):
        main(["calibrate", "--method", "median-ratio", "--model", "toy-morse", "--data", "x", "--out", "y"])
    assert "invalid choice: 'median-ratio'" in capsys.readouterr().err


def test_a_name_registers_once(median_ratio: None) -> None:
    with pytest.raises(SettingsError, match="registered twice"):
        register_method(MEDIAN_RATIO)


def test_a_method_refuses_targets_it_does_not_fit() -> None:
    with pytest.raises(SettingsError, match="'per-species' fits on forces only, not on target 'energy'"):
        calibrate("toy-morse", stiffer(3), frames=2, method="per-species", target="energy")


def test_built_in_kinds_are_the_kinds_their_fits_report() -> None:
    data = stiffer(4)
    for name in ("scale", "per-species"):
        r = calibrate("toy-morse", data, frames=2, method=name, n_bootstrap=20).report
        assert r.kind == method_spec(name).kind
