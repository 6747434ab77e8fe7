"""Speed of softcalc's batched finite-difference Hessian and of its phonon mesh, against the usual ways.

(a) Hessian of a low-symmetry 63-atom Si cell (2x2x2 conventional diamond, rattled 0.05 Å, one
    vacancy) with CHGNet: ``softcalc.hessian.fd_hessian`` (all 6N = 378 displaced cells through the
    plugin's batched ``compute_many``) at several batch sizes, against two serial loops over the same
    displacements, one ``get_forces()`` per cell as ASE's Vibrations or a phonopy script would do:
    softcalc's own ModelCalculator, and CHGNet's ASE calculator
    (``chgnet.model.dynamics.CHGNetCalculator``, same weights and dtype). Interleaved repeats.
(b) Dynamical matrices and eigenvalues on a full 20x20x20 Γ-centred q mesh (8000 q-points, no
    symmetry reduction) for the 2x2x2 Si supercell of phonopy's example force sets:
    ``Phonons.mesh`` against ``Phonopy.run_mesh(is_mesh_symmetry=False)``; both compute every q-point's
    dynamical matrix and eigenvalues (no eigenvectors); the frequencies are compared too.

Peak memory: process peak RSS (``resource``) after each part, and the tracemalloc peak of part (b).
Writes ``hessian_speed.json`` and ``hessian_speed.png`` into ``--out``.

Usage::

    .venv/bin/python benchmarks/hessian_speed.py [--out bench_out/hessian_speed] [--model chgnet]
        [--batch-sizes 1,4,8] [--hessian-repeats 2] [--no-model-calculator] [--no-serial] [--skip-hessian]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("SOFTCALC_MODEL_DIR", str(SHARED / "models"))
os.environ.setdefault("SOFTCALC_DATA_DIR", str(SHARED / "data"))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def defect_cell(seed: int = 7):  # noqa: ANN201 - ase.Atoms
    """63-atom Si: 2x2x2 conventional diamond, rattled by 0.05 Å, atom 0 removed."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    del atoms[0]
    return atoms


def serial_hessian(atoms, calculator, delta: float) -> np.ndarray:  # noqa: ANN001
    """Reference: one calculator call per displaced structure (ASE Vibrations / phonopy script style)."""
    n = len(atoms)
    hessian = np.empty((3 * n, 3 * n))
    for i in range(n):
        for a in range(3):
            forces = []
            for sign in (1.0, -1.0):
                displaced = atoms.copy()
                displaced.positions[i, a] += sign * delta
                displaced.calc = calculator
                forces.append(displaced.get_forces())
            hessian[3 * i + a] = -(forces[0] - forces[1]).ravel() / (2 * delta)
    return 0.5 * (hessian + hessian.T)


def bench_hessian(
    model: str,
    delta: float,
    batch_sizes: list[int],
    repeats: int,
    model_calculator: bool = True,
    serial: bool = True,
) -> dict:
    """Part (a): batched ``fd_hessian`` at each batch size, against two serial loops, interleaved.

    Each repeat runs every variant once, in an order that alternates between repeats (the first
    run of a sequence tends to be faster on a shared machine); times are medians over repeats.
    ``model_calculator`` False leaves out the loop with the model's own ASE calculator (CHGNet's);
    ``serial`` False leaves out both serial loops (ratios are then to the smallest batch size).
    """
    import torch

    from softcalc import load_model
    from softcalc.hessian import fd_hessian

    calc = load_model(model)
    atoms = defect_cell()
    small = atoms[:4]
    small.calc = None
    fd_hessian(small, calc, delta=delta)  # warm up numba kernels and the model

    own_name = None
    serial_name = "softcalc serial (one ModelCalculator call per cell)"
    variants = {
        f"softcalc batched, batch {b}": (lambda b=b: fd_hessian(atoms, calc, delta, b)) for b in batch_sizes
    }
    if serial:
        variants[serial_name] = lambda: serial_hessian(atoms, calc, delta)
    if serial and model_calculator and calc.info.family == "chgnet":
        from chgnet.model.dynamics import CHGNetCalculator

        own = CHGNetCalculator(model=calc.model.model, use_device="cpu", on_isolated_atoms="ignore")
        own_name = "chgnet.model.dynamics.CHGNetCalculator (one call per cell)"
        variants[own_name] = lambda: serial_hessian(atoms, own, delta)
    times: dict[str, list[float]] = {name: [] for name in variants}
    hessians: dict[str, np.ndarray] = {}
    for r in range(repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            t0 = time.perf_counter()
            hessians[name] = variants[name]()
            times[name].append(time.perf_counter() - t0)
            print(f"  repeat {r}: {name}: {times[name][-1]:.1f} s", flush=True)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    fastest = min((n for n in medians if n.startswith("softcalc batched")), key=medians.get)
    if not serial:
        serial_name = f"softcalc batched, batch {min(batch_sizes)}"
    reference = hessians[serial_name]
    return {
        "model": calc.info.name,
        "dtype": calc.info.dtype,
        "n_atoms": len(atoms),
        "n_displaced_structures": 6 * len(atoms),
        "delta_angstrom": delta,
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
        "times_s": times,
        "median_s": medians,
        "fastest_batched": fastest,
        "reference": serial_name,
        "ratio_to_softcalc_serial": {n: medians[n] / medians[serial_name] for n in medians},
        "ratio_to_chgnet_calculator": (
            {n: medians[n] / medians[own_name] for n in medians} if own_name is not None else None
        ),
        "max_abs_difference_eV_A2": {n: float(np.abs(h - reference).max()) for n, h in hessians.items()},
        "max_abs_hessian_eV_A2": float(np.abs(reference).max()),
        "peak_rss_mib": peak_rss_mib(),
    }


def bench_mesh(mesh: int, repeats: int) -> dict:
    """Part (b)."""
    import numba

    from softcalc.phonons import Phonons
    from softcalc.phonons.phonopy_io import read_phonopy

    ph = read_phonopy(Path(os.environ["SOFTCALC_DATA_DIR"]) / "phonons/phonopy-examples/Si")
    ours = Phonons.from_phonopy(ph)
    grid = [mesh] * 3
    ours.mesh([2, 2, 2])  # compile / load the numba cache
    ph.run_mesh([2, 2, 2], is_mesh_symmetry=False, is_gamma_center=True)
    t_ours, t_phonopy = [], []
    tracemalloc.start()
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        result = ours.mesh(grid)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ph.run_mesh(grid, is_mesh_symmetry=False, is_gamma_center=True, with_eigenvectors=False)
        t_phonopy.append(time.perf_counter() - t0)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    qpoints = ph.mesh.qpoints
    diff = np.abs(ours.frequencies(qpoints) - ph.mesh.frequencies).max()
    return {
        "material": "Si (phonopy example FORCE_SETS)",
        "supercell_atoms": len(ours.supercell),
        "primitive_atoms": len(ours.primitive),
        "mesh": grid,
        "n_qpoints": len(result.qpoints),
        "repeats": repeats,
        "numba_threads": numba.get_num_threads(),
        "softcalc_s_median": float(np.median(t_ours)),
        "phonopy_s_median": float(np.median(t_phonopy)),
        "softcalc_s_min": float(np.min(t_ours)),
        "phonopy_s_min": float(np.min(t_phonopy)),
        "ratio_median": float(np.median(t_ours) / np.median(t_phonopy)),
        "ratio_min": float(np.min(t_ours) / np.min(t_phonopy)),
        "max_abs_frequency_difference_THz": float(diff),
        "tracemalloc_peak_mib": traced_peak / 2**20,
        "peak_rss_mib": peak_rss_mib(),
    }


def plot(results: dict, path: Path) -> None:
    """Bar charts of both timings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softcalc.plots import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    if "hessian" in results:
        h = results["hessian"]
        names = list(h["median_s"])
        short = [n.replace("softcalc batched, batch ", "b=").split(" (")[0] for n in names]
        axes[0].barh(short, [h["median_s"][n] for n in names])
        axes[0].set_title(f"FD Hessian, {h['n_atoms']} Si atoms, {h['model']}")
        axes[0].set_xlabel("wall time (s, median)")
    m = results["mesh"]
    axes[1].bar(["softcalc", "phonopy"], [m["softcalc_s_median"], m["phonopy_s_median"]])
    axes[1].set_title(f"D(q) + eigenvalues, {m['n_qpoints']} q\nratio {m['ratio_median']:.2f}")
    axes[1].set_ylabel("wall time (s, median)")
    save_figure(fig, path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_out/hessian_speed"))
    parser.add_argument("--model", default="chgnet")
    parser.add_argument("--delta", type=float, default=0.01, help="displacement, Å")
    parser.add_argument("--batch-sizes", default="4,8,16,32,64", help="comma-separated batch sizes")
    parser.add_argument("--hessian-repeats", type=int, default=2)
    parser.add_argument("--mesh", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-hessian", action="store_true", help="only part (b)")
    parser.add_argument(
        "--no-model-calculator",
        action="store_true",
        help="part (a) without the loop over the model's own ASE calculator (CHGNetCalculator)",
    )
    parser.add_argument(
        "--no-serial",
        action="store_true",
        help="part (a) without the serial loops: batch sizes only, ratios to the smallest one",
    )
    args = parser.parse_args()

    from softcalc.fileio import write_json

    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
    }
    results["mesh"] = bench_mesh(args.mesh, args.repeats)
    print("mesh:", results["mesh"])
    if not args.skip_hessian:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        results["hessian"] = bench_hessian(
            args.model,
            args.delta,
            sizes,
            args.hessian_repeats,
            model_calculator=not args.no_model_calculator,
            serial=not args.no_serial,
        )
        print("hessian:", results["hessian"])
    results["machine"]["load_average_end"] = os.getloadavg()
    write_json(args.out / "hessian_speed.json", results)
    plot(results, args.out / "hessian_speed.png")
    print(f"wrote {args.out / 'hessian_speed.json'} and {args.out / 'hessian_speed.png'}")


if __name__ == "__main__":
    main()
