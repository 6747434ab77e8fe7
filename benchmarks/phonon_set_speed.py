"""Run time and memory of the model side of a large phonon data set: 960-atom supercells, 60 displacements.

Users' phonopy sets often have supercells of several hundred atoms. This probe builds one of the size the
phonopy issue names: the 10-atom primitive cell of corundum Al2O3 (from the shared phonopy example),
a 4x4x6 supercell (960 atoms) and phonopy's ± displacements of every primitive atom without symmetry
(3 x 10 x 2 = 60 displaced supercells, as a no-symmetry or low-symmetry set has). It times what
``softcalc phonons`` does on the model side of such a set, with the model's forces only (no DFT numbers
are made up): the forces on the 60 displaced supercells and the perfect one through the batched path
(:class:`softcalc.forces.ForceEvaluator`, memory bounded by the batch size and the plugin's atoms per
pass), phonopy's fit of the force constants, and the frequencies on the 8x8x8 mesh of the benchmark.
Writes ``phonon_set_speed.json`` into ``--out``.

Usage::

    .venv/bin/python benchmarks/phonon_set_speed.py --model chgnet --out bench_out/phonon_set_speed
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("SOFTCALC_MODEL_DIR", str(SHARED / "models"))
os.environ.setdefault("SOFTCALC_DATA_DIR", str(SHARED / "data"))


def large_set(supercell: tuple[int, int, int]):  # noqa: ANN201 - phonopy.Phonopy
    """Corundum's primitive cell in a ``supercell``, ± displacements of each primitive atom, no symmetry."""
    import phonopy

    from softcalc.phonons.phonopy_io import phonopy_object

    corundum = Path(os.environ["SOFTCALC_DATA_DIR"]) / "phonons/phonopy-examples/Al2O3/POSCAR-unitcell"
    unit = phonopy_object(
        unitcell_filename=str(corundum),
        supercell_matrix=np.eye(3, dtype=int),
        primitive_matrix="auto",
        calculator="vasp",
        log_level=0,
    )
    ph = phonopy.Phonopy(unit.primitive, supercell_matrix=np.diag(supercell), primitive_matrix=None,
                         is_symmetry=False, log_level=0)
    ph.generate_displacements(distance=0.01, is_plusminus=True)
    return ph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="chgnet")
    parser.add_argument("--supercell", type=int, nargs=3, default=(4, 4, 6))
    parser.add_argument("--batch-size", type=int, default=16, help="displaced supercells per model call")
    parser.add_argument("--out", type=Path, default=Path("bench_out/phonon_set_speed"))
    args = parser.parse_args()

    import torch

    from softcalc import load_model
    from softcalc.fileio import write_json
    from softcalc.forces import ForceEvaluator
    from softcalc.phonons.comparison import mesh_frequencies
    from softcalc.phonons.phonopy_io import fit_force_constants, from_phonopy_atoms

    t0 = time.perf_counter()
    ph = large_set(tuple(args.supercell))
    cells = [from_phonopy_atoms(c) for c in ph.supercells_with_displacements]
    cells.append(from_phonopy_atoms(ph.supercell))
    t_build = time.perf_counter() - t0
    calc = load_model(args.model)
    t0 = time.perf_counter()
    forces = ForceEvaluator(calc, args.batch_size).forces(cells, progress=True, desc="supercells")
    t_forces = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit_force_constants(ph, [f - forces[-1] for f in forces[:-1]], symmetrize=True)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    freqs = mesh_frequencies(ph)
    t_mesh = time.perf_counter() - t0
    result = {
        "model": calc.info.name,
        "dtype": calc.info.dtype,
        "supercell_atoms": len(ph.supercell),
        "n_displacements": len(cells) - 1,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "seconds": {"build_set": t_build, "model_forces": t_forces, "force_constants_fit": t_fit,
                    "mesh_8x8x8": t_mesh},
        "atoms_per_second": sum(len(c) for c in cells) / t_forces,
        "max_frequency_thz": float(freqs.max()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
    }
    print(result)
    write_json(args.out / "phonon_set_speed.json", result)


if __name__ == "__main__":
    main()
