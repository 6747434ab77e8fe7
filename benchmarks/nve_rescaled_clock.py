"""Is the corrected model's NVE drift the correction's or the bare model's? A rescaled-clock check.

With a global λ, E' = E_ref + λ (E − E_ref), so velocity Verlet on E' with step Δt from velocities v₀ is
exactly velocity Verlet on the bare E with step Δt·√λ from v₀/√λ (temperature T/λ). This script runs
the bare model that way and compares it with a corrected NVE trajectory written by
``md_throughput.py`` (same structure, seed and settings): positions frame by frame, and the corrected
drift predicted from the bare one, λ^1.5 × drift_bare (energies scale by λ, time by 1/√λ).

Usage (after ``md_throughput.py --scale 1.15 --skip throughput --nve-steps 2000 --out bench_out/md``):
    python benchmarks/nve_rescaled_clock.py --scale 1.15 --corrected bench_out/md/nve_corrected.h5 \
        --out bench_out/md-rescaled
Writes <out>/nve_rescaled_clock.json and <out>/nve_rescaled_clock.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from md_throughput import drift, si_supercell  # noqa: E402

from softcalc import load_model  # noqa: E402
from softcalc.fileio import write_json  # noqa: E402
from softcalc.md import Trajectory, run_md  # noqa: E402
from softcalc.plots import save_figure  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="chgnet")
    p.add_argument("--scale", type=float, default=1.15, help="λ of the corrected run")
    p.add_argument("--corrected", type=Path, default=Path("bench_out/md/nve_corrected.h5"))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=42, help="seed of the corrected run's initial velocities")
    p.add_argument("--out", type=Path, default=Path("bench_out/md-rescaled"))
    args = p.parse_args()
    lam = args.scale
    args.out.mkdir(parents=True, exist_ok=True)
    traj = args.out / "nve_bare_rescaled.h5"
    run_md(si_supercell(64), load_model(args.model), ensemble="nve", temperature_K=300.0 / lam,
           timestep_fs=np.sqrt(lam), steps=args.steps, every=2, flush_every=10, traj=traj, resume="if-exists",
           seed=args.seed, stress=False, progress=False)
    bare, corrected = drift(traj), drift(args.corrected)
    with Trajectory(traj) as a, Trajectory(args.corrected) as b:
        n = min(len(a.array("step")), len(b.array("step")))
        deviation = np.abs(a.array("positions")[:n] - b.array("positions")[:n]).max(axis=(1, 2))
        t_corr = b.array("time")[:n] / 1000.0
        e_bare = (a.array("potential_energy") + a.array("kinetic_energy"))[:n] / len(a.numbers)
        e_corr = (b.array("potential_energy") + b.array("kinetic_energy"))[:n] / len(b.numbers)
    result = {
        "model": args.model, "scale": lam, "bare_timestep_fs": float(np.sqrt(lam)),
        "bare_start_temperature_K": 300.0 / lam, "frames_compared": int(n),
        "max_position_deviation_A": float(deviation.max()),
        "drift_bare_rescaled": bare, "drift_corrected": corrected,
        "predicted_corrected_drift_meV_per_atom_per_ps": lam**1.5 * bare["drift_meV_per_atom_per_ps"],
        "command": " ".join(sys.argv),
    }
    write_json(args.out / "nve_rescaled_clock.json", result)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(t_corr, 1000 * lam * (e_bare - e_bare[0]), label=f"bare at {np.sqrt(lam):.3f} fs, × λ")
    ax.plot(t_corr, 1000 * (e_corr - e_corr[0]), "--", label=f"corrected (λ = {lam}) at 1 fs")
    ax.set_xlabel("corrected-run time (ps)")
    ax.set_ylabel("E_total − E_total(0) (meV/atom)")
    ax.legend()
    save_figure(fig, args.out / "nve_rescaled_clock.png", dpi=120)
    print(f"max |Δr| over {n} frames: {deviation.max():.2e} Å; corrected drift "
          f"{corrected['drift_meV_per_atom_per_ps']:.6f}, predicted from bare "
          f"{result['predicted_corrected_drift_meV_per_atom_per_ps']:.6f} meV/atom/ps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
