"""What a resumed MD run must share with its trajectory file, and the check that refuses a mismatch.

A trajectory records the model and correction that produced it (:func:`fingerprint`, root attribute
``fingerprint``), the atoms (``/atoms``: numbers, masses, pbc), the ensemble settings (root
attributes) and the cell of each checkpoint. :func:`check_resume` compares a resume request with
them and raises :class:`~softcalc.md.errors.ResumeMismatchError` naming every difference (file
value, given value) and the fix. Files written before the fingerprint was recorded are checked
against what they do record (model name, family and weights hash, correction scales), with a
warning naming what could not be checked.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.symbols import Symbols

from softcalc.calculator import SoftCorrectedCalc
from softcalc.md.errors import ResumeMismatchError
from softcalc.md.trajectory import StoredRun
from softcalc.model import ModelCalculator

#: Largest difference in Å between the given cell and the checkpoint's for NVE/NVT (fixed cell).
CELL_TOLERANCE = 1e-6
#: Largest difference in amu between the given masses and the file's.
MASS_TOLERANCE = 1e-9

_MODEL_LABELS = {
    "calculator": "calculator",
    "family": "model family",
    "name": "model",
    "weights_sha256": "model weights sha256",
}
_CORRECTION_LABELS = {
    "kind": "correction kind",
    "scale": "correction scale",
    "species_scales": "correction species scales",
    "reference_energies": "reference energies μ_Z (eV/atom)",
}


def model_metadata(calculator: Calculator) -> dict[str, Any]:
    """How the file describes the model (root attributes ``model``, ``model_family``, ``weights_sha256``,
    ``correction``...): for people, and for checking files that predate :func:`fingerprint`."""
    info = getattr(calculator, "info", None)
    correction = getattr(calculator, "correction", None)
    return {
        "calculator": repr(calculator),
        "model": info.name if info is not None else type(calculator).__name__,
        "model_family": info.family if info is not None else None,
        "weights_sha256": info.weights_sha256 if info is not None else None,
        "correction": correction.to_dict() if correction is not None else None,
        "device": info.device if info is not None else None,
    }


def fingerprint(calculator: Calculator, atoms: Atoms) -> dict[str, Any]:
    """What a resume must match about the forces: the model and the correction applied to it.

    Returns ``calculator`` (class name of the model's calculator; for a foreign ASE calculator the only
    identity there is), ``family``, ``name``, ``weights_sha256`` (None for foreign calculators) and
    ``correction``: None for a bare model, else ``kind``, ``scale``, ``species_scales`` (per-species
    corrections) and the ``reference_energies`` μ_Z in eV/atom in effect for the species of ``atoms``.
    """
    base = calculator.base if isinstance(calculator, SoftCorrectedCalc) else calculator
    model = base.info.fingerprint if isinstance(base, ModelCalculator) else {}
    record: dict[str, Any] = {"calculator": type(base).__name__}
    record.update({key: model.get(key) for key in ("family", "name", "weights_sha256")})
    record["correction"] = None
    if isinstance(calculator, SoftCorrectedCalc):
        c = calculator.correction
        refs = calculator.reference_energies
        species = sorted(set(atoms.get_chemical_symbols()))
        parameters = c.parameters()
        if c.kind == "finetune" and "weights_sha256" not in parameters and calculator.info is not None:
            parameters["weights_sha256"] = calculator.info.weights_sha256  # tuned in memory, not saved yet
        record["correction"] = {
            "kind": c.kind, **parameters,
            "reference_energies": {s: float(refs.get(s, 0.0)) for s in species},
        }
    return record


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _describe_correction(correction: dict[str, Any] | None) -> str:
    if correction is None:
        return "none (bare model)"
    if correction.get("species_scales"):
        return f"per-species scales {correction['species_scales']} (others {correction['scale']})"
    return f"global scale {correction['scale']}"


def _diffs(labels: dict[str, str], stored: dict[str, Any], given: dict[str, Any]) -> list[str]:
    return [f"{label}: file has {stored.get(key)!r}, given {given.get(key)!r}"
            for key, label in labels.items() if stored.get(key) != given.get(key)]


def _correction_diffs(stored: dict[str, Any] | None, given: dict[str, Any] | None, labels: dict[str, str]
                      ) -> list[str]:
    if stored is None or given is None:
        if stored is given:
            return []
        return [f"correction: file has {_describe_correction(stored)}, given {_describe_correction(given)}"]
    return _diffs(labels, stored, given)


def _model_checks(metadata: dict[str, Any], calculator: Calculator, given: dict[str, Any]
                  ) -> tuple[list[str], list[str]]:
    """Differences in model and correction, and what an older file could not tell."""
    stored = metadata.get("fingerprint")
    if isinstance(stored, dict):
        diffs = _diffs(_MODEL_LABELS, stored, given)
        diffs += _correction_diffs(stored.get("correction"), given["correction"], _CORRECTION_LABELS)
        return diffs, []
    # a file from before the fingerprint: compare the attributes it has
    legacy = model_metadata(calculator)
    labels = {"model_family": "model family", "model": "model", "weights_sha256": "model weights sha256"}
    diffs = _diffs(labels, metadata, legacy)
    unchecked = []
    if given["family"] is None and isinstance(calculator, SoftCorrectedCalc):
        unchecked.append("class of the calculator wrapped by SoftCorrectedCalc")
    old = metadata.get("correction")
    if isinstance(old, dict):
        old = {"kind": old.get("kind"), "scale": old.get("scale"),
               **({"species_scales": old["species_scales"]} if old.get("species_scales") else {})}
    new = given["correction"]
    scales = {k: v for k, v in _CORRECTION_LABELS.items() if k != "reference_energies"}
    diffs += _correction_diffs(old, new, scales)
    if old is not None and new is not None:
        unchecked.append("reference energies μ_Z")
    return diffs, unchecked


def _structure_diffs(stored: StoredRun, atoms: Atoms, ensemble: str) -> list[str]:
    diffs = []
    numbers, given = np.asarray(stored.numbers), atoms.numbers
    same_numbers = numbers.shape == given.shape and bool((numbers == given).all())
    if not same_numbers:
        text = (f"atomic numbers: file has {Symbols(numbers).get_chemical_formula()} ({len(numbers)} atoms), "
                f"given {Symbols(given).get_chemical_formula()} ({len(given)} atoms)")
        if numbers.shape == given.shape:
            i = int(np.flatnonzero(numbers != given)[0])
            text += (f", first difference at atom {i}: {Symbols(numbers[i:i + 1])} in the file, "
                     f"{Symbols(given[i:i + 1])} given")
        diffs.append(text)
    if not np.array_equal(np.asarray(stored.pbc, dtype=bool), atoms.pbc):
        diffs.append(f"periodic directions: file has {np.asarray(stored.pbc, dtype=bool).tolist()}, "
                     f"given {atoms.pbc.tolist()}")
    if same_numbers:
        off = np.flatnonzero(np.abs(np.asarray(stored.masses) - atoms.get_masses()) > MASS_TOLERANCE)
        if off.size:
            i = int(off[0])
            diffs.append(f"masses (amu): file has {float(stored.masses[i])!r} for atom {i} "
                         f"({atoms.get_chemical_symbols()[i]}), given {float(atoms.get_masses()[i])!r} "
                         f"({off.size} atoms differ)")
    if ensemble != "npt":  # NVE and NVT keep the cell: the given one must be the checkpoint's
        cell, given_cell = np.asarray(stored.checkpoint.cell), atoms.cell.array
        worst = float(np.abs(cell - given_cell).max())
        if worst > CELL_TOLERANCE:
            diffs.append(f"cell (Å): file has {np.round(cell, 6).tolist()}, given "
                         f"{np.round(given_cell, 6).tolist()} (up to {worst:.3g} Å apart; "
                         f"{ensemble.upper()} keeps the cell fixed)")
    return diffs


def check_resume(
    path: str | Path, stored: StoredRun, atoms: Atoms, calculator: Calculator, settings: dict[str, Any],
    keys: tuple[str, ...],
) -> None:
    """Refuse to continue ``stored`` (read from ``path``) with another model, correction, structure or
    settings.

    Compares :func:`fingerprint` (model calculator, family, name, weights sha256; correction kind,
    scales, reference energies), the atomic numbers in order, periodicity and masses, the cell (NVE and
    NVT: the checkpoint's, to :data:`CELL_TOLERANCE` Å; NPT changes the cell, so only the atoms are
    compared) and the ``keys`` of ``settings`` (ensemble settings and frame interval).

    Raises:
        ResumeMismatchError: naming each difference (file value, given value) and the fix.

    Warns:
        UserWarning: for a file written before softcalc recorded what is compared, naming what could
        not be checked.
    """
    metadata = stored.metadata
    diffs, unchecked = _model_checks(metadata, calculator, fingerprint(calculator, atoms))
    diffs += _structure_diffs(stored, atoms, settings["ensemble"])
    for key in keys:
        if key not in metadata:
            unchecked.append(key)
        elif _plain(metadata[key]) != _plain(settings[key]):
            diffs.append(f"{key}: file has {_plain(metadata[key])!r}, given {_plain(settings[key])!r}")
    if diffs:
        command = metadata.get("command")
        started = f" (it was started with: {command})" if command else ""
        raise ResumeMismatchError(
            f"cannot resume {path}: the run differs from the one the file records ({'; '.join(diffs)}). "
            f"Fix: resume with the model, correction, structure and settings of the original run{started}, "
            "or start a new trajectory: another --traj path, or --overwrite to replace this one."
        )
    if unchecked:
        warnings.warn(
            f"{path} was written by an older softcalc that did not record: {', '.join(unchecked)}. The "
            "resume could not check them; make sure they are those of the original run.",
            UserWarning,
            stacklevel=4,  # the caller of run_md
        )
