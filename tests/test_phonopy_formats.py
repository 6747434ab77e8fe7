"""Every phonopy data set format gives the numbers of its FORCE_SETS: phonopy.yaml and phonopy_params.yaml
with embedded forces (as atomate2 and phonopy's ``save`` write them), type-2 FORCE_SETS, a ``Phonopy``
object; BORN with and without ``--nac`` against phonopy's own frequencies; clear errors for a yaml without
forces, forces of the wrong shape and a supercell that does not match."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from softcalc.bench.phonons import phonopy_dirs
from softcalc.cli import main
from softcalc.data import read_dataset
from softcalc.data.phonopy_sets import phonopy_force_frames
from softcalc.data.readers import read_datasets
from softcalc.errors import DataError
from softcalc.phonons.comparison import compare_phonons, load_phonon_reference, mesh_frequencies

EXAMPLES = "phonons/phonopy-examples"
#: the yaml files a set can come as, each in a folder of its own
KINDS = ("phonopy.yaml", "phonopy_params.yaml")


@pytest.fixture(scope="module")
def examples(data_dir: Path) -> Path:
    return data_dir / EXAMPLES


def _phonopy(folder: Path, nac: bool = False):  # noqa: ANN202
    """phonopy's own reading of a shared FORCE_SETS folder (no force constants; BORN when ``nac``)."""
    import phonopy

    return phonopy.load(
        folder / "phonopy_disp.yaml",
        force_sets_filename=folder / "FORCE_SETS",
        born_filename=folder / "BORN" if nac else None,
        is_nac=nac,
        produce_fc=False,
        log_level=0,
    )


@pytest.fixture(scope="module")
def yaml_sets(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<kind>/<material>/<kind>``: only the yaml, forces embedded, written by phonopy's API; NaCl's
    phonopy_params.yaml also carries the BORN data (its ``nac:`` entry)."""
    root = tmp_path_factory.mktemp("yaml-sets")
    for material in ("Si", "NaCl"):
        for kind in KINDS:
            folder = root / kind / material
            folder.mkdir(parents=True)
            with_born = kind == "phonopy_params.yaml" and (examples / material / "BORN").exists()
            phonon = _phonopy(examples / material, nac=with_born)
            phonon.save(folder / kind, settings={"force_sets": True, "displacements": True})
    return root


def _phonons_json(path: Path, out: Path, *extra: str) -> dict:
    argv = ["phonons", "--model", "toy-morse", "--phonopy-dir", str(path), "--json", str(out), "--quiet"]
    assert main([*argv, *extra]) == 0
    return json.loads(out.read_text())


def _same_numbers(a: dict, b: dict, tol: float = 1e-8) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "data":
            continue
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], abs=tol), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("kind", KINDS)
def test_yaml_with_forces_gives_the_force_sets_results(examples, yaml_sets, tmp_path, kind) -> None:
    reference = _phonons_json(examples / "Si", tmp_path / "fs.json")
    folder = yaml_sets / kind / "Si"
    for i, path in enumerate((folder, folder / kind)):  # the folder, or the yaml file itself
        result = _phonons_json(path, tmp_path / f"{i}.json")
        _same_numbers(result, reference)
        assert result["data"]["source"] == str(path)
    assert reference["nac"] is False and "no non-analytic correction" in reference["nac_note"]
    assert reference["data"]["born"] is None and "no ± pairs" in reference["residual"]


@pytest.mark.parametrize("kind", KINDS)
def test_nacl_yaml_gives_the_force_sets_comparison(examples, yaml_sets, kind) -> None:
    calc = LennardJones(sigma=2.5, epsilon=0.05, rc=6.0, smooth=True)
    reference = compare_phonons(calc, examples / "NaCl")
    result = compare_phonons(calc, yaml_sets / kind / "NaCl")
    assert result.metrics == reference.metrics  # material, functional, counts, and the numbers
    np.testing.assert_allclose(result.model_frequencies, reference.model_frequencies, atol=1e-8)
    np.testing.assert_allclose(result.dft_frequencies, reference.dft_frequencies, atol=1e-8)
    a, b = read_dataset(examples / "NaCl"), read_dataset(yaml_sets / kind / "NaCl")
    assert (len(a), a.pairs, a.material) == (len(b), b.pairs, b.material)
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa.forces, fb.forces)
        np.testing.assert_allclose(fa.atoms.positions, fb.atoms.positions, atol=1e-12)


def test_functional_is_recognised_by_the_forces_not_the_folder_name(examples, yaml_sets, tmp_path) -> None:
    assert read_dataset(examples / "Al2O3").functional == "PBEsol"
    assert read_dataset(yaml_sets / "phonopy.yaml" / "Si").functional == "PBE"  # the shared set, converted
    phonon = _phonopy(examples / "Si")
    phonon.forces = 0.5 * np.asarray(phonon.forces)  # other data, in a folder named Si
    (tmp_path / "Si").mkdir()
    phonon.save(tmp_path / "Si" / "phonopy_params.yaml", settings={"force_sets": True, "displacements": True})
    other = read_dataset(tmp_path / "Si")
    assert (other.material, other.functional) == ("Si", "")


def test_phonopy_object_gives_the_force_sets_comparison(examples) -> None:
    phonon = _phonopy(examples / "NaCl")
    dataset, same = phonopy_force_frames(phonon)
    assert same is phonon and len(dataset) == 2 and dataset.source == "the phonopy.Phonopy object"
    calc = LennardJones(sigma=2.5, epsilon=0.05, rc=6.0, smooth=True)
    ours = compare_phonons(calc, load_phonon_reference(phonon)).metrics
    reference = compare_phonons(calc, examples / "NaCl").metrics
    for key in ("force_set_slope", "freq_slope", "freq_mae_thz", "max_freq_ratio"):
        assert getattr(ours, key) == pytest.approx(getattr(reference, key), abs=1e-8)


def _phonopy_frequencies(folder: Path, nac: bool) -> np.ndarray:
    phonon = _phonopy(folder, nac=nac)
    phonon.produce_force_constants(calculate_full_force_constants=True)
    phonon.symmetrize_force_constants()
    phonon.run_mesh([8, 8, 8], is_mesh_symmetry=False, is_gamma_center=True)
    return np.sort(phonon.mesh.frequencies, axis=1)


def test_born_with_and_without_nac_match_phonopy(examples, yaml_sets) -> None:
    nacl = examples / "NaCl"
    for nac in (False, True):
        reference = _phonopy_frequencies(nacl, nac)
        for source in (nacl, yaml_sets / "phonopy_params.yaml" / "NaCl"):  # BORN; Born charges in the yaml
            pset = load_phonon_reference(source, nac=nac)
            assert pset.nac is nac and pset.nac_source
            np.testing.assert_allclose(mesh_frequencies(pset.phonon), reference, atol=1e-6)
    # LO-TO: the correction raises the top (LO) branch away from Γ
    assert _phonopy_frequencies(nacl, True).max() > _phonopy_frequencies(nacl, False).max() + 0.5


def test_nac_applies_to_model_and_dft_alike(examples) -> None:
    """DFT forces fed back as the model: identical phonons with --nac; a softer model scales its
    analytic part only, so its frequencies no longer scale by sqrt(c) exactly."""
    from softcalc.phonons.comparison import phonon_comparison

    pset = load_phonon_reference(examples / "NaCl", nac=True)
    zero = np.zeros_like(pset.dataset.frames[0].forces)
    same = phonon_comparison(pset, [f.forces for f in pset.dataset.frames] + [zero]).metrics
    assert (same.freq_slope, same.freq_mae_thz, same.max_freq_ratio) == pytest.approx((1, 0, 1), abs=1e-8)
    comparison = phonon_comparison(pset, [0.8 * f.forces for f in pset.dataset.frames] + [zero])
    assert comparison.model_phonon.nac_params is not None
    assert comparison.metrics.force_set_slope == pytest.approx(0.8, abs=1e-10)
    assert comparison.metrics.max_freq_ratio > np.sqrt(0.8) + 1e-3


def test_nac_band_plot_uses_phonopy(examples, tmp_path) -> None:
    from softcalc.phonons.comparison import band_structure_plot, frequencies_at

    pset = load_phonon_reference(examples / "NaCl", nac=True)
    assert pset.nac_source.endswith("BORN")
    q = [[0.1, 0.0, 0.0], [0.25, 0.25, 0.0]]
    reference = _phonopy(examples / "NaCl", nac=True)
    reference.produce_force_constants(calculate_full_force_constants=True)
    reference.symmetrize_force_constants()
    reference.run_qpoints(q)
    np.testing.assert_allclose(frequencies_at(pset.phonon, q), reference.qpoints.frequencies, atol=1e-6)
    band_structure_plot(tmp_path / "b.png", pset, [("DFT again", pset.phonon)])
    assert (tmp_path / "b.png").stat().st_size > 10_000


def test_phonons_command_with_and_without_nac(examples, tmp_path) -> None:
    sio2 = examples / "SiO2-HP"  # toy-morse covers Si and O; the set has BORN
    plain = _phonons_json(sio2, tmp_path / "plain.json")
    nac = _phonons_json(sio2, tmp_path / "nac.json", "--nac", "--plot", str(tmp_path / "bands.png"))
    assert plain["nac"] is False and nac["nac"] is True and "applied" in nac["nac_note"]
    assert plain["data"]["born"] == nac["data"]["born"] == str(sio2 / "BORN")
    assert nac["force_set_slope"] == plain["force_set_slope"]  # forces do not see the correction
    assert nac["max_freq_ratio"] != pytest.approx(plain["max_freq_ratio"], abs=1e-6)
    assert (tmp_path / "bands.png").stat().st_size > 10_000


def test_nac_without_born_is_a_data_error(examples, tmp_path, capsys) -> None:
    with pytest.raises(DataError, match="no BORN file and no Born charges in its yaml.*Fix:"):
        load_phonon_reference(examples / "Si", nac=True)
    argv = ["phonons", "--model", "toy-morse", "--phonopy-dir", str(examples / "Si"), "--nac"]
    assert main([*argv, "--json", str(tmp_path / "o.json"), "--quiet"]) == 2
    assert "no BORN file" in capsys.readouterr().err


def test_type2_force_sets_and_yaml(examples, tmp_path) -> None:
    """Random displacements (type 2) of all atoms, ± snapshots, with harmonic forces of the DFT force
    constants: as FORCE_SETS beside phonopy_disp.yaml and as phonopy_params.yaml, fitted by symfc."""
    from phonopy.file_IO import write_FORCE_SETS

    phonon = _phonopy(examples / "Si")
    phonon.produce_force_constants(calculate_full_force_constants=True)
    fc = phonon.force_constants
    phonon.generate_displacements(distance=0.02, number_of_snapshots=3, random_seed=7, is_plusminus=True)
    u = np.asarray(phonon.dataset["displacements"])
    phonon.forces = -np.einsum("ijab,njb->nia", fc, u)
    fs_dir, yaml_dir = tmp_path / "fs" / "Si", tmp_path / "yaml" / "Si"
    fs_dir.mkdir(parents=True)
    yaml_dir.mkdir(parents=True)
    write_FORCE_SETS(phonon.dataset, filename=fs_dir / "FORCE_SETS")
    phonon.save(fs_dir / "phonopy_disp.yaml", settings={"force_sets": False})
    phonon.save(yaml_dir / "phonopy_params.yaml")
    sets = [phonopy_force_frames(d)[0] for d in (fs_dir, yaml_dir)]
    for dataset in sets:
        assert len(dataset) == 6 and dataset.pairs == [(0, 3), (1, 4), (2, 5)]  # +u1 +u2 +u3 -u1 -u2 -u3
        assert dataset.frames[0].label.startswith("snapshot 1: 16 atoms displaced")
    for fa, fb in zip(*(s.frames for s in sets)):
        np.testing.assert_allclose(fa.forces, fb.forces, atol=1e-8)
        np.testing.assert_allclose(fa.atoms.positions, fb.atoms.positions, atol=1e-8)
    reference = mesh_frequencies(load_phonon_reference(examples / "Si").phonon)
    for d in (fs_dir, yaml_dir):
        np.testing.assert_allclose(mesh_frequencies(load_phonon_reference(d).phonon), reference, atol=1e-3)


@pytest.mark.parametrize("fc_name", ["FORCE_CONSTANTS", "force_constants.hdf5"])
def test_force_constants_only_set_is_a_frequency_reference(examples, tmp_path, fc_name, capsys) -> None:
    from phonopy.file_IO import write_force_constants_to_hdf5

    from softcalc.phonons.phonopy_io import write_force_constants

    dft = load_phonon_reference(examples / "NaCl")
    folder = tmp_path / "NaCl"
    folder.mkdir()
    shutil.copy(examples / "NaCl" / "phonopy_disp.yaml", folder / "phonopy_disp.yaml")
    if fc_name == "FORCE_CONSTANTS":
        write_force_constants(folder / fc_name, dft.phonon.force_constants)
    else:
        write_force_constants_to_hdf5(dft.phonon.force_constants, filename=folder / fc_name)
    pset = load_phonon_reference(folder)
    assert not pset.force_data and len(pset.dataset) == len(dft.dataset)
    np.testing.assert_allclose(pset.phonon.force_constants, dft.phonon.force_constants, atol=1e-10)
    calc = LennardJones(sigma=2.5, epsilon=0.05, rc=6.0, smooth=True)
    ours, reference = compare_phonons(calc, pset), compare_phonons(calc, dft)
    assert ours.metrics.force_set_slope is None
    np.testing.assert_allclose(ours.dft_frequencies, reference.dft_frequencies, atol=1e-6)  # text file
    np.testing.assert_allclose(ours.model_frequencies, reference.model_frequencies, atol=1e-6)
    for key in ("freq_slope", "freq_mae_thz", "max_freq_ratio"):
        assert getattr(ours.metrics, key) == pytest.approx(getattr(reference.metrics, key), abs=1e-6)
    with pytest.raises(DataError, match=f"force constants only \\({fc_name}\\).*Fix:"):
        read_dataset(folder)  # not force data: calibration refuses it


def _without_forces(folder: Path, examples: Path) -> Path:
    shutil.copy(examples / "Si" / "phonopy_disp.yaml", folder / "phonopy_disp.yaml")
    return folder


def _edited_params(folder: Path, yaml_sets: Path, edit) -> Path:  # noqa: ANN001
    text = (yaml_sets / "phonopy_params.yaml" / "Si" / "phonopy_params.yaml").read_text()
    (folder / "phonopy_params.yaml").write_text(edit(text))
    return folder


def _drop_one_force(text: str) -> str:
    lines = text.split("\n")
    k = lines.index("  forces:") + 1
    while lines[k].lstrip().startswith("- ["):
        k += 1
    del lines[k - 1]  # the last force line of the first displacement
    return "\n".join(lines)


def _three_by_three(text: str) -> str:
    two = "supercell_matrix:\n- [   2,   0,   0 ]\n- [   0,   2,   0 ]\n- [   0,   0,   2 ]"
    assert two in text
    return text.replace(two, two.replace("2", "3"))


ERRORS = {
    "yaml-without-forces": (
        lambda d, e, y: _without_forces(d, e),
        "phonopy_disp.yaml holds no forces and there is no FORCE_SETS beside it",
    ),
    "forces-of-wrong-shape": (
        lambda d, e, y: _edited_params(d, y, _drop_one_force),
        "displacement 1 has forces of shape (15, 3), but the supercell has 16 atoms",
    ),
    "supercell-does-not-match": (
        lambda d, e, y: _edited_params(d, y, _three_by_three),
        "forces of shape (16, 3), but the supercell has 54 atoms (expected (54, 3)): the forces do not match",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_clear_errors(examples, yaml_sets, tmp_path, case, capsys) -> None:
    make, problem = ERRORS[case]
    (tmp_path / "set").mkdir()
    folder = make(tmp_path / "set", examples, yaml_sets)
    for load in (phonopy_force_frames, read_dataset):
        with pytest.raises(DataError, match="Fix:") as error:
            load(folder)
        message = str(error.value)
        assert problem in message and str(folder) in message and "\n" not in message, message
    out = tmp_path / "o.json"
    argv = ["phonons", "--model", "toy-morse", "--phonopy-dir", str(folder), "--json", str(out), "--quiet"]
    assert main(argv) == 2
    assert problem in capsys.readouterr().err and not out.exists()


def test_supercell_matrix_that_does_not_match(yaml_sets, examples) -> None:
    for source in (yaml_sets / "phonopy.yaml" / "Si", _phonopy(examples / "Si")):
        with pytest.raises(DataError, match=r"not \[\[3, 0, 0\].*the supercell does not match.*Fix:"):
            phonopy_force_frames(source, supercell_matrix=[3, 3, 3])


def test_mixed_folder_for_bench_calibrate_and_md(examples, yaml_sets, tmp_path) -> None:
    """bench phonons, calibrate and md-analyze --phonons take yaml sets like FORCE_SETS folders."""
    from softcalc.md.compare import harmonic_dos

    mixed = tmp_path / "mixed"
    shutil.copytree(examples / "Si", mixed / "Si")
    shutil.copytree(yaml_sets / "phonopy.yaml" / "NaCl", mixed / "NaCl")
    (mixed / "notes").mkdir()
    assert phonopy_dirs([mixed]) == [mixed / "NaCl", mixed / "Si"]
    assert [d.material for d in read_datasets([mixed])] == ["NaCl", "Si"]
    lam = []
    for data in (examples / "Si", yaml_sets / "phonopy_params.yaml" / "Si"):
        out = tmp_path / f"c{len(lam)}.json"
        argv = ["calibrate", "--model", "toy-morse", "--data", str(data), "--out", str(out)]
        assert main([*argv, "--bootstrap", "50", "--quiet"]) == 0
        lam.append(json.loads(out.read_text())["scale"])
    assert lam[0] == pytest.approx(lam[1], abs=1e-10)
    a = harmonic_dos(examples / "Si", mesh=(8, 8, 8))
    b = harmonic_dos(yaml_sets / "phonopy.yaml" / "Si", mesh=(8, 8, 8))
    np.testing.assert_allclose(b[0], a[0], atol=1e-10)
    np.testing.assert_allclose(b[1], a[1], atol=1e-8)


def test_bench_phonons_over_a_mixed_folder(examples, yaml_sets, tmp_path) -> None:
    """FORCE_SETS, phonopy_params.yaml and FORCE_CONSTANTS sets of Si side by side in `bench phonons`."""
    from phonopy.file_IO import write_force_constants_to_hdf5

    mixed = tmp_path / "mixed"
    shutil.copytree(examples / "Si", mixed / "Si")
    shutil.copytree(yaml_sets / "phonopy_params.yaml" / "Si", mixed / "Si-yaml")
    (mixed / "Si-fc").mkdir()
    shutil.copy(examples / "Si" / "phonopy_disp.yaml", mixed / "Si-fc" / "phonopy_disp.yaml")
    fc = load_phonon_reference(examples / "Si").phonon.force_constants
    write_force_constants_to_hdf5(fc, filename=mixed / "Si-fc" / "force_constants.hdf5")
    out = tmp_path / "bench"
    argv = ["bench", "phonons", "--models", "toy-morse", "--data", str(mixed), "--out", str(out)]
    assert main([*argv, "--bootstrap", "50", "--quiet", "--no-plots"]) == 0
    results = json.loads((out / "phonons.json").read_text())["results"]["toy-morse"]
    assert set(results) == {"Si", "Si-yaml", "Si-fc"}
    assert results["Si-yaml"]["bare"] == results["Si"]["bare"]
    assert results["Si-fc"]["bare"]["force_set_slope"] is None
    for key in ("freq_slope", "freq_mae_thz", "max_freq_ratio"):
        assert results["Si-fc"]["bare"][key] == pytest.approx(results["Si"]["bare"][key], abs=1e-5)
    # never on force constants; the yaml copy is the shared PBE Si set too (recognised by its forces)
    assert results["Si-fc"]["corrected"]["calibrated_on"] == ["Si", "Si-yaml"]


@pytest.fixture(scope="module")
def tuned_si(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy model fine-tuned (a few epochs) on Si cells labelled 30 % stiffer, saved with its weights."""
    from ase.build import bulk

    from softcalc import SoftCorrectedCalc
    from softcalc.calibration.pipeline import calibrate
    from softcalc.data import ForceDataset, ForceFrame
    from softcalc.finetune.settings import FineTuneSettings

    stiffer = SoftCorrectedCalc("toy-morse", scale=1.3)
    frames = []
    for k in range(6):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        atoms.set_cell(atoms.cell * (1 + 0.01 * (k - 3)), scale_atoms=True)
        atoms.rattle(0.08, seed=k)
        atoms.calc = stiffer
        frames.append(
            ForceFrame(atoms.copy(), atoms.get_forces(), atoms.get_potential_energy(), group="AIMD")
        )
    settings = FineTuneSettings(epochs=5, lr=0.05, lr_final=5e-3, seed=1)
    fit = calibrate("toy-morse", ForceDataset(frames, source="synthetic"), frames=5, method="finetune",
                    finetune=settings, n_bootstrap=20)  # fmt: skip
    path = tmp_path_factory.mktemp("tuned") / "tuned.json"
    fit.save(path)
    return path


def test_bare_block_of_a_tuned_correction_is_the_base_model(examples, tuned_si, tmp_path) -> None:
    """`softcalc phonons --correction tuned.json`: the "bare" block is the base model's, not the tuned
    weights' (issue 19: it reported the tuned model's numbers as bare)."""
    import warnings

    from softcalc import SoftCorrectedCalc
    from softcalc.registry import load_model

    pset = load_phonon_reference(examples / "Si")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tuned correction may be marked not recommended: irrelevant here
        calc = SoftCorrectedCalc("toy-morse", correction=tuned_si)
    plain = compare_phonons(load_model("toy-morse"), pset, model="toy-morse")
    bare = compare_phonons(calc.base, pset, model="toy-morse")
    tuned = compare_phonons(calc, pset, model="toy-morse")
    np.testing.assert_array_equal(bare.model_frequencies, plain.model_frequencies)
    assert np.abs(tuned.model_frequencies - plain.model_frequencies).max() > 1e-3
    assert calc.tuned is not None and calc.tuned.model is not calc.base.model
    # the command line: the bare block equals the plain command's numbers, the corrected ones differ
    plain_json = _phonons_json(examples / "Si", tmp_path / "plain.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _phonons_json(examples / "Si", tmp_path / "tuned.json", "--correction", str(tuned_si))
    keys = ("force_set_slope", "freq_slope", "freq_mae_thz", "max_freq_ratio")
    assert {k: out["bare"][k] for k in keys} == {k: plain_json[k] for k in keys}
    assert out["freq_mae_thz"] != pytest.approx(plain_json["freq_mae_thz"], abs=1e-4)
    assert out["freq_mae_thz"] == pytest.approx(tuned.metrics.freq_mae_thz, abs=1e-12)


def _with_residual(examples: Path, plusminus: bool | str, residual: np.ndarray):  # noqa: ANN202
    """Si with phonopy's displacements, forces −Φu of the DFT force constants plus ``residual`` (the
    perfect supercell's residual forces, on every frame); returns the Phonopy and the harmonic forces."""
    phonon = _phonopy(examples / "Si")
    phonon.produce_force_constants(calculate_full_force_constants=True)
    fc = phonon.force_constants
    phonon.generate_displacements(distance=0.01, is_plusminus=plusminus)
    harmonic = []
    for entry in phonon.dataset["first_atoms"]:
        u = np.zeros((len(phonon.supercell), 3))
        u[entry["number"]] = entry["displacement"]
        harmonic.append(-np.einsum("ijab,jb->ia", fc, u))
    phonon.forces = np.array(harmonic) + residual
    return phonon, harmonic


def test_pair_residual_is_removed_from_the_frames(examples, tmp_path) -> None:
    """Frames of ± pairs carry ±(F₊ − F₋)/2: the residual forces of the undisplaced supercell, on every
    displaced frame, are gone from each frame (what fine-tuning trains on), for a Phonopy object and a
    FORCE_SETS folder alike; the Phonopy keeps the forces as given and the comparison is unchanged."""
    from phonopy.file_IO import write_FORCE_SETS

    from softcalc.calibration.frames import split_frames

    residual = np.random.default_rng(3).normal(0, 0.02, size=(16, 3))
    residual -= residual.mean(axis=0)  # no drift, as DFT codes write them
    phonon, harmonic = _with_residual(examples, True, residual)
    folder = tmp_path / "Si-residual"
    folder.mkdir()
    write_FORCE_SETS(phonon.dataset, filename=folder / "FORCE_SETS")
    phonon.save(folder / "phonopy_disp.yaml", settings={"force_sets": False})
    for source in (phonon, folder):
        dataset, read = phonopy_force_frames(source)
        assert dataset.pairs == [(0, 1)]  # Si: one symmetry-distinct displacement, + and −
        for frame, clean in zip(dataset.frames, harmonic):
            np.testing.assert_allclose(frame.forces, clean, atol=1e-12)  # 1e-2 eV/Å residual removed
        given = [e["forces"] for e in read.dataset["first_atoms"]]
        np.testing.assert_allclose(given, np.array(harmonic) + residual, atol=1e-8)  # phonopy's: as given
        # a calibration split hands the frames on as they are: a fine-tune on one frame of the pair
        one = split_frames(dataset, frames=1).fit[0]
        np.testing.assert_allclose(one.frames[0].forces, harmonic[0], atol=1e-12)
    # DFT force constants and frequencies as phonopy fits the forces as given (the ± fit drops the offset)
    raw = mesh_frequencies(load_phonon_reference(phonon).phonon)
    clean, _ = _with_residual(examples, True, 0.0)
    np.testing.assert_allclose(mesh_frequencies(load_phonon_reference(clean).phonon), raw, atol=1e-6)


def test_frames_without_a_partner_keep_their_forces(examples) -> None:
    """One-sided displacements: nothing in the data estimates the residual, so forces stay as given."""
    residual = np.full((16, 3), 0.01) * np.array([1, -1, 0])
    phonon, harmonic = _with_residual(examples, False, residual)
    dataset, _ = phonopy_force_frames(phonon)
    assert dataset.pairs == []
    np.testing.assert_allclose(dataset.frames[0].forces, harmonic[0] + residual, atol=1e-12)
