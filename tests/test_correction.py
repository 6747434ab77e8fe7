"""Correction files: round trip, schema validation, clear errors for corrupt files."""

from __future__ import annotations

import json

import pytest

from softcalc import Correction
from softcalc.errors import CorrectionFileError


def test_round_trip(tmp_path) -> None:
    corr = Correction(
        scale=1.07,
        species_scales={"Li": 1.1, "F": 0.95},
        model={"family": "toy", "name": "toy-morse", "weights_sha256": None},
        regime="transfer",
        statistics={"scale_std": 0.01},
        provenance={"data": [{"source": "x.json", "sha256": "00"}]},
    )
    corr.save(tmp_path / "c.json")
    back = Correction.load(tmp_path / "c.json")
    assert back == corr
    assert back.kind == "per-species"
    assert json.loads((tmp_path / "c.json").read_text())["schema"] == "softcalc.correction/1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "corrupt"),
        ('{"schema": "other/1", "scale": 1.0}', "schema"),
        ('{"schema": "softcalc.correction/1"}', "'scale' is missing"),
        ('{"schema": "softcalc.correction/1", "scale": -1}', "positive"),
        ('{"schema": "softcalc.correction/1", "scale": "big"}', "number"),
        ('{"schema": "softcalc.correction/1", "scale": 1.0, "species_scales": {"Si": NaN}}', "finite"),
        ('{"schema": "softcalc.correction/1", "scale": 1.0, "colour": 1}', "unknown field"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_corrupt_files_are_rejected_clearly(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(CorrectionFileError, match=message) as info:
        Correction.load(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CorrectionFileError, match="does not exist"):
        Correction.load(tmp_path / "nope.json")


def test_interrupted_save_leaves_previous_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.json"
    Correction(scale=1.1).save(path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("softcalc.fileio.json.dumps", boom)
    with pytest.raises(KeyboardInterrupt):
        Correction(scale=1.5).save(path)
    assert Correction.load(path).scale == 1.1
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


def test_saved_files_follow_the_umask(tmp_path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        Correction(scale=1.1).save(tmp_path / "c.json")
    finally:
        os.umask(mask)
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o644
