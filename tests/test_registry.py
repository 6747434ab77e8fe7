"""Plugin discovery through entry points and model-name resolution."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import softcalc
from softcalc.errors import UnknownModelError, WeightsNotFoundError
from softcalc.registry import ENTRY_POINT_GROUP, plugins


def test_third_party_plugin_is_found_through_package_metadata() -> None:
    # the toy plugin is not part of softcalc: only its dist-info entry point announces it
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names["toy"] == "softcalc_toy:ToyPlugin"
    assert "toy" in plugins()
    assert "toy-morse" in softcalc.available_models()["toy"]


def test_load_by_name_prefix_and_path(tmp_path) -> None:
    assert softcalc.load_model("toy-morse").info.family == "toy"
    assert softcalc.load_model("TOY-MORSE").info.name == "toy-morse"
    weights = tmp_path / "my.toy"
    weights.write_text("")
    assert softcalc.load_model(weights).info.name == "toy-morse"
    assert softcalc.load_model(f"toy:{weights}").info.name == "toy-morse"


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(UnknownModelError, match="toy-morse"):
        softcalc.load_model("no-such-model")


def test_missing_weights_file_lists_paths_searched(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="Searched") as info:
        softcalc.load_model("mace/missing.model")
    assert str(tmp_path / "mace/missing.model") in str(info.value)


def test_path_relative_to_model_dir(tmp_path, monkeypatch) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x/w.toy").write_text("")
    monkeypatch.setenv("SOFTCALC_MODEL_DIR", str(tmp_path))
    assert softcalc.load_model("x/w.toy").info.name == "toy-morse"


def test_unclaimed_file_suggests_family_prefix(tmp_path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0")
    with pytest.raises(UnknownModelError, match="prefix the family"):
        softcalc.load_model(path)


def test_model_calculator_reports_info() -> None:
    calc = softcalc.load_model("toy-morse")
    info = calc.info
    assert info.receptive_field == info.cutoff * info.n_message_passing
    assert set(info.reference_energies) == set(info.elements)
    assert "energies" in calc.implemented_properties


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu0", "not a torch device"), ("mps", "'cpu' or 'cuda' only"), ("cuda:64", "CUDA")],
)
def test_bad_or_missing_device_is_named_before_the_model_loads(device: str, message: str) -> None:
    """cuda:64 fails with "no CUDA support", "no CUDA device is visible" or "only N CUDA device(s)"."""
    torch = pytest.importorskip("torch")
    from softcalc.errors import DeviceError

    if device.startswith("cuda") and torch.cuda.device_count() > 64:
        pytest.skip("a machine with more than 64 CUDA devices")
    with pytest.raises(DeviceError, match=message):
        softcalc.load_model("toy-morse", device=device)
