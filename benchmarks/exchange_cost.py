"""What one rank of ``decompose yes`` costs, emulated in one process, and the efficiency it implies.

A rank of LAMMPS' per-layer path evaluates its subdomain's atoms plus every periodic image within one
ghost shell (the model's exchange cutoff plus the neighbour skin) as a non-periodic cluster, with the
ghosts' node features exchanged before every message-passing layer (softcalc.exchange). Here that
cluster is cut from a periodic diamond box for a grid of ranks, and evaluated exactly as the pair style
does (``SoftCorrectedCalc.local_energy`` inside ``FeatureExchange.running``), the exchange being an index
copy in memory instead of MPI (the copy is what LAMMPS' forward and reverse communication do on one
node). Against it, the gathered path: the periodic box of the same atoms per atom evaluated whole
(``--gather-atoms``, since a 32 768-atom box does not fit here). One torch thread, as under LAMMPS; the
configurations are timed in turn, ``--repeats`` times, interleaved with the gathered box.

Efficiency of P ranks on an N-atom box against one gathered rank: t_gather(N) / (P t_rank), with
t_gather(N) = N × the measured gathered cost per atom (M3GNet's cost is linear in atoms). Not counted:
communication, and the contention of ranks sharing hardware (on this 2-core VM two concurrent ranks
each run ~1.3× slower than alone).

    .venv/bin/python benchmarks/exchange_cost.py --model m3gnet --out bench_out/exchange-cost
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from lammps_scaling import diamond

from softcalc import SoftCorrectedCalc
from softcalc.exchange import FeatureExchange, image_exchange, probe_structure
from softcalc.fileio import write_json
from softcalc.virial import cluster_atoms

#: (label, atoms in the box, rank grid) of the emulated runs
LAYOUTS = [
    ("2 ranks, 4096 atoms", 4096, (2, 1, 1)),
    ("8 ranks, 32768 atoms", 32768, (2, 2, 2)),
    ("64 ranks, 32768 atoms", 32768, (4, 4, 4)),
    ("512 ranks, 32768 atoms", 32768, (8, 8, 8)),
]


def subdomain(positions: np.ndarray, side: float, grid: tuple[int, int, int], shell: float):
    """Rank 0's cluster of a cubic periodic box of ``side`` Å split on ``grid``: its atoms (positions
    in [0, side/grid)) first, then every periodic image within ``shell`` Å of its subdomain (LAMMPS'
    ghost criterion), and for every ghost the row its features come from (its own atom when that
    atom is local, else row 0: the content does not change the cost)."""
    width = side / np.asarray(grid)
    local = np.all(positions < width, axis=1)
    index_of = np.full(len(positions), -1)
    index_of[local] = np.arange(int(local.sum()))
    ghosts, source = [], []
    for shift in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
        image = positions + shift * side
        near = np.all((image >= -shell) & (image < width + shell), axis=1)
        if not shift.any():
            near &= ~local
        ghosts.append(image[near])
        source.append(np.maximum(index_of[near], 0))
    return np.vstack([positions[local], *ghosts]), int(local.sum()), np.concatenate(source)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="m3gnet")
    parser.add_argument("--scale", type=float, default=1.1)
    parser.add_argument("--skin", type=float, default=1.0, help="neighbour skin added to the shell (Å)")
    parser.add_argument("--gather-atoms", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench_out/exchange-cost"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    calc = SoftCorrectedCalc(args.model, scale=args.scale)
    model = calc.active.model
    element = "Si" if "Si" in calc.info.elements else "Ge"
    shell = model.exchange_cutoff + args.skin
    exchange = FeatureExchange(model)
    probe = probe_structure(element, calc.info.cutoff)
    exchange.record(lambda: calc.local_energy(probe), len(probe))

    periodic = diamond(args.gather_atoms, element)
    jobs = {"gather": lambda: calc.calculate(periodic, ["energy", "forces", "stress"], ["positions"])}
    layouts = []
    for label, natoms, grid in LAYOUTS:
        box = diamond(natoms, element)
        positions, nlocal, source = subdomain(box.positions, float(box.cell[0, 0]), grid, shell)
        cluster = cluster_atoms(np.full(len(positions), box.numbers[0]), positions)
        owned = np.arange(len(positions)) < nlocal

        def rank(cluster=cluster, owned=owned, nlocal=nlocal, source=source) -> None:
            exchange.connect(*image_exchange(np.concatenate([np.arange(nlocal), source])))
            with exchange.running(nlocal, len(cluster)):
                calc.local_energy(cluster, owned)

        jobs[label] = rank
        layouts.append(
            {
                "layout": label,
                "natoms": natoms,
                "ranks": int(np.prod(grid)),
                "atoms": nlocal,
                "ghosts": len(positions) - nlocal,
            }
        )
    for job in jobs.values():  # warm-up
        job()
    times: dict[str, list[float]] = {label: [] for label in jobs}
    for _ in range(args.repeats):
        for label, job in jobs.items():
            start = time.perf_counter()
            job()
            times[label].append(time.perf_counter() - start)
        print({k: [round(t, 3) for t in v] for k, v in times.items()}, flush=True)
    per_atom = float(np.median(times["gather"])) / args.gather_atoms
    for row in layouts:
        row["s_per_step"] = float(np.median(times[row["layout"]]))
        row["s_per_step_repeats"] = times[row["layout"]]
        row["efficiency"] = per_atom * row["natoms"] / (row["ranks"] * row["s_per_step"])
        print(row, flush=True)
    result = {
        "model": calc.info.name,
        "shell_A": shell,
        "gather_atoms": args.gather_atoms,
        "gather_s_per_step": times["gather"],
        "gather_s_per_atom": per_atom,
        "layouts": layouts,
        "load_average_1min": os.getloadavg()[0],
    }
    write_json(args.out / "exchange_cost.json", result)
    plot(layouts, args.out / "exchange_cost.png")
    return 0


def plot(layouts: list[dict], path: Path) -> None:
    """Efficiency against one gathered rank, per layout, with atoms / ghosts per rank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softcalc.plots import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"{r['layout']}\n{r['atoms']} / {r['ghosts']}" for r in layouts]
    ax.bar(labels, [r["efficiency"] for r in layouts])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(ylabel="efficiency vs 1 gathered rank", title="per-layer exchange, one rank emulated")
    ax.tick_params(axis="x", labelsize=7)
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
