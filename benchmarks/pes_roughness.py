"""Fine-scale roughness of a model's potential-energy surface along a straight line, and why it matters
for NVE energy conservation.

One atom of a rattled 64-atom diamond Si cell moves along a fixed direction over ±``span`` Å in
``points`` steps. For each model this records E(s) and the force along the path F(s), and reports:

- conservativeness: max |E(s) − E(0) + ∫₀ˢ F ds'| (eV), which is zero for forces that are the exact
  gradient of a continuous energy;
- the force constant along the path k(s) = −dF/ds (eV/Å²) and its roughness: the RMS of k minus a
  smooth fit (a degree-8 polynomial over the span), in eV/Å² and as a fraction of the RMS of k.

Velocity Verlet resolves features of the surface that an atom crosses in several time steps (at 300 K
a Si atom moves about 0.03 Å/fs). Ripples in k over 0.01-0.02 Å are crossed within one 1 fs step, so
the integrator samples them as random kicks: the total energy random-walks instead of oscillating
around a constant, and a stiffer (λ > 1) or faster (longer Δt) run walks further. Writes
``pes_roughness.json`` and ``.png``.

Usage::

    python benchmarks/pes_roughness.py --models chgnet m3gnet --out bench_out/pes-roughness
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from softcalc.fileio import write_json
from softcalc.plots import save_figure
from softcalc.registry import load_adapter


def scan_structures(span: float, points: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[Atoms]]:
    """Path coordinates s (Å), the unit direction and the displaced cells (atom 0 moved by s along it)."""
    start = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    start.rattle(0.05, seed=seed)
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    s = np.linspace(-span, span, points)
    cells = []
    for x in s:
        atoms = start.copy()
        atoms.positions[0] += x * direction
        cells.append(atoms)
    return s, direction, cells


def roughness(s: np.ndarray, energy: np.ndarray, force: np.ndarray, degree: int = 8) -> dict[str, object]:
    """Conservativeness and force-constant roughness of one scan (module docstring)."""
    ds = s[1] - s[0]
    work = np.concatenate([[0.0], np.cumsum(0.5 * (force[1:] + force[:-1]) * ds)])
    i0 = len(s) // 2
    residual = (energy - energy[i0]) + (work - work[i0])
    k = -np.gradient(force, ds)
    smooth = np.polynomial.Polynomial.fit(s, k, degree)(s)
    ripple = k - smooth
    return {"max_work_residual_eV": float(np.abs(residual).max()),
            "energy_range_eV": float(np.ptp(energy)),
            "k_rms_eV_per_A2": float(np.sqrt(np.mean(k**2))),
            "k_ripple_rms_eV_per_A2": float(np.sqrt(np.mean(ripple**2))),
            "k_ripple_fraction": float(np.sqrt(np.mean(ripple**2)) / np.sqrt(np.mean(k**2))),
            "k": k.tolist(), "k_smooth": smooth.tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["chgnet", "m3gnet"])
    p.add_argument("--span", type=float, default=0.2, help="half length of the path, Å (default 0.2)")
    p.add_argument("--points", type=int, default=801, help="points on the path (default 801: 5e-4 Å apart)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench_out/pes-roughness"))
    args = p.parse_args()

    s, direction, cells = scan_structures(args.span, args.points, args.seed)
    results: dict[str, object] = {"span_A": args.span, "points": args.points, "spacing_A": float(s[1] - s[0]),
                                  "direction": direction.tolist(), "dtype": args.dtype, "models": {}}
    for name in args.models:
        model = load_adapter(name, dtype=args.dtype)
        t0 = time.perf_counter()
        rows = model.compute_many(cells, ("energy", "forces"))
        energy = np.array([r["energy"] for r in rows])
        force = np.array([r["forces"][0] @ direction for r in rows])
        results["models"][name] = {**roughness(s, energy, force), "seconds": time.perf_counter() - t0}
        m = results["models"][name]
        print(f"{name}: max |E − E0 + ∫F ds| {m['max_work_residual_eV']:.1e} eV over an energy range of "
              f"{m['energy_range_eV']:.3f} eV; force-constant ripple {m['k_ripple_rms_eV_per_A2']:.2f} eV/Å² "
              f"RMS ({100 * m['k_ripple_fraction']:.1f} % of k)")
    results["s_A"] = s.tolist()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "pes_roughness.json", results)
    plot(args.out / "pes_roughness.png", s, results["models"])


def plot(png: Path, s: np.ndarray, models: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, m in models.items():
        label = f"{name}: ripple {m['k_ripple_rms_eV_per_A2']:.2f} eV/Å² RMS"
        (line,) = ax.plot(s, m["k"], lw=0.8, label=label)
        ax.plot(s, m["k_smooth"], lw=1.5, ls="--", color=line.get_color())
    ax.set(xlabel="displacement of one Si atom along the path (Å)", ylabel="k = −dF/ds (eV/Å²)",
           title="force constant along a straight path (dashed: smooth fit)")
    ax.legend(fontsize=8)
    save_figure(fig, png)


if __name__ == "__main__":
    main()
