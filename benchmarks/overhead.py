"""Per-call overhead of SoftCorrectedCalc over the bare model calculator.

Wall time of one energy+forces+stress call (``calculate(atoms, ["energy", "forces", "stress"])``,
what ASE does for ``get_forces`` plus ``get_stress``) for the bare :func:`softcalc.load_model`
calculator and for ``SoftCorrectedCalc(base, scale=λ)`` on the same model. Every call sees new
positions (a small rattle), so nothing is cached. Bare and corrected calls alternate, in an order
that flips every pair, so load from other processes hits both alike; the ratio within one run is
the result. Also timed: the correction arithmetic alone (the corrected calculator around a
frozen base that returns stored results). Each call's process CPU time is recorded beside its wall
time: with ``--threads 1`` it measures the work done regardless of other processes' load.

Usage:
    python benchmarks/overhead.py --model chgnet --sizes 64 512 --calls 20 --threads 1 \
        --out bench_out/overhead
Results: <out>/overhead.json and <out>/overhead.png. Target: corrected/bare median ratio ≤ 1.02.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes

from softcalc import SoftCorrectedCalc, load_model
from softcalc.fileio import write_json
from softcalc.plots import save_figure

PROPERTIES = ["energy", "forces", "stress"]
TARGET_RATIO = 1.02


def si_supercell(n_atoms: int) -> Atoms:
    """Diamond Si (a = 5.431 Å) with ``n_atoms`` = 8 n³ atoms."""
    n = round((n_atoms / 8) ** (1 / 3))
    if 8 * n**3 != n_atoms:
        raise SystemExit(f"{n_atoms} atoms is not 8 n^3 (use 64, 216, 512, ...)")
    return bulk("Si", "diamond", a=5.431, cubic=True).repeat(n)


def timed_call(calc: Calculator, atoms: Atoms) -> tuple[float, float]:
    """Wall and process CPU seconds for one energy+forces+stress evaluation of ``atoms``."""
    wall, cpu = time.perf_counter(), time.process_time()
    calc.calculate(atoms, PROPERTIES, all_changes)
    return time.perf_counter() - wall, time.process_time() - cpu


class FrozenBase(Calculator):
    """Returns stored results: isolates the cost of the correction arithmetic."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, results: dict[str, Any]) -> None:
        super().__init__()
        self.frozen = results

    def calculate(self, atoms=None, properties=None, system_changes=all_changes) -> None:  # noqa: ANN001
        self.results = dict(self.frozen)


def interleaved(
    calcs: dict[str, Calculator], atoms: Atoms, calls: int, warmup: int, rattle: float, seed: int
) -> dict[str, list[float]]:
    """Alternate the calculators call by call (order flipped every pair), new positions each call."""
    rng = np.random.default_rng(seed)
    reference = atoms.positions.copy()
    names = list(calcs)
    times: dict[str, list[float]] = {f"{name}_{clock}": [] for name in names for clock in ("wall", "cpu")}
    for i in range(warmup + calls):
        for name in names if i % 2 == 0 else names[::-1]:
            atoms.positions = reference + rng.normal(0.0, rattle, reference.shape)
            wall, cpu = timed_call(calcs[name], atoms)
            if i >= warmup:
                times[f"{name}_wall"].append(wall)
                times[f"{name}_cpu"].append(cpu)
    return times


def summary(times: list[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"median_s": float(median), "q1_s": float(q1), "q3_s": float(q3), "min_s": float(np.min(times))}


def bootstrap_ratio_ci(bare: list[float], corrected: list[float], seed: int, n: int = 2000) -> list[float]:
    """95 % bootstrap interval of median(corrected)/median(bare), resampling call pairs."""
    rng = np.random.default_rng(seed)
    b, c = np.asarray(bare), np.asarray(corrected)
    idx = rng.integers(0, len(b), size=(n, len(b)))
    ratios = np.median(c[idx], axis=1) / np.median(b[idx], axis=1)
    return [float(x) for x in np.percentile(ratios, [2.5, 97.5])]


def correction_only(base: Calculator, atoms: Atoms, scale: float, repeats: int = 200) -> float:
    """Median seconds of SoftCorrectedCalc's own work around a base whose results are already known."""
    base.calculate(atoms, PROPERTIES, all_changes)
    frozen = FrozenBase(base.results)
    corrected = SoftCorrectedCalc(frozen, scale=scale, reference_energies=base.info.reference_energies)
    return float(np.median([timed_call(corrected, atoms)[0] for _ in range(repeats)]))


def benchmark_size(base: Calculator, n_atoms: int, args: argparse.Namespace) -> dict[str, Any]:
    atoms = si_supercell(n_atoms)
    calcs = {"bare": base, "corrected": SoftCorrectedCalc(base, scale=args.scale)}
    times = interleaved(calcs, atoms, args.calls, args.warmup, args.rattle, args.seed)
    row: dict[str, Any] = {"n_atoms": n_atoms}
    for clock in ("wall", "cpu"):
        bare, corr = times[f"bare_{clock}"], times[f"corrected_{clock}"]
        row[clock] = {
            "bare": summary(bare),
            "corrected": summary(corr),
            "ratio_of_medians": float(np.median(corr) / np.median(bare)),
            "ratio_ci95": bootstrap_ratio_ci(bare, corr, args.seed),
            "median_paired_ratio": float(np.median(np.array(corr) / np.array(bare))),
        }
    row["correction_only_s"] = correction_only(base, atoms, args.scale)
    row["correction_only_fraction"] = row["correction_only_s"] / row["wall"]["bare"]["median_s"]
    row["times_s"] = times
    return row


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(max(5.0, 3.8 * len(rows)), 4.0), squeeze=False)
    for ax, row in zip(axes[0], rows):
        keys = ("bare_wall", "corrected_wall", "bare_cpu", "corrected_cpu")
        ax.boxplot([np.array(row["times_s"][k]) * 1e3 for k in keys], showfliers=True)
        ax.set_xticks([1, 2, 3, 4], ["bare\nwall", "corr.\nwall", "bare\nCPU", "corr.\nCPU"])
        ax.set_ylabel("time per E+F+σ call (ms)")
        ax.set_title(
            f"{row['n_atoms']} atoms: ratio wall {row['wall']['ratio_of_medians']:.3f}, "
            f"CPU {row['cpu']['ratio_of_medians']:.3f}",
            fontsize=9,
        )
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="chgnet", help="model name or weights path (default chgnet)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:N)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512], help="Si supercell sizes (8 n³)")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per calculator and size (≥ 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per calculator first")
    parser.add_argument("--scale", type=float, default=1.1, help="global λ of the corrected calculator")
    parser.add_argument("--rattle", type=float, default=0.01, help="per-call position noise σ (Å)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("bench_out/overhead"), help="output folder")
    args = parser.parse_args(argv)
    if args.calls < 20:
        parser.error("--calls must be at least 20")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_model(args.model, device=args.device)
    rows: list[dict[str, Any]] = []
    for n_atoms in args.sizes:
        row = benchmark_size(base, n_atoms, args)
        rows.append(row)
        for clock in ("wall", "cpu"):
            r = row[clock]
            print(
                f"{n_atoms:5d} atoms {clock:4s}  bare {r['bare']['median_s'] * 1e3:8.1f} ms  "
                f"corrected {r['corrected']['median_s'] * 1e3:8.1f} ms  ratio {r['ratio_of_medians']:.4f} "
                f"[95% CI {r['ratio_ci95'][0]:.3f}-{r['ratio_ci95'][1]:.3f}]",
                flush=True,
            )
        print(f"{n_atoms:5d} atoms correction arithmetic alone {row['correction_only_s'] * 1e6:.0f} µs")
    result = {
        "benchmark": "overhead",
        "model": dict(base.info.fingerprint),
        "device": args.device,
        "dtype": base.info.dtype,
        "scale": args.scale,
        "calls": args.calls,
        "warmup": args.warmup,
        "rattle_A": args.rattle,
        "properties": PROPERTIES,
        "target_ratio": TARGET_RATIO,
        "meets_target_wall": all(r["wall"]["ratio_of_medians"] <= TARGET_RATIO for r in rows),
        "meets_target_cpu": all(r["cpu"]["ratio_of_medians"] <= TARGET_RATIO for r in rows),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "overhead.json", result)
    plot(rows, args.out / "overhead.png", f"SoftCorrectedCalc(λ={args.scale}) vs bare {base.info.name}")
    print(f"wrote {args.out / 'overhead.json'} and {args.out / 'overhead.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
