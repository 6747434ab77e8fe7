"""Readers for reference data and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.io import write

from softcalc.data import read_dataset
from softcalc.errors import DataError


def _labelled(n: int = 3):
    images = []
    for k in range(n):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        atoms.rattle(0.05, seed=k)
        forces = np.random.default_rng(k).normal(size=(len(atoms), 3))
        atoms.calc = SinglePointCalculator(atoms, energy=-5.0 * len(atoms), forces=forces)
        images.append(atoms)
    return images


def test_mlearn_json(data_dir) -> None:
    ds = read_dataset(data_dir / "forces/mlearn/Si/test.json")
    raw = json.loads((data_dir / "forces/mlearn/Si/test.json").read_text())
    assert len(ds) == len(raw) == 25
    assert ds.material == "Si"
    assert set(ds.groups) == {"AIMD-NVT", "Vacancy", "Elastic", "Surface"}
    f0 = ds.frames[0]
    np.testing.assert_array_equal(f0.forces, raw[0]["outputs"]["forces"])
    assert f0.energy == raw[0]["outputs"]["energy"]
    np.testing.assert_allclose(f0.atoms.cell[:], raw[0]["structure"]["lattice"]["matrix"])
    assert len(f0.atoms) == raw[0]["num_atoms"]


def test_relative_path_under_data_dir(data_dir) -> None:
    assert len(read_dataset("forces/mlearn/Li/test.json")) == 29


def test_extxyz_and_db_round_trip(tmp_path) -> None:
    images = _labelled()
    write(tmp_path / "d.extxyz", images)
    with connect(tmp_path / "d.db") as db:
        for atoms in images:
            db.write(atoms)
    for name in ("d.extxyz", "d.db"):
        ds = read_dataset(tmp_path / name)
        assert len(ds) == 3
        for frame, atoms in zip(ds.frames, images):
            np.testing.assert_allclose(frame.forces, atoms.get_forces())
            assert frame.energy == pytest.approx(atoms.get_potential_energy())
            assert frame.atoms.calc is None


def test_frames_without_forces_are_rejected(tmp_path) -> None:
    write(tmp_path / "noforces.xyz", bulk("Si"))
    with pytest.raises(DataError, match="no forces"):
        read_dataset(tmp_path / "noforces.xyz")
    (tmp_path / "x.json").write_text(
        json.dumps(
            [{"structure": {"lattice": {"matrix": [[1, 0, 0]] * 3}, "sites": []}, "outputs": {"energy": 1.0}}]
        )
    )
    with pytest.raises(DataError, match="no forces"):
        read_dataset(tmp_path / "x.json")


def test_empty_and_missing(tmp_path) -> None:
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(DataError, match="no frames"):
        read_dataset(tmp_path / "empty.json")
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "missing.xyz")
    with pytest.raises(DataError, match="without FORCE_SETS"):
        read_dataset(tmp_path)
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(DataError, match="not valid JSON"):
        read_dataset(tmp_path / "bad.json")


def test_mlearn_stress_is_converted_to_ase_convention(data_dir) -> None:
    """kBar, compression positive (VASP) -> eV/Å³, tension positive (ASE): compressed cells give σ < 0."""
    ds = read_dataset(data_dir / "forces/mlearn/Si/training.json")
    elastic = [f for f in ds.frames if f.group == "Elastic"]
    volumes = np.array([f.atoms.get_volume() / len(f.atoms) for f in elastic])
    pressure = np.array([-f.stress[:3].mean() for f in elastic])
    assert np.corrcoef(volumes, pressure)[0, 1] < -0.5  # smaller volume, higher pressure


def test_temperature_and_strain_of_mlearn_frames(data_dir) -> None:
    path = data_dir / "forces/mlearn/Si/training.json"
    raw = json.loads(path.read_text())
    frames = read_dataset(path).frames
    at_300 = [r["description"].endswith("at 300 K") for r in raw]
    assert 0 < sum(at_300) < len(raw)
    assert [f.temperature == 300.0 for f in frames] == at_300
    strained = [(r, f) for r, f in zip(raw, frames) if "strain" in r["description"]]
    assert len(strained) > 10 and all(r["group"] == "Elastic" for r, _ in strained)
    assert all(f.strain == float(r["description"].split("strain")[-1]) for r, f in strained)
    assert sum(f.strain is not None for f in frames) == len(strained)
    assert all(f.temperature is None for f in frames if f.group in ("Elastic", "Surface"))


def test_temperature_and_strain_from_extxyz_info(tmp_path) -> None:
    images = _labelled()
    images[0].info.update(temperature=600.0)
    images[1].info.update(description="AIMD at 1200 K")
    images[2].info.update(strain=-0.015)
    write(tmp_path / "d.extxyz", images)
    frames = read_dataset(tmp_path / "d.extxyz").frames
    assert [f.temperature for f in frames] == [600.0, 1200.0, None]
    assert [f.strain for f in frames] == [None, None, -0.015]
