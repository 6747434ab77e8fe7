"""Forgetting check of fine-tuned weights: how far they moved the model on structures it was not tuned on.

Fine-tuning on a handful of frames can pull a universal model away from what it knew (catastrophic
forgetting). The check compares the bare and the tuned model on structures outside the calibration
data, without any DFT reference (the drift itself is the finding):

- the ground state of every element tuned on (ASE's reference crystal structure and lattice constant),
  which the tuned model must still describe;
- the shared unit cells of other chemistries (:func:`softcalc.data.paths.reference_structures`) whose
  elements the model covers.

Each structure is evaluated as given and rattled (0.05 Å, fixed seed) in a supercell of at least 8 Å,
and the report gives the energy drift per atom (meV/atom), the force drift (MAE of the force
difference, eV/Å) and the pressure drift (GPa). Drifts above :data:`ENERGY_DRIFT` or
:data:`FORCE_DRIFT` on another chemistry are flagged: the tuned weights should then be used only for
the tuned chemistry (SoftCorrectedCalc also warns when it meets elements the weights were not tuned on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.io import read
from ase.units import GPa

from softcalc.calibration.verdict import Reason
from softcalc.data.paths import reference_structures
from softcalc.forces import ForceEvaluator
from softcalc.model import ModelCalculator

#: flag an energy drift above this on structures outside the tuning data (eV/atom)
ENERGY_DRIFT = 0.05
#: flag a force drift (MAE of the force difference) above this (eV/Å)
FORCE_DRIFT = 0.1
#: warn about tuned weights that move a tuned element's ground-state pressure by more than this (GPa): with
#: bulk moduli of 75-260 GPa (Ge, Si, Mo) 1 GPa is a 0.4-1.3 % volume shift, the size of a functional's own
#: lattice error (Li, 13 GPa, would move 8 %); a 10-frame CHGNet fine-tune on mlearn Ge moved it by 3.9 GPa
GROUND_STATE_PRESSURE = 1.0
#: rattle amplitude (Å) and smallest supercell edge (Å) of the rattled copies
RATTLE, MIN_EDGE = 0.05, 8.0


@dataclass(frozen=True)
class Probe:
    """A structure of the check: ``kind`` is ``ground state`` (an element tuned on) or ``other chemistry``."""

    name: str
    kind: str
    atoms: Atoms


def probes(elements: Sequence[str], covered: frozenset[str]) -> tuple[list[Probe], list[str]]:
    """The structures of the check and, for elements without an ASE ground state, why they are missing."""
    out, skipped = [], []
    for el in elements:
        try:
            out.append(Probe(f"{el} ground state", "ground state", bulk(el)))
        except (ValueError, KeyError, RuntimeError) as exc:
            skipped.append(f"{el}: no reference crystal in ASE ({exc})")
    for name, path in reference_structures().items():  # none without shared data: ground states only
        atoms = read(path, format="vasp")
        symbols = set(atoms.get_chemical_symbols())
        if symbols <= covered and not symbols <= set(elements):
            out.append(Probe(name, "other chemistry", atoms))
    return out, skipped


def _rattled(atoms: Atoms, seed: int) -> Atoms:
    lengths = atoms.cell.lengths()
    rep = [max(1, int(np.ceil(MIN_EDGE / x))) for x in lengths]
    big = atoms.repeat(rep)
    big.rattle(RATTLE, seed=seed)
    return big


def forgetting_check(
    bare: ModelCalculator, tuned: ModelCalculator, elements: Sequence[str]
) -> dict[str, Any]:
    """Drifts of ``tuned`` from ``bare`` on structures outside the tuning data (see the module docstring).

    Returns:
        ``structures``: one entry per probe with ``energy_drift_meV_atom``, ``force_drift`` (eV/Å),
        ``pressure_drift_GPa``; ``flagged``: names of other-chemistry probes beyond the thresholds;
        ``skipped``: elements without a ground state to check.
    """
    found, skipped = probes(sorted(elements), bare.info.elements)
    rows = []
    for k, probe in enumerate(found):
        pair = [probe.atoms, _rattled(probe.atoms, seed=k)]
        results = [ForceEvaluator(calc).results(pair) for calc in (bare, tuned)]
        stress = []
        for calc in (bare, tuned):
            atoms = probe.atoms.copy()
            atoms.calc = calc
            stress.append(-np.mean(atoms.get_stress()[:3]) / GPa)
        n = len(probe.atoms)
        rows.append(
            {
                "name": probe.name,
                "kind": probe.kind,
                "energy_drift_meV_atom": 1e3 * (results[1][0]["energy"] - results[0][0]["energy"]) / n,
                "force_drift": float(np.mean(np.abs(results[1][1]["forces"] - results[0][1]["forces"]))),
                "pressure_drift_GPa": float(stress[1] - stress[0]),
            }
        )
    flagged = [
        r["name"]
        for r in rows
        if r["kind"] == "other chemistry"
        and (abs(r["energy_drift_meV_atom"]) > 1e3 * ENERGY_DRIFT or r["force_drift"] > FORCE_DRIFT)
    ]
    return {"structures": rows, "flagged": flagged, "skipped": skipped}


def ground_state_reason(check: dict[str, Any]) -> Reason | None:
    """The warning for a tuned element's ground state whose pressure moved beyond
    :data:`GROUND_STATE_PRESSURE` from the bare model (None when none did).

    A warning, not a block: without a DFT reference at that geometry the move may be a correction (the
    bare model's equilibrium volume is off too). What the verdict checks against DFT near equilibrium
    are the energy-strain curvatures and surface energies of the data's frames
    (:mod:`softcalc.calibration.properties`), not the pressure.
    """
    moved = [
        r
        for r in check["structures"]
        if r["kind"] == "ground state" and abs(r["pressure_drift_GPa"]) > GROUND_STATE_PRESSURE
    ]
    if not moved:
        return None
    listed = ", ".join(f"{r['name']} ({r['pressure_drift_GPa']:+.2f} GPa)" for r in moved)
    return Reason(
        "ground-state-moved",
        False,
        f"the tuned weights moved the pressure of {listed} by more than {GROUND_STATE_PRESSURE:g} GPa "
        "from the bare model, so its equilibrium volume and elastic constants move with it. Check them "
        "against DFT (strain and surface frames among the calibration or held-out data let the verdict check "
        "curvatures and surface energies), or tune with --replay or --anchor to stay closer to the base.",
    )


def forgetting_reason(check: dict[str, Any]) -> Reason | None:
    """The warning for other chemistries the tuned weights moved beyond the thresholds (None: none)."""
    if not check["flagged"]:
        return None
    rows = {r["name"]: r for r in check["structures"]}
    worst = ", ".join(
        f"{name} ({rows[name]['energy_drift_meV_atom']:+.0f} meV/atom, {rows[name]['force_drift']:.3f} eV/Å)"
        for name in check["flagged"]
    )
    return Reason(
        "forgetting",
        False,
        f"the tuned weights moved the model on other chemistries beyond {1e3 * ENERGY_DRIFT:.0f} meV/atom or "
        f"{FORCE_DRIFT} eV/Å: {worst}. Use them for the tuned chemistry only (SoftCorrectedCalc warns "
        "for other elements), or tune with --replay, --anchor, --freeze all-but-readout or fewer --epochs to "
        "stay closer.",
    )
