"""NVE energy drift over an ensemble of runs: is the corrected model's drift within 1.5× of the bare one's?

A 2 ps drift of a uMLIP NVE run is one sample of a random walk: the seed-to-seed spread is as large as
the drift itself, so the ratio of two single runs says little. This script reads the bare/corrected
trajectory pairs that ``md_throughput.py --skip throughput --seed S --out DIR`` writes (one DIR per
seed), and compares the root-mean-square drift over seeds, with a bootstrap confidence interval of the
ratio (seeds resampled in pairs). Writes ``nve_drift_ensemble.json`` and ``.png``.

Usage::

    for s in 1 2 3 4; do python benchmarks/md_throughput.py --model chgnet --scale 1.15 --skip throughput \\
        --nve-steps 2000 --seed $s --out bench_out/md-seed$s; done
    python benchmarks/nve_drift_ensemble.py bench_out/md-seed* --out bench_out/md-ensemble
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from softcalc.fileio import write_json
from softcalc.md import Trajectory, TrajectoryFileError, energy_conservation
from softcalc.plots import save_figure

LABELS = ("bare", "corrected")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def complete(path: Path) -> bool:
    """True for a finished trajectory (False while a run still writes it)."""
    try:
        with Trajectory(path) as traj:
            return traj.metadata.get("status") == "complete"
    except TrajectoryFileError:
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="folders holding nve_bare.h5 and nve_corrected.h5")
    p.add_argument("--bootstrap", type=int, default=10000, help="bootstrap replicas (default 10000)")
    p.add_argument("--out", type=Path, default=Path("bench_out/md-ensemble"))
    args = p.parse_args()

    rows = []
    for run in sorted(args.runs):
        files = {label: run / f"nve_{label}.h5" for label in LABELS}
        if not all(complete(f) for f in files.values()):
            print(f"skipping {run}: no complete bare/corrected pair")
            continue
        with Trajectory(files["bare"]) as t:
            seed, steps = t.metadata.get("seed"), int(t.array("step")[-1])
        row = {"run": str(run), "seed": seed, "steps": steps}
        for label, path in files.items():
            result = energy_conservation(path)
            row[label] = {"drift": result.total.drift_meV_per_atom_per_ps,
                          "stderr": result.total.stderr_meV_per_atom_per_ps,
                          "excursion": result.total.max_excursion_meV_per_atom,
                          "std": result.total.std_meV_per_atom}
            if result.shadow is not None:  # runs stored with forces
                row[label]["shadow_drift"] = result.shadow.drift_meV_per_atom_per_ps
                row[label]["shadow_std"] = result.shadow.std_meV_per_atom
        rows.append(row)
    if len(rows) < 2:
        raise SystemExit(f"need at least 2 complete bare/corrected pairs, found {len(rows)} "
                         f"in {len(args.runs)} folders")
    if len({r["steps"] for r in rows}) > 1:
        raise SystemExit(f"runs of different lengths: {sorted({r['steps'] for r in rows})} steps")
    drifts = {label: np.array([r[label]["drift"] for r in rows]) for label in LABELS}
    excursions = {label: np.array([r[label]["excursion"] for r in rows]) for label in LABELS}
    ratio = rms(drifts["corrected"]) / rms(drifts["bare"])
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(rows), (args.bootstrap, len(rows)))
    squares = {label: np.mean(d[picks] ** 2, axis=1) for label, d in drifts.items()}
    boot = np.sqrt(squares["corrected"] / squares["bare"])
    summary = {
        "n_runs": len(rows), "steps": rows[0]["steps"],
        "rms_drift_meV_per_atom_per_ps": {label: rms(d) for label, d in drifts.items()},
        "mean_drift_meV_per_atom_per_ps": {label: float(d.mean()) for label, d in drifts.items()},
        "sem_drift_meV_per_atom_per_ps": {label: float(d.std(ddof=1) / np.sqrt(len(d)))
                                          for label, d in drifts.items()},
        "rms_drift_ratio_corrected_over_bare": ratio,
        "rms_drift_ratio_95ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "mean_excursion_ratio_corrected_over_bare": float(excursions["corrected"].mean()
                                                          / excursions["bare"].mean()),
        "single_runs_within_1.5x": int(np.sum(np.abs(drifts["corrected"]) <= 1.5 * np.abs(drifts["bare"]))),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "nve_drift_ensemble.json", {"summary": summary, "runs": rows})
    plot(args.out / "nve_drift_ensemble.png", rows, summary)
    rms_drift = summary["rms_drift_meV_per_atom_per_ps"]
    print(f"{len(rows)} runs: RMS drift bare {rms_drift['bare']:.5f}, corrected {rms_drift['corrected']:.5f} "
          f"meV/atom/ps; ratio {ratio:.2f} "
          f"(95 % CI {summary['rms_drift_ratio_95ci'][0]:.2f}-{summary['rms_drift_ratio_95ci'][1]:.2f})")


def plot(png: Path, rows: list[dict], summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(rows))
    for shift, label in ((-0.15, "bare"), (0.15, "corrected")):
        rms_drift = summary["rms_drift_meV_per_atom_per_ps"][label]
        ax.errorbar(x + shift, [r[label]["drift"] for r in rows], yerr=[2 * r[label]["stderr"] for r in rows],
                    fmt="o", capsize=3, label=f"{label} (RMS {rms_drift:.4f})")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(x, [str(r["seed"]) for r in rows])
    ratio = summary["rms_drift_ratio_corrected_over_bare"]
    ax.set(xlabel="seed", ylabel="drift (meV/atom/ps), ± 2 s.e.",
           title=f"NVE drift, {summary['steps']} steps: RMS ratio corrected/bare {ratio:.2f}")
    ax.legend(fontsize=8)
    save_figure(fig, png)


if __name__ == "__main__":
    main()
