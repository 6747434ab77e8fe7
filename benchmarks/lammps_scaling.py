"""LAMMPS at scale: time per MD step of pair_style softcalc on 2 MPI ranks, three ways.

- ``gather`` (``decompose no``): rank 0 evaluates the whole periodic box;
- ``field`` (``decompose field``): every rank evaluates its atoms plus a ghost shell of the model's
  whole receptive field;
- ``layers`` (``decompose yes``): a ghost shell of one exchange cutoff, node features exchanged before
  every message-passing layer (softcalc.exchange).

For each model and size (diamond Si, or Ge for models without Si, 8 n³ atoms, rattled, 300 K
velocities): loop time per step of the ``lmp`` executable (one warm-up step outside the timing; the
median over ``--repeats`` interleaved runs, and each decomposed run over the gather run next to it),
the atoms and ghost atoms of every rank (from the pair style's log line) and the peak resident
memory of every rank (``/usr/bin/time``).
Variants run one after the other per size; a variant whose ghost shell would not fit in memory is
skipped with the reason (``--max-cluster``). Results: ``<out>/scaling.json`` and ``scaling.png``.

    .venv/bin/python benchmarks/lammps_scaling.py --models m3gnet mace:/path/to/model.model \\
        --sizes 512 4096 32768 --steps 3 --out bench_out/lammps-scaling
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from lammps_overhead import TIMESTEP_PS

from softcalc import SoftCorrectedCalc
from softcalc.fileio import write_json
from softcalc.lammps import executable, plugin_environment
from softcalc.lammps.inputs import setup_commands, write_data

VARIANTS = {"gather": False, "field": "field", "layers": True}
#: diamond lattice constants (Å) of the elements the benchmark builds its crystal from
LATTICE = {"Si": 5.43, "Ge": 5.65}


def diamond(natoms: int, element: str) -> Atoms:
    """Diamond ``element`` with ``natoms`` = 8 n³ atoms, rattled by 0.02 Å."""
    n = round((natoms / 8) ** (1 / 3))
    if 8 * n**3 != natoms:
        raise SystemExit(f"--sizes: {natoms} is not 8 n^3 (64, 512, 4096, 32768, ...)")
    atoms = bulk(element, "diamond", a=LATTICE[element], cubic=True).repeat(n)
    atoms.rattle(0.02, seed=1)
    return atoms


def ghost_estimate(atoms_per_side: float, shell: float, nprocs: int = 2) -> float:
    """Atoms one rank evaluates with a ghost ``shell`` (Å) around its half of a cubic box of side
    ``atoms_per_side`` (Å), as a multiple of its own atoms (the box split along x)."""
    half = atoms_per_side / nprocs
    return (half + 2 * shell) * (atoms_per_side + 2 * shell) ** 2 / (half * atoms_per_side**2)


def run_lmp(
    input_name: str, nprocs: int, workdir: Path, what: str, memory: bool = False
) -> tuple[subprocess.CompletedProcess, float]:
    """``mpirun -np nprocs lmp -in input_name`` in ``workdir`` (each rank under ``/usr/bin/time`` when
    ``memory``): the finished process and LAMMPS' loop time per step of the last run (s)."""
    timer = ["/usr/bin/time", "-f", "MAXRSS_KB %M"] if memory else []
    cmd = [
        str(executable("mpirun")),
        "-np",
        str(nprocs),
        *timer,
        str(executable("lmp")),
        "-in",
        input_name,
        "-log",
        "none",
        "-nocite",
    ]
    proc = subprocess.run(cmd, cwd=workdir, env=plugin_environment(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lmp failed ({what}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    loop = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps", proc.stdout)[-1]
    return proc, float(loop[0]) / int(loop[2])


def run_variant(atoms, model: str, decompose: bool | str, steps: int, nprocs: int, workdir: Path) -> dict:
    """One ``lmp`` run under mpirun: loop time per step, atoms/ghosts per rank, peak RSS per rank."""
    elements = write_data(workdir / "data.lmp", atoms)
    lines = [
        *setup_commands(workdir / "data.lmp", elements, model, scale=1.1, decompose=decompose),
        "neighbor 1.0 bin",
        "velocity all create 300 4928459 mom yes dist gaussian",
        f"timestep {TIMESTEP_PS}",
        "fix md all nve",
        f"thermo {steps}",
        "run 1",
        f"run {steps}",
    ]
    (workdir / "in.bench").write_text("\n".join(lines) + "\n")
    proc, seconds = run_lmp("in.bench", nprocs, workdir, f"decompose {decompose}", memory=True)
    counts = re.findall(r"atoms/ghosts per rank: ([0-9/ ]+)", proc.stdout)
    per_rank = [tuple(map(int, c.split("/"))) for c in counts[-1].split()] if counts else []
    rss = [int(v) / 1024**2 for v in re.findall(r"MAXRSS_KB (\d+)", proc.stderr)]
    return {
        "s_per_step": seconds,
        "atoms_ghosts_per_rank": per_rank,
        "peak_rss_GiB_per_rank": rss,
    }


SLAB_INPUT = """units metal
atom_style atomic
lattice diamond 5.431
region box block 0 2 0 2 0 6
create_box 1 box
region slab block 0 2 0 2 0 2
create_atoms 1 region slab
mass 1 28.0855
pair_style softcalc {model} scale 1.1 decompose {decompose}
pair_coeff * * Si
velocity all create 300 12345
fix md all nve
thermo_style custom step pe etotal
thermo 6
run 6
"""


def slab(model: str, nprocs: int, workdir: Path) -> dict:
    """The 72-atom Si slab in a box three times its height (the upper subdomain holds no atoms), 6 NVE
    steps on ``nprocs`` ranks, ``decompose no`` against ``decompose yes``: loop time per step."""
    out = {}
    for decompose in ("no", "yes"):
        (workdir / "in.slab").write_text(SLAB_INPUT.format(model=model, decompose=decompose))
        proc, out[f"decompose_{decompose}_s_per_step"] = run_lmp(
            "in.slab", nprocs, workdir, f"slab {decompose}"
        )
        out[f"decompose_{decompose}_etotal"] = float(proc.stdout.split("Step")[-1].split("\n")[2].split()[-1])
    out["ratio_yes_over_no"] = out["decompose_yes_s_per_step"] / out["decompose_no_s_per_step"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["m3gnet"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 4096, 32768])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run the variants this many times, interleaved (timings on a shared machine drift)",
    )
    parser.add_argument(
        "--max-cluster",
        type=float,
        default=60000,
        help="skip a variant whose rank would evaluate more atoms than this (memory)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench_out/lammps-scaling"))
    parser.add_argument("--slab", action="store_true", help="only the slab with an empty subdomain")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.slab:
        with tempfile.TemporaryDirectory() as tmp:
            result = {model: slab(model, args.nprocs, Path(tmp)) for model in args.models}
        print(json.dumps(result, indent=1))
        write_json(args.out / "slab.json", result)
        return 0
    path = args.out / "scaling.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {(r["model"], r["natoms"], r["variant"], r.get("repeat", 0)) for r in rows}
    for model in args.models:
        info = SoftCorrectedCalc(model).info
        adapter = SoftCorrectedCalc(model).active.model
        shells = {"gather": 0.0, "field": info.receptive_field + 1.0, "layers": adapter.exchange_cutoff + 1.0}
        for natoms in args.sizes:
            atoms = diamond(natoms, "Si" if "Si" in info.elements else "Ge")
            side = float(atoms.cell[0, 0])
            for repeat in range(args.repeats):
                for variant in args.variants:
                    if (model, natoms, variant, repeat) in done:
                        continue
                    estimate = ghost_estimate(side, shells[variant], args.nprocs) * natoms / args.nprocs
                    row = {
                        "model": model,
                        "natoms": natoms,
                        "variant": variant,
                        "repeat": repeat,
                        "nprocs": args.nprocs,
                        "ghost_shell_A": shells[variant],
                        "load_average_1min": os.getloadavg()[0],
                    }
                    if variant != "gather" and estimate > args.max_cluster:
                        row["skipped"] = f"a rank would evaluate ~{estimate:.0f} atoms (> --max-cluster)"
                    else:
                        with tempfile.TemporaryDirectory() as tmp:
                            row.update(
                                run_variant(
                                    atoms, model, VARIANTS[variant], args.steps, args.nprocs, Path(tmp)
                                )
                            )
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    write_json(path, {"rows": rows, "ratios": ratios(rows), "cpu_count": os.cpu_count()})
    print(json.dumps(ratios(rows), indent=1))
    plot(rows, args.out / "scaling.png")
    return 0


def ratios(rows: list[dict]) -> list[dict]:
    """Per model, size and decomposed variant: its time per step over the gather path's in the same
    repeat (the two ran back to back), every repeat and the median."""
    timed = {
        (r["model"], r["natoms"], r["variant"], r.get("repeat", 0)): r["s_per_step"]
        for r in rows
        if "s_per_step" in r
    }
    out = []
    for model, natoms, variant in sorted({key[:3] for key in timed if key[2] != "gather"}):
        per_repeat = [
            seconds / timed[(model, natoms, "gather", repeat)]
            for (m, n, v, repeat), seconds in sorted(timed.items())
            if (m, n, v) == (model, natoms, variant) and (model, natoms, "gather", repeat) in timed
        ]
        if per_repeat:
            out.append(
                {
                    "model": model,
                    "natoms": natoms,
                    "variant": variant,
                    "over_gather": per_repeat,
                    "median_over_gather": float(np.median(per_repeat)),
                }
            )
    return out


def plot(rows: list[dict], path: Path) -> None:
    """Time per step against atoms, one panel per model, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softcalc.plots import save_figure

    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for variant in VARIANTS:
            times: dict[int, list[float]] = {}
            for r in rows:
                if r["model"] == model and r["variant"] == variant and "s_per_step" in r:
                    times.setdefault(r["natoms"], []).append(r["s_per_step"])
            pts = sorted((natoms, float(np.median(t))) for natoms, t in times.items())
            if pts:
                ax.loglog(*np.array(pts).T, "o-", label=variant)
        ax.set(title=Path(model).name, xlabel="atoms", ylabel="s per MD step (2 ranks)")
        ax.legend()
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
