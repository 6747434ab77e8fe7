"""Shared fixtures. The toy plugin under plugin_fixture/ is registered through package metadata."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

FIXTURE_DIR = Path(__file__).parent / "plugin_fixture"
sys.path.insert(0, str(FIXTURE_DIR))  # makes softcalc_toy and its dist-info (entry point) importable
sys.path.insert(0, str(Path(__file__).parent))  # shared helpers: finite_differences, mace_models

SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("SOFTCALC_MODEL_DIR", str(SHARED / "models"))
os.environ.setdefault("SOFTCALC_DATA_DIR", str(SHARED / "data"))
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

MODEL_DIR = Path(os.environ["SOFTCALC_MODEL_DIR"])
DATA_DIR = Path(os.environ["SOFTCALC_DATA_DIR"])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --runslow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared DFT data folder; tests needing it skip with a reason when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR} (set SOFTCALC_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The shared model folder."""
    if not MODEL_DIR.is_dir():
        pytest.skip(f"shared models not found at {MODEL_DIR} (set SOFTCALC_MODEL_DIR)")
    return MODEL_DIR


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(autouse=True)
def _restore_torch_default_dtype():
    """Some libraries (mace's MACECalculator) change torch's global default dtype; undo it per test."""
    torch = sys.modules.get("torch")
    before = torch.get_default_dtype() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None:
        torch.set_default_dtype(before)
