"""`softcalc bench softening`: end to end, determinism, data-location independence, recompute from HDF5.

Most tests use the toy Morse model on small synthetic Si/Ge cells whose "DFT" forces are built from the
model's own per-species force components with known factors, so the benchmark must recover exactly
those factors (s, λ*, per-species λ_Z). One test runs the quick mode on the real mlearn Si data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from softcalc.bench import recompute, run_softening
from softcalc.cli import main
from softcalc.registry import load_adapter

#: synthetic softening: pure-Si "DFT" forces are the model's divided by S_PURE, so s = S_PURE exactly
S_PURE = 0.85
#: extxyz stores forces with 8 decimals: recovered factors (relative) and corrected MAEs (eV/Å) match to this
TOL = 1e-6
#: synthetic per-species stiffening of the mixed cells: F_dft = Σ_Z LAMBDA_Z F^Z
LAMBDA = {"Si": 1.25, "Ge": 0.8}
N_FRAMES = 4


def _frames(symbols: list[str], seed: int) -> list:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(N_FRAMES):
        atoms = bulk("Si", "diamond", a=5.5, cubic=True)
        atoms.set_chemical_symbols(symbols)
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def _write_synthetic(folder: Path) -> None:
    toy = load_adapter("toy-morse")
    pure = _frames(["Si"] * 8, seed=1)
    for atoms in pure:
        atoms.arrays["forces"] = toy.compute(atoms, ["forces"])["forces"] / S_PURE
        atoms.info["config_type"] = "AIMD-NVT"
    mixed = _frames(["Si", "Ge"] * 4, seed=2)
    for atoms in mixed:
        symbols = np.array(atoms.get_chemical_symbols())
        atoms.arrays["forces"] = sum(
            lam * toy.weighted_energy(atoms, (symbols == z).astype(float), compute_stress=False)["forces"]
            for z, lam in LAMBDA.items()
        )
        atoms.info["config_type"] = "AIMD-NVT"
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "pure.xyz", pure, format="extxyz")
    write(folder / "mixed.xyz", mixed, format="extxyz")


def _run(data: Path, out: Path) -> dict:
    return run_softening(
        ["toy-morse"], [data], out, frames=[1, 2], draws=2, n_bootstrap=100, progress=False, plots=False
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic") / "data"
    _write_synthetic(folder)
    return folder


@pytest.fixture(scope="module")
def first_run(synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench1")
    return out, _run(synthetic, out)


def test_recovers_known_scales(first_run: tuple[Path, dict]) -> None:
    _, summary = first_run
    pure = summary["results"]["toy-morse"]["pure"]
    assert pure["data"]["train"]["n_frames"] == 2 and pure["data"]["test"]["n_frames"] == 2
    assert pure["test"]["softening_scale"] == pytest.approx(S_PURE, rel=TOL)
    assert pure["test"]["scale_opt"] == pytest.approx(1 / S_PURE, rel=TOL)
    for result in (pure["calibration"], *pure["one_shot"].values(), *pure["learning_curve"]["file-order"]):
        assert result["scale"] == pytest.approx(1 / S_PURE, rel=TOL)
        assert result["mae_after"] < TOL < 1e-3 * pure["test"]["mae"]
    assert "single-element" in pure["per_species"]["skipped"]
    mixed = summary["results"]["toy-morse"]["mixed"]
    assert mixed["per_species"]["species_scales"] == pytest.approx(LAMBDA, rel=TOL)
    assert mixed["per_species"]["mae_after"] < TOL < 1e-3 * mixed["test"]["mae"]
    # one global scalar cannot undo opposite per-species factors exactly
    assert mixed["calibration"]["mae_after"] > 0.01 * mixed["test"]["mae"]


def test_outputs_and_recompute_from_h5(first_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = first_run
    stored = json.loads((out / "summary.json").read_text())
    assert stored == json.loads(json.dumps(summary))
    with h5py.File(out / "predictions.h5") as h5:
        test = h5["data/pure/test"]
        model = h5["models/0/pure/test/forces"][()]
        assert np.allclose(model, S_PURE * test["dft_forces"][()], rtol=TOL, atol=1e-7)
        assert "weighted" in h5["models/0"]  # per-species components for the mixed cells
    assert json.loads(json.dumps(recompute(out / "predictions.h5"))) == stored
    assert main(["bench", "softening", "--from-h5", str(out / "predictions.h5"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "summary.json").read_bytes() == (out / "summary.json").read_bytes()
    assert (tmp_path / "parity_toy-morse.png").stat().st_size > 1000
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000


def test_deterministic(first_run: tuple[Path, dict], synthetic: Path, tmp_path: Path) -> None:
    out, _ = first_run
    _run(synthetic, tmp_path)
    assert (tmp_path / "summary.json").read_bytes() == (out / "summary.json").read_bytes()


def test_subset_in_new_folder_gives_same_numbers(
    first_run: tuple[Path, dict], synthetic: Path, tmp_path: Path
) -> None:
    _, summary = first_run
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    shutil.copy(synthetic / "mixed.xyz", copy / "mixed.xyz")
    again = _run(copy, tmp_path / "out")
    assert list(again["results"]["toy-morse"]) == ["mixed"]
    before, after = summary["results"]["toy-morse"]["mixed"], again["results"]["toy-morse"]["mixed"]
    for split in ("train", "test"):
        assert before["data"][split]["sha256"] == after["data"][split]["sha256"]
        before["data"][split].pop("source"), after["data"][split].pop("source")
    assert json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)


def test_quick_cli_on_mlearn(data_dir: Path, tmp_path: Path) -> None:
    argv = ["bench", "softening", "--models", "toy-morse", "--data", str(data_dir / "forces/mlearn/Si")]
    assert main([*argv, "--quick", "--quiet", "--no-plots", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    si = summary["results"]["toy-morse"]["Si"]
    assert set(si["test"]["by_group"]) == {"AIMD-NVT", "Vacancy", "Elastic", "Surface"}
    with h5py.File(tmp_path / "predictions.h5") as h5:
        dft, model = h5["data/Si/test/dft_forces"][()], h5["models/0/Si/test/forces"][()]
        train, n_atoms = h5["data/Si/train"], h5["data/Si/train/n_atoms"][()]
        train_dft = np.split(train["dft_forces"][()], np.cumsum(n_atoms)[:-1])
        train_model = np.split(h5["models/0/Si/train/forces"][()], np.cumsum(n_atoms)[:-1])
    assert si["test"]["softening_scale"] == pytest.approx(np.sum(model * dft) / np.sum(dft**2), rel=1e-12)
    assert si["test"]["mae"] == pytest.approx(np.mean(np.abs(model - dft)), rel=1e-12)
    # the paper's one-shot pick: the calibration frame with the largest RMS DFT force
    k = int(np.argmax([np.sqrt(np.mean(f**2)) for f in train_dft]))
    shot = si["one_shot"]["largest-force"]
    assert shot["frame"] == k
    m, d = train_model[k], train_dft[k]
    assert shot["scale"] == pytest.approx(np.sum(m * d) / np.sum(m * m), rel=1e-12)
    assert shot["mae_after"] == pytest.approx(np.mean(np.abs(shot["scale"] * model - dft)), rel=1e-12)
    assert len(summary["headline"]) == 1 and "failed" in si["by_group"]["Elastic"]  # zero-force frames
