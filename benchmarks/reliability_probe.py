"""Reliability probe: feed the ``softcalc`` command bad inputs and faults the way a new user would, and
classify what each run does.

Every case is one command line run as a subprocess (no stdin, a timeout, the toy Morse model or small
cells so it is quick), classified as

- ``clear-error``: exit code 2, a one-line ``softcalc <command>: error: ...`` message, no traceback
  (what every bad input should give);
- ``traceback``: a Python traceback reached the user;
- ``warned``: exit code 0 although the input was bad, with a ``WARNING`` (or "NOT recommended") in
  the output: the result exists but the user was told (a policy choice to review, not a crash);
- ``silent``: exit code 0 although the input was bad, and no warning (a result that should not exist);
- ``hang``: still running at the timeout (killed);
- ``unclear-error``: any other failure (another exit code, or no ``error:`` line, without traceback);
- ``ok`` / ``control-failed``: the few good inputs (controls) that must succeed, so that a broken setup is
  not mistaken for good error handling.

The toy model is the test plugin under ``tests/plugin_fixture`` (put on ``PYTHONPATH`` for the
subprocesses). Damaged weights are copies of ``$SOFTCALC_MODEL_DIR``'s, malformed phonopy folders
copies of ``$SOFTCALC_DATA_DIR/phonons/phonopy-examples/Si``; both default to ``../shared`` beside the
checkout. Everything is written under ``--work`` (a temporary folder by default).

Usage:
    python benchmarks/reliability_probe.py --out bench_out/reliability.json [--jobs 2] [--only md,hessian]
Writes the JSON report (counts per class, then per case: name, description, command, expected, class,
exit code, seconds, first line of stderr, the error line) and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOY_DIR = ROOT / "tests" / "plugin_fixture"
SHARED = ROOT.parent / "shared"
#: the clear error line: "softcalc COMMAND [SUBCOMMAND]: error: ..." (argparse's "softcalc: error:" too)
ERROR_LINE = re.compile(r"^softcalc(?: [\w-]+)*: error: ")
#: seconds a case may run; cells scaled by unit mistakes get less (they may hang until checked)
TIMEOUT = 60.0
SHORT_TIMEOUT = 30.0
CLASSES = (
    "clear-error", "traceback", "warned", "silent", "hang", "unclear-error", "ok", "control-failed", "skipped"
)
#: what marks a bad input that ran to the end as told to the user
WARNING = re.compile(r"\bWARNING\b|NOT recommended|not recommended")


@dataclass
class Case:
    """One command line (``{w}`` is the work folder), what it tries and what it should give."""

    name: str
    argv: str
    about: str
    expect: str = "error"  # "error" (a bad input) or "ok" (a control)
    timeout: float = TIMEOUT
    needs: tuple[str, ...] = ()  # files under {w} that setup must have made, else the case is skipped
    pending: str = ""  # the fix (by others) this case waits for, if any
    result: dict[str, Any] = field(default_factory=dict)


#: placeholders of Case.argv, replaced when a case runs ({w}: the work folder)
PLACEHOLDERS = {"{m}": "--model toy-morse", "{d}": "--data {w}/data.extxyz"}


def cases() -> list[Case]:
    """The probe's cases, grouped by command."""
    geometry, resume, fingerprint, overlap = (
        "geometry sanity", "MD resume checks", "correction fingerprint", "calibration overlap"
    )
    return [
        # ---- top level and `models`
        Case("models", "models", "list the models", expect="ok"),
        Case("unknown-command", "fitt {m}", "a command that does not exist"),
        # ---- evaluate: data, model, options, outputs
        Case("evaluate-ok", "evaluate {m} {d} --json {w}/out/eval.json --quiet", "good data", expect="ok"),
        Case("evaluate-missing-data", "evaluate {m} --data {w}/nope.extxyz --json {w}/out/e1.json",
             "data file that does not exist"),
        Case("evaluate-empty-data", "evaluate {m} --data {w}/empty.extxyz --json {w}/out/e2.json",
             "empty data file"),
        Case("evaluate-garbage-data", "evaluate {m} --data {w}/garbage.extxyz --json {w}/out/e3.json",
             "data file of text that is no structure"),
        Case("evaluate-binary-data", "evaluate {m} --data {w}/random.bin --json {w}/out/e4.json",
             "random bytes as data (unknown format)"),
        Case("evaluate-no-forces", "evaluate {m} --data {w}/si.xyz --json {w}/out/e5.json",
             "a structure without forces as data"),
        Case("evaluate-nan-forces", "evaluate {m} --data {w}/nan_forces.extxyz --json {w}/out/e6.json",
             "data whose forces hold NaN"),
        Case("evaluate-empty-folder", "evaluate {m} --data {w}/emptydir --json {w}/out/e7.json",
             "an empty folder as data"),
        Case("evaluate-unknown-element", "evaluate {m} --data {w}/cu.extxyz --json {w}/out/e8.json",
             "data with an element the model does not cover (Cu)"),
        Case("evaluate-no-group", "evaluate {m} {d} --groups Vacancy --json {w}/out/e9.json",
             "a --groups value no frame has"),
        Case("evaluate-cell-x1e4", "evaluate {m} --data {w}/data_x1e4.extxyz --json {w}/out/e10.json",
             "data frames ×1e4 (a unit mistake)", timeout=SHORT_TIMEOUT, pending=geometry),
        Case("evaluate-unknown-model", "evaluate --model chgnett {d} --json {w}/out/e11.json",
             "misspelt model name"),
        Case("evaluate-missing-weights", "evaluate --model {w}/none.model {d} --json {w}/out/e12.json",
             "a weights path that does not exist"),
        Case("evaluate-json-is-folder", "evaluate {m} {d} --json {w}/out", "--json names a folder"),
        Case("evaluate-json-unwritable", "evaluate {m} {d} --json /sys/softcalc-probe/e.json",
             "--json in a folder nobody may write"),
        Case("evaluate-scale-nan", "evaluate {m} {d} --scale nan --json {w}/out/e13.json", "--scale nan"),
        Case("evaluate-absent-cuda", "evaluate {m} {d} --device cuda:7 --json {w}/out/e14.json",
             "a CUDA device this machine does not have"),
        # ---- corrections
        Case("correction-missing", "evaluate {m} {d} --correction {w}/nope.json --json {w}/out/c1.json",
             "a correction file that does not exist"),
        Case("correction-truncated", "evaluate {m} {d} --correction {w}/corr_truncated.json "
             "--json {w}/out/c2.json", "a correction JSON cut in half"),
        Case("correction-no-model", "evaluate {m} {d} --correction {w}/corr_no_model.json "
             "--json {w}/out/c3.json", "a fitted correction without its model block", pending=fingerprint),
        Case("correction-other-model", "evaluate {m} {d} --correction {w}/corr_chgnet.json "
             "--json {w}/out/c4.json", "a correction fitted for CHGNet applied to another model"),
        Case("correction-bad-scale", "evaluate {m} {d} --correction {w}/corr_bad_scale.json "
             "--json {w}/out/c5.json", "a correction whose scale is a string"),
        Case("correction-is-report", "evaluate {m} {d} --correction {w}/report.json --json {w}/out/c6.json",
             "an evaluate report given as correction"),
        # ---- calibrate
        Case("calibrate-ok", "calibrate {m} {d} --test {w}/test.extxyz --bootstrap 50 --quiet "
             "--out {w}/out/corr.json", "good data and test data", expect="ok"),
        Case("calibrate-test-is-data", "calibrate {m} {d} --test {w}/data.extxyz --bootstrap 50 "
             "--out {w}/out/k1.json", "--test the same file as --data", pending=overlap),
        Case("calibrate-test-copy-of-data", "calibrate {m} {d} --test {w}/data_copy.extxyz --bootstrap 50 "
             "--out {w}/out/k2.json", "--test a copy of --data (same frames, other name)", pending=overlap),
        Case("calibrate-too-many-frames", "calibrate {m} {d} --frames 500 --bootstrap 9 --out {w}/out/k.json",
             "--frames larger than the data (nothing held out)", pending=overlap),
        Case("calibrate-zero-forces", "calibrate {m} --data {w}/zero_forces.extxyz --bootstrap 50 "
             "--out {w}/out/k4.json", "data of perfect crystals: all forces zero (λ undefined)"),
        Case("calibrate-out-is-data", "calibrate {m} {d} --out {w}/data.extxyz",
             "--out the data file itself (would destroy it)"),
        Case("calibrate-json-is-out", "calibrate {m} {d} --out {w}/out/k5.json --json {w}/out/k5.json",
             "--json and --out the same file"),
        Case("calibrate-plot-unwritable", "calibrate {m} {d} --out {w}/out/k6.json "
             "--plot /sys/softcalc-probe/p.png", "--plot in a folder nobody may write"),
        Case("calibrate-bad-range", "calibrate {m} {d} --temperature 900:300 --out {w}/out/k7.json",
             "--temperature with LOW > HIGH"),
        Case("calibrate-bad-phonopy", "calibrate {m} --data {w}/ph_nacl_forces --out {w}/out/k8.json",
             "a phonopy folder whose FORCE_SETS is of another supercell"),
        # ---- phonons
        Case("phonons-ok", "phonons {m} --phonopy-dir {w}/ph_good --json {w}/out/ph.json --quiet",
             "a good phonopy folder (Si)", expect="ok"),
        Case("phonons-nacl-force-sets", "phonons {m} --phonopy-dir {w}/ph_nacl_forces --json {w}/out/p1.json",
             "NaCl's FORCE_SETS in the Si folder"),
        Case("phonons-truncated-force-sets", "phonons {m} --phonopy-dir {w}/ph_truncated "
             "--json {w}/out/p2.json", "a FORCE_SETS cut in half"),
        Case("phonons-empty-yaml", "phonons {m} --phonopy-dir {w}/ph_empty_yaml --json {w}/out/p3.json",
             "an empty phonopy_disp.yaml"),
        Case("phonons-garbage-yaml", "phonons {m} --phonopy-dir {w}/ph_garbage_yaml --json {w}/out/p4.json",
             "a phonopy_disp.yaml that is not YAML"),
        Case("phonons-yaml-no-structure", "phonons {m} --phonopy-dir {w}/ph_no_structure "
             "--json {w}/out/p5.json", "a phonopy_disp.yaml without a structure"),
        Case("phonons-nan-force", "phonons {m} --phonopy-dir {w}/ph_nan --json {w}/out/p6.json",
             "a FORCE_SETS with a NaN force"),
        Case("phonons-no-force-sets", "phonons {m} --phonopy-dir {w}/ph_no_forces --json {w}/out/p7.json",
             "a folder without FORCE_SETS"),
        Case("phonons-dir-missing", "phonons {m} --phonopy-dir {w}/nope --json {w}/out/p8.json",
             "a phonopy folder that does not exist"),
        Case("phonons-unknown-elements", "phonons {m} --phonopy-dir {w}/ph_nacl --json {w}/out/p9.json",
             "NaCl for a model without Na and Cl"),
        # ---- hessian
        Case("hessian-ok", "hessian {w}/si.xyz {m} --out {w}/out/h.h5 --quiet", "8-atom Si", expect="ok"),
        Case("hessian-missing", "hessian {w}/nope.xyz {m} --out {w}/out/h1.h5", "missing structure file"),
        Case("hessian-empty", "hessian {w}/empty.extxyz {m} --out {w}/out/h2.h5", "empty structure file"),
        Case("hessian-nan", "hessian {w}/nan.extxyz {m} --out {w}/out/h3.h5", "NaN in the positions"),
        Case("hessian-unknown-element", "hessian {w}/cu.extxyz {m} --out {w}/out/h4.h5",
             "an element the model does not cover"),
        Case("hessian-overlapping-atoms", "hessian {w}/overlap.extxyz {m} --out {w}/out/h5.h5",
             "two atoms at the same place", pending=geometry),
        Case("hessian-cell-x0.05", "hessian {w}/si_x0.05.extxyz {m} --out {w}/out/h6.h5",
             "cell and positions ×0.05 (a unit mistake)", timeout=SHORT_TIMEOUT, pending=geometry),
        Case("hessian-cell-x1e4", "hessian {w}/si_x1e4.extxyz {m} --out {w}/out/h7.h5",
             "cell and positions ×1e4 (a unit mistake)", timeout=SHORT_TIMEOUT, pending=geometry),
        Case("hessian-out-unwritable", "hessian {w}/si.xyz {m} --out /sys/softcalc-probe/h.h5",
             "--out in a folder nobody may write"),
        Case("hessian-out-is-structure", "hessian {w}/si.xyz {m} --out {w}/si.xyz",
             "--out the structure file itself"),
        # ---- md, md-export, md-analyze
        Case("md-exists", "md {m} --structure {w}/si.xyz --steps 10 --traj {w}/traj.h5",
             "an existing trajectory without --resume or --overwrite", needs=("traj.h5",)),
        Case("md-resume-other-structure", "md {m} --structure {w}/ge.xyz --steps 10 --every 1 --resume "
             "--traj {w}/traj_r1.h5", "--resume a Si run with a Ge structure", needs=("traj_r1.h5",),
             pending=resume),
        Case("md-resume-other-model", "md --model chgnet --structure {w}/si.xyz --steps 10 --every 1 "
             "--resume --traj {w}/traj_r2.h5", "--resume a toy-morse run with CHGNet", needs=("traj_r2.h5",),
             pending=resume),
        Case("md-resume-scaled", "md {m} --scale 1.3 --structure {w}/si.xyz --steps 10 --every 1 --resume "
             "--traj {w}/traj_r3.h5", "--resume a bare run with a correction (another potential)",
             needs=("traj_r3.h5",), pending=resume),
        Case("md-resume-garbage", "md {m} --structure {w}/si.xyz --steps 10 --resume --traj {w}/random.h5",
             "--resume a file that is not HDF5"),
        Case("md-traj-unwritable", "md {m} --structure {w}/si.xyz --steps 10 --traj /sys/softcalc-probe/t.h5",
             "--traj in a folder nobody may write"),
        Case("md-nan", "md {m} --structure {w}/nan.extxyz --steps 10 --traj {w}/out/m1.h5",
             "NaN in the positions"),
        Case("md-cell-x0.05", "md {m} --structure {w}/si_x0.05.extxyz --steps 10 --traj {w}/out/m2.h5",
             "cell and positions ×0.05 (a unit mistake)", timeout=SHORT_TIMEOUT, pending=geometry),
        Case("md-thermostat-in-nve", "md {m} --structure {w}/si.xyz --steps 10 --thermostat langevin "
             "--traj {w}/out/m3.h5", "a thermostat for an NVE run"),
        Case("md-export-missing", "md-export {w}/nope.h5 {w}/out/x.xyz", "export of a missing trajectory"),
        Case("md-analyze-garbage", "md-analyze {w}/random.h5 --out {w}/out/ana",
             "analysis of a file that is not HDF5"),
        Case("md-analyze-short", "md-analyze {w}/traj.h5 --out {w}/out/ana2",
             "analysis of a trajectory of 5 frames (too short for a drift fit)", needs=("traj.h5",)),
        Case("md-analyze-bad-phonons", "md-analyze {w}/traj_long.h5 --phonons {w}/ph_truncated "
             "--out {w}/out/ana3", "analysis against a malformed phonopy folder", needs=("traj_long.h5",)),
        # ---- bench
        Case("bench-softening-missing-data", "bench softening --models toy-morse --data {w}/nope "
             "--out {w}/out/b1", "missing data"),
        Case("bench-softening-out-is-file", "bench softening --models toy-morse --out {w}/si.xyz",
             "--out names a file (a folder is expected)"),
        Case("bench-softening-garbage-h5", "bench softening --from-h5 {w}/random.h5 --out {w}/out/b2",
             "--from-h5 a file that is not HDF5"),
        Case("bench-phonons-bad-folder", "bench phonons --models toy-morse --data {w}/ph_truncated "
             "--out {w}/out/b3", "a malformed phonopy folder"),
        # ---- damaged weights
        Case("weights-mace-truncated", "evaluate --model {w}/w/gst_truncated.model {d} --json {w}/out/w.json",
             "a MACE .model cut in half", needs=("w/gst_truncated.model",)),
        Case("weights-mace-random", "evaluate --model {w}/w/random.model {d} --json {w}/out/w2.json",
             "random bytes as a MACE .model"),
        Case("weights-matgl-state", "evaluate --model {w}/w/m3gnet_state {d} --json {w}/out/w3.json",
             "an M3GNet folder whose state.pt is cut", needs=("w/m3gnet_state",)),
        Case("weights-matgl-overwritten", "evaluate --model {w}/w/m3gnet_flip {d} --json {w}/out/w4.json",
             "an M3GNet folder with 64 bytes of model.pt changed", needs=("w/m3gnet_flip",)),
        Case("weights-chgnet-random", "evaluate --model {w}/w/random.pth.tar {d} --json {w}/out/w5.json",
             "random bytes as a CHGNet checkpoint"),
        Case("weights-chgnet-truncated-pt", "evaluate --model {w}/w/chgnet_truncated.pt {d} "
             "--json {w}/out/w6.json", "a CHGNet checkpoint cut in half, named .pt",
             needs=("w/chgnet_truncated.pt",)),
    ]


# ------------------------------------------------------------------------------------------- setup
def _write_frames(path: Path, frames: list) -> None:
    from ase.io import write

    write(path, frames, format="extxyz")


def setup(work: Path, env: dict[str, str]) -> list[str]:
    """Write every input the cases use under ``work``; returns notes on what could not be made."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    sys.path.insert(0, str(TOY_DIR))
    from softcalc_toy import ToyMorse

    from softcalc import ModelCalculator

    notes: list[str] = []
    (work / "out").mkdir(parents=True, exist_ok=True)
    (work / "emptydir").mkdir(exist_ok=True)
    toy = ModelCalculator(ToyMorse())
    rng = np.random.default_rng(7)

    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.rattle(0.02, seed=1)
    si.write(work / "si.xyz")
    ge = bulk("Ge", "diamond", a=5.66, cubic=True)
    ge.write(work / "ge.xyz")

    def labelled(atoms, scale: float = 1.25):
        atoms = atoms.copy()
        atoms.calc = toy
        forces, energy = atoms.get_forces() * scale, atoms.get_potential_energy()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        return atoms

    frames = []
    for k in range(12):
        atoms = si.copy()
        atoms.rattle(0.08, seed=10 + k)
        frames.append(labelled(atoms))
    _write_frames(work / "data.extxyz", frames[:8])
    big = []
    for atoms in frames[:2]:
        atoms = atoms.copy()
        atoms.set_cell(atoms.cell * 1e4, scale_atoms=True)
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=frames[0].get_forces())
        big.append(atoms)
    _write_frames(work / "data_x1e4.extxyz", big)
    shutil.copyfile(work / "data.extxyz", work / "data_copy.extxyz")
    _write_frames(work / "test.extxyz", frames[8:])
    _write_frames(work / "zero_forces.extxyz", [labelled(si.copy(), 0.0) for _ in range(3)])
    nan = labelled(frames[0])
    bad = nan.get_forces()
    bad[0, 0] = np.nan
    nan.calc = SinglePointCalculator(nan, energy=0.0, forces=bad)
    _write_frames(work / "nan_forces.extxyz", [nan])
    cu = bulk("Cu", "fcc", a=3.61, cubic=True)
    cu.calc = SinglePointCalculator(cu, energy=0.0, forces=rng.normal(size=(len(cu), 3)))
    _write_frames(work / "cu.extxyz", [cu])
    (work / "empty.extxyz").write_text("")
    (work / "empty.json").write_text("")
    (work / "garbage.extxyz").write_text("this is not\na structure file\n")
    (work / "random.bin").write_bytes(rng.bytes(4096))
    (work / "random.h5").write_bytes(rng.bytes(4096))
    nan_atoms = si.copy()
    nan_atoms.positions[3, 1] = np.nan
    _write_frames(work / "nan.extxyz", [nan_atoms])
    overlap = si.copy()
    overlap.positions[1] = overlap.positions[0]
    _write_frames(work / "overlap.extxyz", [overlap])
    for name, factor in (("x0.05", 0.05), ("x1e4", 1e4)):
        scaled = si.copy()
        scaled.set_cell(si.cell * factor, scale_atoms=True)
        _write_frames(work / f"si_{name}.extxyz", [scaled])

    # corrections (as `softcalc calibrate` writes them) and broken variants
    good = {
        "schema": "softcalc.correction/1", "kind": "global", "scale": 1.2, "species_scales": {},
        "reference_energies": {}, "model": {"family": "toy", "name": "toy-morse", "weights_sha256": None},
        "regime": "own-material", "recommended": True, "statistics": {"n_frames": 8}, "provenance": {},
    }
    variants = {
        "corr_no_model": {k: v for k, v in good.items() if k != "model"},
        "corr_null_model": {**good, "model": None},
        "corr_chgnet": {**good, "model": {**good["model"], "family": "chgnet", "name": "chgnet-0.3.0"}},
        "corr_bad_scale": {**good, "scale": "1.2"},
        "report": {"model": "toy-morse", "n_frames": 8, "softening_scale": 0.8},
    }
    for name, content in variants.items():
        (work / f"{name}.json").write_text(json.dumps(content, indent=2))
    text = json.dumps(good, indent=2)
    (work / "corr_truncated.json").write_text(text[: len(text) // 2])

    _phonopy_folders(work, notes)
    _damaged_weights(work, notes)

    # trajectories to resume (each case gets its own copy: a resume that should fail may change it) and
    # one long enough to analyse
    for name, steps in (("traj.h5", 4), ("traj_long.h5", 60)):
        run = subprocess.run(
            [*_softcalc_command(), "md", "--model", "toy-morse", "--structure", str(work / "si.xyz"),
             "--steps", str(steps), "--every", "1", "--quiet", "--traj", str(work / name)],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=2 * TIMEOUT,
        )
        if run.returncode != 0 or not (work / name).exists():
            notes.append(f"setup md run for {name} failed (exit {run.returncode}): {_last_line(run.stderr)}")
    if (work / "traj.h5").exists():
        for k in (1, 2, 3):
            shutil.copyfile(work / "traj.h5", work / f"traj_r{k}.h5")
    return notes


def _phonopy_folders(work: Path, notes: list[str]) -> None:
    examples = Path(os.environ["SOFTCALC_DATA_DIR"]) / "phonons" / "phonopy-examples"
    if not (examples / "Si").is_dir():
        notes.append(f"no phonopy examples at {examples}: phonopy cases fail as missing folders")
        return

    def si(name: str) -> Path:
        folder = work / name
        shutil.copytree(examples / "Si", folder, copy_function=shutil.copyfile, dirs_exist_ok=True)
        os.chmod(folder, 0o755)
        return folder

    si("ph_good")
    shutil.copyfile(examples / "NaCl" / "FORCE_SETS", si("ph_nacl_forces") / "FORCE_SETS")
    lines = (examples / "Si" / "FORCE_SETS").read_text().splitlines()
    (si("ph_truncated") / "FORCE_SETS").write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    (si("ph_empty_forces") / "FORCE_SETS").write_text("")
    (si("ph_empty_yaml") / "phonopy_disp.yaml").write_text("")
    (si("ph_garbage_yaml") / "phonopy_disp.yaml").write_text("phonopy: [unclosed\n  \tdim: 2 2 2\n")
    (si("ph_no_structure") / "phonopy_disp.yaml").write_text("phonopy:\n  version: 2.20.0\n")
    text = (examples / "Si" / "FORCE_SETS").read_text()
    (si("ph_nan") / "FORCE_SETS").write_text(text.replace("-0.0941483300", "nan", 1))
    (si("ph_no_forces") / "FORCE_SETS").unlink()
    shutil.copytree(examples / "NaCl", work / "ph_nacl", copy_function=shutil.copyfile, dirs_exist_ok=True)


def _damaged_weights(work: Path, notes: list[str]) -> None:
    rng = np.random.default_rng(3)
    folder = work / "w"
    folder.mkdir(exist_ok=True)
    (folder / "random.model").write_bytes(rng.bytes(4096))
    (folder / "random.pth.tar").write_bytes(rng.bytes(4096))
    (folder / "empty.model").write_bytes(b"")
    models = Path(os.environ["SOFTCALC_MODEL_DIR"])

    def truncated(src: Path, dst: Path) -> None:
        data = src.read_bytes()
        dst.write_bytes(data[: len(data) // 2])

    if (models / "mace" / "mace_swa.model").is_file():
        truncated(models / "mace" / "mace_swa.model", folder / "gst_truncated.model")
    m3gnet = models / "matgl" / "M3GNet-MP-2021.2.8-PES"
    if m3gnet.is_dir():
        for name in ("m3gnet_state", "m3gnet_flip"):
            shutil.copytree(m3gnet, folder / name, copy_function=shutil.copyfile, dirs_exist_ok=True)
            os.chmod(folder / name, 0o755)
        truncated(m3gnet / "state.pt", folder / "m3gnet_state" / "state.pt")
        data = bytearray((m3gnet / "model.pt").read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
        (folder / "m3gnet_flip" / "model.pt").write_bytes(bytes(data))
    try:
        from softcalc_chgnet._plugin import find_checkpoint

        truncated(find_checkpoint("chgnet"), folder / "chgnet_truncated.pt")
    except Exception as exc:  # chgnet not installed: its case is skipped
        notes.append(f"no CHGNet checkpoint to damage: {exc}")


# ------------------------------------------------------------------------------------------ running
def _softcalc_command() -> list[str]:
    script = Path(sys.executable).parent / "softcalc"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "softcalc.cli"]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def classify(case: Case, code: int | None, stderr: str, stdout: str = "") -> str:
    """The class of one run (see the module docstring)."""
    if code is None:
        return "hang"
    if case.expect == "ok":
        return "ok" if code == 0 else "control-failed"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if code == 0:
        return "warned" if WARNING.search(stdout + stderr) else "silent"
    errors = [line for line in stderr.splitlines() if ERROR_LINE.match(line)]
    return "clear-error" if code == 2 and len(errors) == 1 else "unclear-error"


def run_case(case: Case, work: Path, env: dict[str, str]) -> dict[str, Any]:
    missing = [n for n in case.needs if not (work / n).exists()]
    text = case.argv
    for key, value in PLACEHOLDERS.items():
        text = text.replace(key, value)
    argv = [a.replace("{w}", str(work)) for a in shlex.split(text)]
    command = shlex.join(["softcalc", *argv])
    base = {"name": case.name, "description": case.about, "command": command, "expected": case.expect,
            "pending": case.pending or None}
    if missing:
        return {**base, "class": "skipped", "exit_code": None, "seconds": 0.0,
                "stderr_first_line": f"setup did not make {', '.join(missing)}", "error_line": ""}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*_softcalc_command(), *argv], env=env, cwd=work, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=case.timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the case's own process group
        stdout, stderr = proc.communicate()
        code = None
    seconds = time.perf_counter() - start
    lines = [line for line in stderr.splitlines() if line.strip()]
    error = next((line for line in lines if ERROR_LINE.match(line)), "")
    warning = next((line for line in stdout.splitlines() if WARNING.search(line)), "")
    return {**base, "class": classify(case, code, stderr, stdout), "exit_code": code,
            "seconds": round(seconds, 1), "stderr_first_line": lines[0] if lines else "", "error_line": error,
            "last_line": lines[-1] if lines else "", "warning": warning}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--work", type=Path, help="folder for inputs and outputs (default: a temporary one)")
    p.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    p.add_argument("--only", help="comma-separated name prefixes of the cases to run (e.g. md,weights)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    args = p.parse_args()

    selected = cases()
    if args.only:
        prefixes = tuple(s.strip() for s in args.only.split(",") if s.strip())
        selected = [c for c in selected if c.name.startswith(prefixes)]
    if args.list:
        for c in selected:
            print(f"{c.name:32s} {c.about}")
        print(f"{len(selected)} cases")
        return 0

    os.environ.setdefault("SOFTCALC_MODEL_DIR", str(SHARED / "models"))
    os.environ.setdefault("SOFTCALC_DATA_DIR", str(SHARED / "data"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOY_DIR), env.get("PYTHONPATH")]))
    env.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    env.setdefault("OMP_NUM_THREADS", "1")  # cases run side by side on few cores

    temporary = None
    if args.work is None:
        temporary = tempfile.TemporaryDirectory(prefix="softcalc-probe-")
        work = Path(temporary.name)
    else:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    notes = setup(work, env)
    for note in notes:
        print(f"setup: {note}", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda c: run_case(c, work, env), selected))
    counts = {name: sum(r["class"] == name for r in results) for name in CLASSES}
    report = {
        "counts": {k: v for k, v in counts.items() if v},
        "n_cases": len(results),
        "seconds": round(time.perf_counter() - start, 1),
        "setup_notes": notes,
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for r in results:
        shown = r["error_line"] or r.get("warning") or r.get("last_line", "") or r["stderr_first_line"]
        print(f"{r['class']:15s} {r['exit_code']!s:>4s} {r['seconds']:6.1f}s  {r['name']:32s} {shown[:110]}")
    print(", ".join(f"{k}: {v}" for k, v in report["counts"].items()) + f"  ({len(results)} cases)")
    print(f"report: {args.out}")
    if temporary is not None:
        temporary.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
