"""Where a relaxation stops with a global λ, and what that does to the bulk modulus (README note).

With one global λ, E' = E_ref + λ (E - E_ref) has the minimum of E (E_ref depends on the composition
only), so a converged relaxation finds the same structure with the bare and the corrected model; forces
and stress are λ times the bare ones, so a threshold ``fmax`` on the corrected model is ``fmax / λ`` on
the bare one. With a loose threshold, either relaxation stops somewhere inside its tolerance, and a
property that depends on the volume (the bulk modulus) then differs by more than λ.

Si, 8-atom conventional diamond cell, started at a = 5.55 Å with the atoms rattled by 0.02 Å; ASE's
FrechetCellFilter + FIRE (atoms and cell, as matcalc's RelaxCalc does) at fmax 0.1 eV/Å (matcalc's
default) and 1e-3 eV/Å, relaxed with the bare model and with SoftCorrectedCalc(λ). Bulk modulus: a
Birch-Murnaghan fit of E(V) over ±3 % volume at fixed fractional positions, from the model being
judged (bare or corrected) at the structure it relaxed (or at the bare-relaxed structure).

Usage::

    .venv/bin/python benchmarks/relax_tolerance.py [--model chgnet] [--scale 1.2]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("SOFTCALC_MODEL_DIR", str(SHARED / "models"))


def relaxed(atoms, calc, fmax: float):  # noqa: ANN001, ANN201 - ase.Atoms
    """``atoms`` relaxed (positions and cell) with FrechetCellFilter + FIRE to ``fmax`` (eV/Å)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    out = atoms.copy()
    out.calc = calc
    opt = FIRE(FrechetCellFilter(out), logfile=None)
    opt.run(fmax=fmax, steps=2000)
    out.info["steps"] = opt.nsteps
    return out


def bulk_modulus_gpa(atoms, calc) -> float:  # noqa: ANN001
    """Birch-Murnaghan bulk modulus (GPa) of ``calc`` around ``atoms``' volume, fixed fractional positions."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    volumes, energies = [], []
    for f in np.linspace(0.97, 1.03, 7):
        strained = atoms.copy()
        strained.set_cell(atoms.cell * f ** (1 / 3), scale_atoms=True)
        strained.calc = calc
        volumes.append(strained.get_volume())
        energies.append(strained.get_potential_energy())
    _, _, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return float(b / GPa)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="chgnet")
    parser.add_argument("--scale", type=float, default=1.2)
    args = parser.parse_args()

    from ase.build import bulk
    from ase.units import GPa

    from softcalc import SoftCorrectedCalc, load_model

    bare = load_model(args.model)
    corrected = SoftCorrectedCalc(bare, scale=args.scale)
    start = bulk("Si", "diamond", a=5.55, cubic=True)
    start.rattle(0.02, seed=3)
    print(f"{args.model}, λ = {args.scale}, Si8 from a = 5.55 Å")
    for fmax in (0.1, 1e-3):
        r_bare = relaxed(start, bare, fmax)
        r_corr = relaxed(start, corrected, fmax)
        k_bare = bulk_modulus_gpa(r_bare, bare)
        k_corr = bulk_modulus_gpa(r_corr, corrected)
        k_corr_at_bare = bulk_modulus_gpa(r_bare, corrected)
        for name, r, calc in (("bare", r_bare, bare), ("corrected", r_corr, corrected)):
            r.calc = calc
            p = -np.trace(r.get_stress(voigt=False)) / 3 / GPa
            print(
                f"  fmax {fmax:g}: relaxed with {name:9s}: a = {r.get_volume() ** (1 / 3):.4f} Å, "
                f"{r.info['steps']} steps, residual pressure {p:+.3f} GPa ({name} model)"
            )
        print(
            f"  fmax {fmax:g}: K bare {k_bare:.2f} GPa, K corrected {k_corr:.2f} GPa "
            f"(ratio {k_corr / k_bare:.3f}); corrected at the bare-relaxed cell {k_corr_at_bare:.2f} GPa "
            f"(ratio {k_corr_at_bare / k_bare:.3f})"
        )


if __name__ == "__main__":
    main()
