"""MD throughput and NVE energy drift, bare vs softening-corrected uMLIP.

1. Throughput (atom-steps/s) of bare and corrected MD for diamond-Si supercells (64/512/4096 atoms),
   bare and corrected runs interleaved (order alternating by repeat); wall rate best of --repeats,
   CPU-time rate (less sensitive to other load on the machine; it includes the initial force call)
   median of --repeats, and the median of the per-repeat paired ratios; each size
   in a fresh process so its peak memory (RSS, and CUDA peak on a GPU) is its own. A GPU column is
   added when CUDA is available.
2. NVE energy drift of 64-atom Si (1 fs, --nve-steps, 300 K start), bare vs corrected, written to
   resumable HDF5 trajectories (rerunning continues them), plus their VDOS against the DFT phonon DOS.

Usage:
    python benchmarks/md_throughput.py --model chgnet --scale 1.15 --out bench_out/md
Results: <out>/md_throughput.json, <out>/md_throughput.png, <out>/md_vdos.png, <out>/nve_*.h5.
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
from ase import Atoms
from ase.build import bulk

from softcalc import SoftCorrectedCalc, load_model
from softcalc.fileio import write_json
from softcalc.md import energy_conservation, run_md
from softcalc.md.compare import compare_vdos, harmonic_dos, trajectory_vdos
from softcalc.plots import save_figure

SI_PHONONS = Path(os.environ.get("SOFTCALC_DATA_DIR", "../shared/data")) / "phonons/phonopy-examples/Si"


def si_supercell(n_atoms: int) -> Atoms:
    """Diamond Si (a = 5.431 Å) with ``n_atoms`` = 8 n³ atoms."""
    n = round((n_atoms / 8) ** (1 / 3))
    if 8 * n**3 != n_atoms:
        raise SystemExit(f"{n_atoms} atoms is not 8 n^3")
    return bulk("Si", "diamond", a=5.431, cubic=True).repeat(n)


def calculators(args: argparse.Namespace, device: str) -> dict[str, object]:
    base = load_model(args.model, device=device, dtype=args.dtype)
    scale = None if args.correction else args.scale
    corrected = SoftCorrectedCalc(base, correction=args.correction, scale=scale)
    return {"bare": base, "corrected": corrected}


def throughput_one(args: argparse.Namespace) -> dict[str, object]:
    """Child process: interleaved bare/corrected MD for one size and device; JSON on stdout."""
    atoms = si_supercell(args.child_size)
    atoms.rattle(0.02, seed=1)
    calcs = calculators(args, args.child_device)
    steps = args.child_steps
    for calc in calcs.values():  # warm-up: model compilation, caches
        run_md(atoms, calc, ensemble="nve", steps=1, every=1, progress=False, seed=1)
    rates: dict[str, list[float]] = {k: [] for k in calcs}
    cpu_rates: dict[str, list[float]] = {k: [] for k in calcs}
    for repeat in range(args.repeats):
        order = list(calcs.items()) if repeat % 2 == 0 else list(calcs.items())[::-1]  # no order bias
        for label, calc in order:
            cpu = time.process_time()
            res = run_md(atoms, calc, ensemble="nve", temperature_K=300, steps=steps, every=steps,
                         progress=False, seed=1)
            rates[label].append(res.atom_steps_per_s)
            cpu_rates[label].append(len(atoms) * steps / (time.process_time() - cpu))
    best = {k: max(v) for k, v in rates.items()}
    median_cpu = {k: float(np.median(v)) for k, v in cpu_rates.items()}
    out: dict[str, object] = {
        "n_atoms": len(atoms), "device": args.child_device, "steps": steps, "repeats": args.repeats,
        "atom_steps_per_s": best,
        "all_atom_steps_per_s": rates,
        "cpu_atom_steps_per_s": median_cpu,
        "all_cpu_atom_steps_per_s": cpu_rates,
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "time_ratio_corrected_over_bare": best["bare"] / best["corrected"],
        "cpu_time_ratio_corrected_over_bare": median_cpu["bare"] / median_cpu["corrected"],
        "median_paired_time_ratio": float(np.median(np.divide(rates["bare"], rates["corrected"]))),
    }
    if args.child_device.startswith("cuda"):
        import torch

        out["peak_cuda_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def throughput(args: argparse.Namespace) -> list[dict[str, object]]:
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
    except ImportError:
        pass
    rows = []
    for device in devices:
        for size, steps in zip(args.sizes, args.steps):
            cmd = [sys.executable, __file__, "--model", args.model, "--repeats", str(args.repeats),
                   "--child-size", str(size), "--child-steps", str(steps), "--child-device", device]
            cmd += ["--dtype", args.dtype] if args.dtype else []
            cmd += ["--correction", args.correction] if args.correction else ["--scale", str(args.scale)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                error = done.stderr.strip().splitlines()[-1:]
                rows.append({"n_atoms": size, "device": device, "error": error})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def drift(path: Path) -> dict[str, float]:
    """Linear drift (meV/atom/ps) of E_total with its block standard error, largest excursion and std
    (meV/atom), from :func:`softcalc.md.energy_conservation`; with stored forces also the drift of the
    velocity-Verlet shadow energy, which has the bounded O(Δt²) Verlet fluctuation taken out."""
    result = energy_conservation(path)
    total = result.total
    out = {"drift_meV_per_atom_per_ps": total.drift_meV_per_atom_per_ps,
           "abs_drift_meV_per_atom_per_ps": abs(total.drift_meV_per_atom_per_ps),
           "drift_stderr_meV_per_atom_per_ps": total.stderr_meV_per_atom_per_ps,
           "max_excursion_meV_per_atom": total.max_excursion_meV_per_atom,
           "std_total_energy_meV_per_atom": total.std_meV_per_atom,
           "duration_ps": result.duration_ps, "mean_temperature_K": result.mean_temperature_K}
    if result.shadow is not None:
        out["shadow_drift_meV_per_atom_per_ps"] = result.shadow.drift_meV_per_atom_per_ps
        out["shadow_drift_stderr_meV_per_atom_per_ps"] = result.shadow.stderr_meV_per_atom_per_ps
        out["shadow_std_meV_per_atom"] = result.shadow.std_meV_per_atom
    return out


def nve(args: argparse.Namespace) -> dict[str, object]:
    atoms = si_supercell(64)
    out: dict[str, object] = {}
    spectra = {}
    for label, calc in calculators(args, args.device).items():
        traj = args.out / f"nve_{label}.h5"
        res = run_md(atoms, calc, ensemble="nve", temperature_K=300.0, timestep_fs=1.0, steps=args.nve_steps,
                     every=2, flush_every=10, traj=traj, resume="if-exists", seed=args.seed, stress=False,
                     forces=True, progress=not args.quiet)
        out[label] = {**drift(traj), "atom_steps_per_s": res.atom_steps_per_s}
        spectra[label] = trajectory_vdos(traj)
    bare = out["bare"]["abs_drift_meV_per_atom_per_ps"]
    corr = out["corrected"]["abs_drift_meV_per_atom_per_ps"]
    out["drift_ratio_corrected_over_bare"] = corr / bare if bare else float("inf")
    out["drift_within_1.5x"] = bool(corr <= 1.5 * bare)
    stderr = np.hypot(*(out[k]["drift_stderr_meV_per_atom_per_ps"] for k in ("bare", "corrected")))
    difference = out["corrected"]["drift_meV_per_atom_per_ps"] - out["bare"]["drift_meV_per_atom_per_ps"]
    out["drift_difference_resolved"] = bool(abs(difference) > 2 * stderr)  # beyond two standard errors
    excursion = {k: out[k]["max_excursion_meV_per_atom"] for k in ("bare", "corrected")}
    out["excursion_ratio_corrected_over_bare"] = excursion["corrected"] / excursion["bare"]
    reference = harmonic_dos(SI_PHONONS) if SI_PHONONS.is_dir() else None
    out["vdos"] = compare_vdos(spectra, reference, png=args.out / "md_vdos.png",
                               title=f"Si 64 atoms, NVE from 300 K velocities, {args.model}")
    return out


def plot(path: Path, rows: list[dict[str, object]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for device in sorted({r["device"] for r in rows}):
        ok = [r for r in rows if r["device"] == device and "error" not in r]
        for label, marker in (("bare", "o"), ("corrected", "s")):
            ax.plot([r["n_atoms"] for r in ok], [r["atom_steps_per_s"][label] for r in ok], marker=marker,
                    label=f"{label} ({device})")
    ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel="atom-steps/s")
    ax.legend()
    save_figure(fig, path, dpi=130)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="chgnet")
    p.add_argument("--scale", type=float, default=1.15, help="global λ of the corrected runs")
    p.add_argument("--correction", help="correction JSON instead of --scale")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 512, 4096])
    p.add_argument("--steps", type=int, nargs="+", default=[10, 3, 1], help="MD steps per size and repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--nve-steps", type=int, default=2000, help="NVE drift run length in 1 fs steps")
    p.add_argument("--device", default="cpu", help="device of the NVE drift runs")
    p.add_argument("--seed", type=int, default=42, help="seed of the NVE runs' initial velocities")
    p.add_argument("--dtype", choices=("float32", "float64"), help="model precision (default: the model's)")
    p.add_argument("--skip", choices=("throughput", "nve"), action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("bench_out/md"))
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-device", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_size:
        print(json.dumps(throughput_one(args)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    result_path = args.out / "md_throughput.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    result.update(model=args.model, correction=args.correction, scale=None if args.correction else args.scale,
                  command=" ".join([Path(sys.executable).name, *sys.argv]))
    if "throughput" not in args.skip:
        result["throughput"] = throughput(args)
        write_json(result_path, result)
        plot(args.out / "md_throughput.png", result["throughput"])
    if "nve" not in args.skip:
        result["nve_drift"] = nve(args)
        write_json(result_path, result)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
