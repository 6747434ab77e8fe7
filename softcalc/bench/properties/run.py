"""Evaluation and orchestration of ``bench properties``: every model, material and correction, property by
property through the registry (:func:`~softcalc.bench.properties.registry.registered_properties`).

Writes ``summary.json`` (deterministic: fixed seeds, no timestamps), ``summary.md``, ``predictions.h5``
and the properties' PNG plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from tqdm.auto import tqdm

from softcalc.bench.properties.candidates import Candidate, candidates, corrected
from softcalc.bench.properties.materials import Material, load_materials
from softcalc.bench.properties.model import model_calculator
from softcalc.bench.properties.predictions import write_predictions
from softcalc.bench.properties.registry import Source, registered_properties
from softcalc.bench.properties.report import markdown
from softcalc.calculator import SoftCorrectedCalc
from softcalc.correction import Correction
from softcalc.data.paths import resolve_data_path
from softcalc.errors import DataError, SoftcalcError
from softcalc.fileio import atomic_path, write_json
from softcalc.forces import ForceEvaluator
from softcalc.model import ModelCalculator
from softcalc.phonons.comparison import PhononSet, load_phonon_reference
from softcalc.version import __version__

#: default data, resolved under $SOFTCALC_DATA_DIR
MLEARN = "forces/mlearn"
DEFAULT_BOOTSTRAP = 1000


@dataclass
class Evaluated:
    """One candidate on one material: the summary record and the arrays for predictions.h5.

    Attributes:
        record: the correction's entry of summary.json.
        energies: the model's energy (eV) of every frame; None when the candidate was skipped.
        values: property name -> the model's values, for the properties the material has.
    """

    record: dict[str, Any]
    energies: np.ndarray | None = None
    values: dict[str, Any] = field(default_factory=dict)


def dft_values(material: Material) -> dict[str, Any]:
    """Property name -> DFT values, for the properties the material has."""
    source = Source(
        np.array([np.nan if f.energy is None else f.energy for f in material.frames]),
        [f.forces for f in material.frames],
    )
    return {
        p.name: p.values(material, material.located[p.name], source)
        for p in registered_properties()
        if p.name in material.located
    }


def data_summary(material: Material, dft: dict[str, Any]) -> dict[str, Any]:
    """The data of one material and its DFT properties (what each property reports of DFT)."""
    out: dict[str, Any] = {
        "splits": {
            name: {"source": d.source, "sha256": d.sha256, "n_frames": len(d)}
            for name, d in material.split.datasets().items()
        },
        "rule": material.split.rule,
        "skipped": dict(material.skipped),
    }
    for prop in registered_properties():
        if prop.name in material.located:
            summary = prop.dft_summary(material, material.located[prop.name], dft[prop.name])
            if summary is not None:
                out[prop.name] = summary
    return out


def evaluate_candidate(
    calc: ModelCalculator,
    candidate: Candidate,
    material: Material,
    dft: dict[str, Any],
    progress: bool = False,
) -> Evaluated:
    """Every property of ``material``, the model with one correction against ``dft`` (:func:`dft_values`)."""
    record: dict[str, Any] = {"fitted_on": candidate.fitted_on, **candidate.fit}
    if candidate.skipped is not None:
        return Evaluated({**record, "skipped": candidate.skipped})
    try:
        model = corrected(calc, candidate)
    except SoftcalcError as exc:  # a correction file for another model, or unreadable
        return Evaluated({**record, "skipped": str(exc)})
    if isinstance(model, SoftCorrectedCalc) and isinstance(candidate.correction, Path):
        c = model.correction
        record.update(scale=c.scale, species_scales=dict(c.species_scales), recommended=c.recommended)
    desc = f"{calc.info.name} {material.name} {candidate.key}"
    results = ForceEvaluator(model).results([f.atoms for f in material.frames], progress=progress, desc=desc)
    source = Source(
        np.array([r["energy"] for r in results]), [r["forces"] for r in results], model, calc.info.name
    )
    values = {}
    for prop in registered_properties():
        if prop.name in material.located:
            located = material.located[prop.name]
            values[prop.name] = prop.values(material, located, source)
            record[prop.name] = prop.summary(material, located, dft[prop.name], values[prop.name])
    return Evaluated(record, source.energies, values)


def _structures(materials: Sequence[Material], phonons: Mapping[str, PhononSet]) -> list[Atoms]:
    out = [f.atoms for m in materials for f in m.frames]
    for pset in phonons.values():
        out += [f.atoms for f in pset.dataset.frames] + [pset.dataset.reference]
    return out


def headline(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and material, the bare model: each property's headline fields."""
    rows = []
    for model, per_material in results.items():
        for material, r in per_material.items():
            bare = r["corrections"]["bare"]
            row = {"model": model, "material": material}
            for prop in registered_properties():
                row.update(prop.headline(bare.get(prop.name)))
            rows.append(row)
    return rows


def assemble(
    config: dict[str, Any],
    materials: dict[str, dict[str, Any]],
    models: dict[str, ModelCalculator],
    results: dict[str, dict[str, Any]],
    unmatched: dict[str, str],
) -> dict[str, Any]:
    """The summary document (deterministic: fixed seeds, no timestamps)."""
    summary = {
        "benchmark": "properties",
        "config": config,
        "models": {name: calc.info.fingerprint for name, calc in models.items()},
        "data": materials,
        "phonon_sets_skipped": unmatched,
        "results": results,
        "headline": headline(results),
    }
    for prop in registered_properties():
        pooled = prop.pool(materials, results)
        if pooled is not None:
            summary[f"pooled_{prop.name}"] = pooled
    summary["softcalc_version"] = __version__
    return summary


def run_properties(
    models: Sequence[str] | Mapping[str, str | Calculator],
    data: Sequence[str | Path] = (MLEARN,),
    out: str | Path = "bench-properties",
    corrections: Sequence[str | Path] = (),
    phonons: Sequence[str | Path] = (),
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    device: str = "cpu",
    dtype: str | None = None,
    progress: bool = False,
    plots: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; returns the summary written to ``out/summary.json`` (see the package docstring).

    Args:
        models: softcalc model names, or name -> model name or ASE calculator.
        data: data files or folders (default the mlearn sets under $SOFTCALC_DATA_DIR).
        corrections: softcalc correction JSON files, each compared as ``file:NAME``.
        phonons: phonopy force sets; each is matched to the material of the same name.
        n_bootstrap, seed: bootstrap replicas and seed of every calibration.
    """
    named = dict(models) if isinstance(models, Mapping) else {m: m for m in models}
    if not named:
        raise DataError("bench properties needs at least one model (e.g. --models chgnet,m3gnet)")
    files = [Path(p) for p in corrections]
    for path in files:  # an unreadable file is the user's mistake, found before any model runs
        Correction.load(path)
    sets = [load_phonon_reference(resolve_data_path(p)) for p in phonons]
    mats = load_materials(data, {p.material: p for p in sets})
    names = {m.name for m in mats}
    psets = {p.material: p for p in sets if p.material in names}
    unmatched = {
        p.material: f"no material {p.material!r} in the data" for p in sets if p.material not in names
    }
    config = {
        "data": [str(p) for p in data],
        "corrections": [str(p) for p in files],
        "phonons": [str(p) for p in phonons],
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }
    dft = {m.name: dft_values(m) for m in mats}
    calcs: dict[str, ModelCalculator] = {}
    results: dict[str, dict[str, Any]] = {}
    arrays: dict[str, dict[str, dict[str, Evaluated]]] = {}
    for name, model in named.items():
        calc = calcs[name] = model_calculator(model, name, device, dtype)
        structures = _structures(mats, psets)
        ForceEvaluator(calc).results(structures, progress=progress, desc=f"{name} (all structures)")
        results[name], arrays[name] = {}, {}
        for m in tqdm(mats, desc=f"{name} corrections", disable=not progress, leave=False):
            evaluated = {
                c.key: evaluate_candidate(calc, c, m, dft[m.name], progress)
                for c in candidates(calc, m, bool(psets), files, config)
            }
            arrays[name][m.name] = evaluated
            results[name][m.name] = {"corrections": {k: e.record for k, e in evaluated.items()}}
    summary = assemble(
        config, {m.name: data_summary(m, dft[m.name]) for m in mats}, calcs, results, unmatched
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(markdown(summary))
    write_predictions(out / "predictions.h5", config, mats, dft, calcs, arrays)
    if plots:
        for prop in registered_properties():
            prop.plot(out, summary)
    return summary
