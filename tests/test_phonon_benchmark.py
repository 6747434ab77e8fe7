"""Phonon benchmark on DFT force sets: reader, pipeline parity (DFT fed back), CLI, CHGNet, quick bench."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from softcalc.cli import main
from softcalc.data import read_dataset
from softcalc.phonons.comparison import (
    compare_phonons,
    load_phonon_reference,
    mesh_frequencies,
    phonon_comparison,
)

EXAMPLES = "phonons/phonopy-examples"


@pytest.fixture(scope="module")
def examples(data_dir: Path) -> Path:
    return data_dir / EXAMPLES


class ForceSetCalc(Calculator):
    """A fake model: the DFT forces of each displaced supercell, plus a residual force on every structure."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, dataset, residual: np.ndarray) -> None:  # noqa: ANN001
        super().__init__()
        self.table = [(f.atoms.positions, f.forces) for f in dataset.frames]
        self.table.append((dataset.reference.positions, np.zeros_like(residual)))
        self.residual = residual

    def calculate(self, atoms=None, properties=("forces",), system_changes=all_changes) -> None:  # noqa: ANN001
        super().calculate(atoms, properties, system_changes)
        forces = next(f for pos, f in self.table if np.allclose(pos, atoms.positions, atol=1e-9))
        self.results = {"energy": 0.0, "forces": forces + self.residual}


@pytest.mark.parametrize(
    ("material", "n_frames", "n_atoms", "pairs", "functional"),
    [("Si", 1, 16, [], "PBE"), ("NaCl", 2, 64, [], "PBE"), ("SiO2-HP", 3, 48, [(1, 2)], "PBE")],
)
def test_reader(
    examples: Path, material: str, n_frames: int, n_atoms: int, pairs: list, functional: str
) -> None:
    d = read_dataset(examples / material)
    assert (len(d), len(d.reference), d.pairs, d.functional, d.material) == (
        n_frames,
        n_atoms,
        pairs,
        functional,
        material,
    )
    lines = (examples / material / "FORCE_SETS").read_text().split("\n")
    first_force = np.array(lines[4 + n_atoms].split(), dtype=float) if n_frames == 1 else None
    for f in d.frames:
        assert f.forces.shape == (n_atoms, 3)
        moved = np.linalg.norm(f.atoms.positions - d.reference.positions, axis=1)
        assert (moved > 1e-3).sum() == 1 and 0.005 < moved.max() < 0.011  # one atom, by ~0.01 Å
    if first_force is not None:  # last force line of the only displacement, read independently
        np.testing.assert_allclose(d.frames[0].forces[-1], first_force)
    for i, j in d.pairs:
        np.testing.assert_allclose(
            d.frames[i].atoms.positions + d.frames[j].atoms.positions, 2 * d.reference.positions, atol=1e-10
        )


@pytest.mark.parametrize("material", ["Si", "NaCl"])
def test_dft_fed_back_gives_identity(examples: Path, material: str) -> None:
    pset = load_phonon_reference(examples / material)
    residual = np.random.default_rng(0).normal(0, 0.05, size=(len(pset.dataset.reference), 3))
    result = compare_phonons(ForceSetCalc(pset.dataset, residual), pset, model="dft")
    m = result.metrics
    assert m.force_set_slope == pytest.approx(1, abs=1e-10)
    assert m.freq_slope == pytest.approx(1, abs=1e-8)
    assert m.freq_mae_thz == pytest.approx(0, abs=1e-8)
    assert m.max_freq_ratio == pytest.approx(1, abs=1e-8)
    # a model softer by a factor c gives force slope c and frequencies scaled by sqrt(c)
    forces = [0.8 * f.forces for f in pset.dataset.frames] + [np.zeros_like(residual)]
    soft = phonon_comparison(pset, forces).metrics
    assert soft.force_set_slope == pytest.approx(0.8, abs=1e-10)
    assert soft.freq_slope == pytest.approx(np.sqrt(0.8), abs=1e-8)
    assert soft.max_freq_ratio == pytest.approx(np.sqrt(0.8), abs=1e-8)


def test_every_shared_force_set_gives_phonopys_own_force_constants(examples: Path) -> None:
    """The one loader and the one fit reproduce phonopy.load's full force constants on every shared set,
    the no-symmetry LiF set included (a compact fit of it is singular); the benchmark symmetrises them."""
    from softcalc.data.phonopy_sets import phonopy_force_frames
    from softcalc.phonons.phonopy_io import fit_force_constants, phonopy_object

    folders = sorted(p.parent for p in examples.glob("*/FORCE_SETS"))
    assert len(folders) >= 8
    for folder in folders:
        dataset, phonon = phonopy_force_frames(folder)
        ours = fit_force_constants(phonon)
        structure = folder / "phonopy_disp.yaml"
        if structure.exists():
            where = {"phonopy_yaml": str(structure)}
        else:
            where = {"unitcell_filename": str(folder / "POSCAR-unitcell"), "calculator": "vasp"}
            where["supercell_matrix"] = phonon.supercell_matrix
        reference = phonopy_object(
            **where,
            force_sets_filename=str(folder / "FORCE_SETS"),
            primitive_matrix="auto",
            is_nac=False,
            is_compact_fc=False,
            symmetrize_fc=False,
            log_level=0,
        )
        n = len(dataset.reference)
        assert ours.shape == (n, n, 3, 3), folder.name
        np.testing.assert_allclose(ours, reference.force_constants, atol=1e-12, err_msg=folder.name)
        symmetrised = load_phonon_reference(folder).phonon.force_constants
        assert symmetrised.shape == (n, n, 3, 3)
        assert np.abs(symmetrised.sum(axis=1)).max() < 1e-8  # translational invariance imposed


def test_mesh_frequencies_match_phonopy(examples: Path) -> None:
    import phonopy

    path = examples / "NaCl"
    ref = phonopy.load(
        str(path / "phonopy_disp.yaml"),
        force_sets_filename=str(path / "FORCE_SETS"),
        primitive_matrix="auto",
        is_nac=False,
        log_level=0,
    )
    ref.run_mesh([8, 8, 8], is_mesh_symmetry=False, is_gamma_center=True)
    ours = mesh_frequencies(load_phonon_reference(path).phonon)
    assert ours.shape == (512, 6)
    np.testing.assert_allclose(np.sort(ours.ravel()), np.sort(np.ravel(ref.mesh.frequencies)), atol=1e-5)


def test_evaluate_calibrate_phonons_cli_agree(examples: Path, tmp_path: Path) -> None:
    si = str(examples / "Si")
    assert (
        main(
            ["evaluate", "--model", "toy-morse", "--data", si, "--json", str(tmp_path / "e.json"), "--quiet"]
        )
        == 0
    )
    assert main(["calibrate", "--model", "toy-morse", "--data", si, "--out", str(tmp_path / "c.json"),
                 "--bootstrap", "50", "--quiet"]) == 0  # fmt: skip
    args = ["phonons", "--model", "toy-morse", "--phonopy-dir", si, "--quiet"]
    assert main([*args, "--json", str(tmp_path / "p.json")]) == 0
    assert (
        main([*args, "--scale", "1.2", "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "b.png")])
        == 0
    )
    evaluated = json.loads((tmp_path / "e.json").read_text())
    lam = json.loads((tmp_path / "c.json").read_text())["scale"]
    bare = json.loads((tmp_path / "p.json").read_text())
    scaled = json.loads((tmp_path / "s.json").read_text())
    assert bare["force_set_slope"] == pytest.approx(evaluated["softening_scale"], rel=1e-10)
    assert lam == pytest.approx(evaluated["scale_opt"], rel=1e-10)
    assert scaled["bare"] == {k: v for k, v in bare.items() if k != "data"}
    assert scaled["force_set_slope"] == pytest.approx(1.2 * bare["force_set_slope"], rel=1e-10)
    assert scaled["freq_slope"] == pytest.approx(np.sqrt(1.2) * bare["freq_slope"], rel=1e-8)
    assert (tmp_path / "b.png").stat().st_size > 10_000


def test_copied_subset_gives_identical_numbers(examples: Path, tmp_path: Path) -> None:
    copy = tmp_path / "SiO2-HP"
    copy.mkdir()
    for name in ("FORCE_SETS", "phonopy_disp.yaml"):
        shutil.copy(examples / "SiO2-HP" / name, copy / name)
    outputs = []
    for i, path in enumerate((examples / "SiO2-HP", copy)):
        out = tmp_path / f"{i}.json"
        assert (
            main(
                ["phonons", "--model", "toy-morse", "--phonopy-dir", str(path), "--json", str(out), "--quiet"]
            )
            == 0
        )
        outputs.append(json.loads(out.read_text()))
    numbers = [{k: v for k, v in o.items() if k != "data"} for o in outputs]
    assert numbers[0] == numbers[1]
    assert numbers[0]["n_displacements"] == 3 and np.isfinite(numbers[0]["freq_mae_thz"])


def _chgnet_available() -> bool:
    from softcalc import available_models

    return "chgnet" in available_models().get("chgnet", {})


def test_chgnet_si_metrics_sane(examples: Path, model_dir: Path) -> None:
    if not _chgnet_available():
        pytest.skip("CHGNet plugin not installed")
    from softcalc import load_model

    m = compare_phonons(load_model("chgnet"), examples / "Si", model="chgnet").metrics
    # PES softening: CHGNet is softer than PBE on Si (published slopes ~0.6-0.9), frequencies within ~25%
    assert 0.4 < m.force_set_slope < 1.0
    assert 0.6 < m.freq_slope < 1.05
    assert 0.6 < m.max_freq_ratio < 1.05
    assert 0.1 < m.freq_mae_thz < 4.0


def test_quick_bench_end_to_end(examples: Path, model_dir: Path, tmp_path: Path) -> None:
    if not _chgnet_available():
        pytest.skip("CHGNet plugin not installed")
    args = ["bench", "phonons", "--models", "chgnet", "--data", str(examples), "--quick", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "phonons.json").read_text())
    results = summary["results"]["chgnet"]
    assert sorted(results) == ["NaCl", "Si"]
    for material, other in (("NaCl", "Si"), ("Si", "NaCl")):
        corr = results[material]["corrected"]
        assert corr["calibrated_on"] == [other]
        # a global λ scales every model force: the force-set slope scales by exactly λ (up to rounding)
        assert corr["force_set_slope"] == pytest.approx(
            corr["scale"] * results[material]["bare"]["force_set_slope"], abs=1e-5
        )
    for png in ("max_freq_ratio.png", "freq_parity.png"):
        assert (tmp_path / "a" / png).stat().st_size > 10_000
    # the copy of a subset of the data gives identical per-material numbers
    subset = tmp_path / "subset"
    for material in ("Si", "NaCl"):
        shutil.copytree(examples / material, subset / material)
    assert main(["bench", "phonons", "--models", "chgnet", "--data", str(subset), "--quick", "--quiet",
                 "--no-plots", "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    again = json.loads((tmp_path / "b" / "phonons.json").read_text())
    assert again == summary  # no paths or timestamps in the JSON: same data, same file
