"""Cost of running a corrected uMLIP through LAMMPS (pair_style softcalc) instead of ASE.

Modes (results as JSON in --out):

- ``overhead``: per-MD-step wall time of LAMMPS+plugin (lammps Python module, in process) vs the same
  SoftCorrectedCalc driving ASE's VelocityVerlet, for each --sizes (atoms of diamond Si), medians of
  --repeats interleaved runs (order alternating); target ratio LAMMPS/ASE <= 1.10. Also the `lmp`
  executable on 1 and 2 MPI ranks (LAMMPS' own loop time).
- ``decompose``: per-step loop time of the `lmp` executable on 1 and 2 MPI ranks, gather path
  (``decompose no``) vs decomposed path (``decompose yes``), for each --sizes; with the ghost atoms one
  rank holds (the ghost shell is the model's receptive field plus the neighbour skin) and the load average.
- ``drift``: NVE, 1 fs, --steps steps of 64-atom Si from 300 K (same initial velocities) in LAMMPS
  or in ASE (--engine): total-energy drift (linear fit) and largest excursion.

Both engines use one torch thread (creating a LAMMPS instance sets torch to one thread, so ASE is
timed the same way). Example:

    .venv/bin/python benchmarks/lammps_overhead.py overhead --model chgnet --scale 1.1 --out bench_out/lammps
    .venv/bin/python benchmarks/lammps_overhead.py decompose --model toy-morse --sizes 512 4096
    .venv/bin/python benchmarks/lammps_overhead.py drift --engine lammps --steps 1000 --out bench_out/lammps
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.md.verlet import VelocityVerlet

from softcalc import SoftCorrectedCalc
from softcalc.fileio import write_json
from softcalc.lammps import executable, open_lammps, plugin_environment, plugin_path
from softcalc.lammps.inputs import setup_commands, write_data

TIMESTEP_PS = 0.001


def silicon(natoms: int, seed: int = 0) -> Atoms:
    """Diamond Si with ``natoms`` = 8 n³ atoms, rattled by 0.02 Å."""
    n = round((natoms / 8) ** (1 / 3))
    if 8 * n**3 != natoms:
        raise SystemExit(f"--sizes: {natoms} is not 8 n^3 (64, 216, 512, ...)")
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(n)
    atoms.rattle(0.02, seed=seed)
    return atoms


def thermalised(atoms: Atoms, temperature: float, seed: int) -> Atoms:
    atoms = atoms.copy()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms


def lammps_md(atoms: Atoms, pair: dict, steps: int, thermo_every: int, workdir: Path):
    """Open LAMMPS on ``atoms`` (velocities copied) with fix nve; returns the instance."""
    elements = write_data(workdir / "data.lmp", atoms)
    lmp = open_lammps()
    lmp.commands_list(setup_commands(workdir / "data.lmp", elements, pair["model"], **pair["options"]))
    v = atoms.get_velocities() * 1000 * units.fs  # ASE velocity units -> Å/ps
    lmp.numpy.extract_atom("v")[: len(atoms)] = v  # one rank: atoms stay in file (ID) order
    lmp.commands_list([f"timestep {TIMESTEP_PS}", "fix md all nve", f"thermo {thermo_every}",
                       "thermo_style custom step pe ke etotal"])
    return lmp


def time_lammps(atoms: Atoms, pair: dict, steps: int, workdir: Path) -> float:
    lmp = lammps_md(atoms, pair, steps, thermo_every=steps, workdir=workdir)
    try:
        lmp.command("run 2")  # set-up and first calls outside the timing
        start = time.perf_counter()
        lmp.command(f"run {steps} pre no post no")
        return (time.perf_counter() - start) / steps
    finally:
        lmp.close()


def time_ase(atoms: Atoms, calc: SoftCorrectedCalc, steps: int) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    md = VelocityVerlet(atoms, timestep=TIMESTEP_PS * 1000 * units.fs)
    md.run(2)
    start = time.perf_counter()
    md.run(steps)
    return (time.perf_counter() - start) / steps


def time_lmp_ranks(atoms: Atoms, pair: dict, steps: int, nprocs: int, workdir: Path) -> float:
    """Per-step loop time reported by the `lmp` executable on ``nprocs`` MPI ranks."""
    elements = write_data(workdir / "data.lmp", atoms)
    lines = [*setup_commands(workdir / "data.lmp", elements, pair["model"], **pair["options"]),
             "velocity all create 300 4928459 mom yes dist gaussian", f"timestep {TIMESTEP_PS}",
             "fix md all nve", f"thermo {steps}", "run 2", f"run {steps}"]
    (workdir / "in.bench").write_text("\n".join(lines) + "\n")
    launcher = [str(executable("mpirun")), "-np", str(nprocs)] if nprocs > 1 else []
    proc = subprocess.run([*launcher, str(executable("lmp")), "-in", "in.bench", "-log", "none", "-nocite"],
                          cwd=workdir, env=plugin_environment(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lmp failed on {nprocs} rank(s):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    loop = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps", proc.stdout)[-1]
    assert int(loop[1]) == nprocs and int(loop[2]) == steps
    return float(loop[0]) / steps


def ghost_atoms(atoms: Atoms, pair: dict, workdir: Path) -> int:
    """Ghost atoms a single rank holds with the decomposed path (after one ``run 0``)."""
    elements = write_data(workdir / "data.lmp", atoms)
    lmp = open_lammps()
    try:
        lmp.commands_list([*setup_commands(workdir / "data.lmp", elements, pair["model"], **pair["options"],
                                           decompose=True), "run 0"])
        return int(lmp.extract_setting("nghost"))
    finally:
        lmp.close()


def decomposition(args: argparse.Namespace, pair: dict) -> dict:
    """1 vs 2 ranks, gather vs decomposed path, per --sizes."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            atoms = thermalised(silicon(n), 300.0, seed=1)
            row: dict = {"natoms": n, "steps": args.steps,
                         "ghost_atoms_1rank": ghost_atoms(atoms, pair, Path(tmp))}
            t = {}
            for path, decompose in (("gather", False), ("decomposed", True)):
                variant = {"model": pair["model"], "options": {**pair["options"], "decompose": decompose}}
                for nprocs in (1, 2):
                    t[path, nprocs] = time_lmp_ranks(atoms, variant, args.steps, nprocs, Path(tmp))
                    row[f"{path}_{nprocs}rank_s_per_step"] = t[path, nprocs]
            row["ghost_shell_cost_1rank"] = t["decomposed", 1] / t["gather", 1]
            row["speedup_decomposed_2rank_over_1rank"] = t["decomposed", 1] / t["decomposed", 2]
            row["speedup_decomposed_2rank_over_gather_1rank"] = t["gather", 1] / t["decomposed", 2]
            row["load_average_1min"] = os.getloadavg()[0]
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {"rows": rows, "cpu_count": os.cpu_count()}


def overhead(args: argparse.Namespace, pair: dict) -> dict:
    torch.set_num_threads(1)
    calc = SoftCorrectedCalc(pair["model"], **pair["options"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            atoms = thermalised(silicon(n), 300.0, seed=1)
            samples: dict[str, list[float]] = {"lammps": [], "ase": []}
            for repeat in range(args.repeats):  # interleaved, order alternating: no engine is always first
                for engine in (("lammps", "ase") if repeat % 2 == 0 else ("ase", "lammps")):
                    torch.set_num_threads(1)
                    if engine == "lammps":
                        samples[engine].append(time_lammps(atoms, pair, args.steps, Path(tmp)))
                    else:
                        samples[engine].append(time_ase(atoms, calc, args.steps))
            t_lmp, t_ase = (float(np.median(samples[k])) for k in ("lammps", "ase"))
            row = {"natoms": n, "steps": args.steps, "repeats": args.repeats, "lammps_s_per_step": t_lmp,
                   "ase_s_per_step": t_ase, "ratio_lammps_over_ase": t_lmp / t_ase,
                   "samples_s_per_step": samples, "load_average_1min": os.getloadavg()[0]}
            if n in args.rank_sizes:
                ranks = {p: time_lmp_ranks(atoms, pair, args.steps, p, Path(tmp)) for p in (1, 2)}
                row |= {"lmp_1rank_s_per_step": ranks[1], "lmp_2rank_s_per_step": ranks[2],
                        "ratio_2rank_over_1rank": ranks[2] / ranks[1]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {"rows": rows}


def drift(args: argparse.Namespace, pair: dict) -> dict:
    atoms = thermalised(silicon(64), 300.0, seed=2)
    every = 10
    times, etot = [], []
    start = time.perf_counter()
    if args.engine == "lammps":
        with tempfile.TemporaryDirectory() as tmp:
            lmp = lammps_md(atoms, pair, args.steps, thermo_every=every, workdir=Path(tmp))
            try:
                record = f'"$(step) $(etotal:%.10f)" file {tmp}/etot.txt screen no'
                lmp.command(f"fix log all print {every} {record}")
                lmp.command(f"run {args.steps}")
                data = np.loadtxt(f"{tmp}/etot.txt", comments="#")
            finally:
                lmp.close()
        times, etot = list(data[:, 0] * TIMESTEP_PS), list(data[:, 1])
    else:
        torch.set_num_threads(1)
        work = atoms.copy()
        work.calc = SoftCorrectedCalc(pair["model"], **pair["options"])
        md = VelocityVerlet(work, timestep=TIMESTEP_PS * 1000 * units.fs)

        def log() -> None:
            times.append(md.nsteps * TIMESTEP_PS)
            etot.append(work.get_potential_energy() + work.get_kinetic_energy())

        md.attach(log, interval=every)
        md.run(args.steps)
    t, e = np.array(times), np.array(etot) / len(atoms)
    slope = np.polyfit(t, e, 1)[0]
    return {"engine": args.engine, "natoms": len(atoms), "steps": args.steps, "timestep_fs": 1.0,
            "temperature_K": 300.0, "drift_meV_per_atom_per_ps": 1000 * slope,
            "max_excursion_meV_per_atom": 1000 * float(np.abs(e - e[0]).max()),
            "wall_s": time.perf_counter() - start, "time_ps": t.tolist(), "etotal_eV_per_atom": e.tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["overhead", "decompose", "drift"])
    parser.add_argument("--model", default="chgnet")
    parser.add_argument("--scale", type=float, default=None)
    parser.add_argument("--correction", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--rank-sizes", type=int, nargs="*", default=[64],
                        help="sizes also run on the lmp executable with 1 and 2 ranks")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (overhead: 10, drift: 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved LAMMPS/ASE repeats (median)")
    parser.add_argument("--engine", choices=["lammps", "ase"], default="lammps")
    parser.add_argument("--out", type=Path, default=Path("bench_out/lammps"))
    args = parser.parse_args()
    args.steps = args.steps or (1000 if args.mode == "drift" else 10)
    correction = str(Path(args.correction).resolve()) if args.correction else None  # lmp runs elsewhere
    options = {k: v for k, v in {"scale": args.scale, "correction": correction}.items() if v is not None}
    pair = {"model": args.model, "options": options}
    plugin_path()  # build before any timing
    modes = {"overhead": overhead, "decompose": decomposition, "drift": drift}
    result = modes[args.mode](args, pair)
    result |= {"model": args.model, **options, "torch_threads": 1, "command": " ".join(sys.argv)}
    name = f"lammps_{args.mode}" + (f"_{args.engine}" if args.mode == "drift" else "") + ".json"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / name, result)
    print(f"written {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
