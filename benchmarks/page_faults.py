"""Page faults of a large CPU evaluation, with glibc's default allocator settings and with freed memory kept.

Every evaluation allocates its tensors afresh; glibc serves blocks above its mmap threshold (at most
32 MB) from fresh mappings and unmaps them when freed, so each step pays the kernel for zeroed pages
again. With ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>`` glibc keeps freed memory for reuse.
This benchmark runs one process per setting, in back-to-back pairs (``--pairs``), each timing
``--steps`` gathered evaluations (energy, forces, stress) of diamond Si after a warm-up, one torch
thread, and records wall time, user and system CPU time and minor page faults per step.
Results: ``<out>/page_faults.json`` and ``page_faults.png``.

    .venv/bin/python benchmarks/page_faults.py --model m3gnet --atoms 4096 --pairs 4 \
        --out bench_out/page-faults
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: glibc settings under which freed memory stays in the process for reuse
KEEP_FREED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 * 1024**3)}


def measure(model: str, natoms: int, steps: int) -> dict[str, float]:
    """Per-step wall time (s), user and system CPU time (s) and minor page faults of ``steps``
    gathered evaluations in this process, after one warm-up."""
    import torch
    from lammps_scaling import diamond

    from softcalc import SoftCorrectedCalc

    torch.set_num_threads(1)
    calc = SoftCorrectedCalc(model, scale=1.1)
    atoms = diamond(natoms, "Si" if "Si" in calc.info.elements else "Ge")

    def step() -> None:
        calc.calculate(atoms, ["energy", "forces", "stress"], ["positions"])

    step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "s_per_step": wall / steps,
        "user_s_per_step": (after.ru_utime - before.ru_utime) / steps,
        "system_s_per_step": (after.ru_stime - before.ru_stime) / steps,
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="m3gnet")
    parser.add_argument("--atoms", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench_out/page-faults"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.atoms, args.steps)))
        return 0
    from softcalc.fileio import write_json

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for pair in range(args.pairs):
        for setting, extra in (("default", {}), ("keep_freed", KEEP_FREED)):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--model",
                args.model,
                "--atoms",
                str(args.atoms),
                "--steps",
                str(args.steps),
            ]
            proc = subprocess.run(
                cmd, env={**os.environ, **extra}, capture_output=True, text=True, check=True
            )
            row = {"pair": pair, "setting": setting, **json.loads(proc.stdout.strip().splitlines()[-1])}
            print(json.dumps(row), flush=True)
            rows.append(row)
    ratios = [
        kept["s_per_step"] / default["s_per_step"]
        for default, kept in zip(rows[::2], rows[1::2], strict=True)
    ]
    result = {
        "model": args.model,
        "atoms": args.atoms,
        "settings": {"keep_freed": KEEP_FREED},
        "rows": rows,
        "keep_freed_over_default": ratios,
        "median_ratio": float(np.median(ratios)),
    }
    print(json.dumps({"keep_freed_over_default": ratios}))
    write_json(args.out / "page_faults.json", result)
    plot(rows, args.out / "page_faults.png")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    """Step time of each pair, both settings, split into user and system time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softcalc.plots import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, row in enumerate(rows):
        ax.bar(k, row["user_s_per_step"], color="C0" if row["setting"] == "default" else "C2")
        ax.bar(k, row["system_s_per_step"], bottom=row["user_s_per_step"], color="C3")
        ax.plot(k, row["s_per_step"], "k_", markersize=14)
    ax.set_xticks(range(len(rows)), [f"{r['pair']}:{r['setting']}" for r in rows], rotation=45, fontsize=7)
    ax.set(ylabel="s per step (user, system in red; wall –)", title="page faults of a gathered step")
    save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
