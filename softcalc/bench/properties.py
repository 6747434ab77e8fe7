"""Which regime a softening correction fixes: surfaces, strain curvature, held-out forces, phonons.

For every model, material and correction (``softcalc bench properties``):

- surface energies γ = (E_slab − n·ε_bulk)/(2A) (eV/Å², :mod:`softcalc.properties.surfaces`) of every
  frame of a surface group, on the DFT geometry (unrelaxed), DFT and model each with its own ε_bulk:
  the energy per atom of the ground-state frame ("Ground state" in its group or description), else the
  zero-strain value of the joint quadratic fit of the strain modes. Reported: slope through the origin
  of γ_model vs γ_DFT, MAE, number of slabs underestimated;
- energy-strain curvature d²(E/N)/dε² (eV/atom, :mod:`softcalc.properties.strain`) of each strain mode
  ("mode k, strain x" frames, plus the ground-state frame at ε = 0), the ratio model / DFT per mode,
  and the mean ratio over the normal and over the shear modes (kind read from the cells);
- held-out forces: s, λ*, MAE on the test split (:func:`softcalc.metrics.force_metrics`);
- phonons, for a material whose phonopy force set is given: frequency MAE, slope and max-frequency ratio
  through :mod:`softcalc.phonons.comparison`.

Surfaces and curvatures use the frames of both splits; materials are split as in ``bench softening``
(:func:`~softcalc.bench.softening.load_splits`: mlearn training/test files, else file order).
Corrections (λ fitted by :func:`softcalc.calibrate.calibrate` on the calibration split with the test
split held out, fixed seed): ``bare``; ``forces`` (all calibration forces); ``forces:AIMD-NVT`` (hot
frames); ``energy`` and ``energy:Elastic`` (target energy: all frames, strain frames); ``per-species``
(λ_Z, multi-element data only); ``phonons`` (the material's phonopy force set); ``file:NAME`` (given
correction files). Each model evaluates each structure once (:class:`~softcalc.bench.stored.StoredForces`);
:class:`~softcalc.calculator.SoftCorrectedCalc` applies global corrections to those results
(E' = E_ref + λ(E − E_ref)), per-species ones run the model again. A model may be any ASE calculator.

What the data cannot give (no surfaces, no strain frames, no energies, a mode with fewer than three
strains, a slab without vacuum, a non-stoichiometric slab, a correction that cannot be fitted) is
skipped with the reason recorded in ``summary.json``. Outputs: ``summary.json`` (deterministic: fixed
seeds, no timestamps), ``summary.md``, ``predictions.h5`` and the PNG plots.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from tqdm.auto import tqdm

from softcalc.bench.predictions import Split
from softcalc.bench.properties_report import markdown
from softcalc.bench.softening import load_splits
from softcalc.bench.stored import StoredForces
from softcalc.calculator import SoftCorrectedCalc
from softcalc.calibrate import calibrate
from softcalc.correction import Correction
from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.data.paths import resolve_data_path
from softcalc.errors import DataError, SoftcalcError
from softcalc.fileio import atomic_path, write_json
from softcalc.forces import ForceEvaluator
from softcalc.info import ModelInfo
from softcalc.metrics import force_metrics, mae, softening_scale
from softcalc.model import ModelAdapter, ModelCalculator
from softcalc.phonons.comparison import PhononSet, compare_phonons, load_phonon_reference
from softcalc.properties import (
    QuadraticFit,
    SlabGeometry,
    StrainCurve,
    find_slabs,
    fit_quadratic,
    is_ground_state,
    strain_curves,
    surface_energy,
    zero_strain_energy,
)
from softcalc.registry import load_adapter
from softcalc.version import __version__

FORMAT = "softcalc-bench-properties/1"
#: default data, resolved under $SOFTCALC_DATA_DIR
MLEARN = "forces/mlearn"
DEFAULT_BOOTSTRAP = 1000
#: fitted corrections: key -> (what λ is fitted on, calibrate keyword arguments)
FITS: dict[str, tuple[str, dict[str, Any]]] = {
    "forces": ("calibration forces, all groups", {}),
    "forces:AIMD-NVT": ("calibration forces of AIMD-NVT (hot) frames", {"groups": ["AIMD-NVT"]}),
    "energy": ("calibration energies, all groups", {"target": "energy"}),
    "energy:Elastic": (
        "calibration energies of Elastic (strain) frames",
        {"target": "energy", "groups": ["Elastic"]},
    ),
}
#: fields of a calibrate() report kept per fitted correction
REPORT_FIELDS = ("scale", "scale_ci95", "species_scales", "n_frames", "n_heldout", "recommended", "verdict")


class AseModel(ModelAdapter):
    """Any ASE calculator as a softcalc model: no weights, every element, no anchors μ_Z.

    Without anchors a global correction scales the whole energy (E' = λE); surface energies and
    curvatures of one composition scale by λ all the same.
    """

    def __init__(self, calc: Calculator, name: str) -> None:
        self.calc = calc
        self.info = ModelInfo(
            name=name,
            family="ase",
            weights=None,
            weights_sha256=None,
            elements=frozenset(),
            cutoff=0.0,
            n_message_passing=1,
            dtype="float64",
        )

    def compute(self, atoms: Atoms, properties: Sequence[str]) -> dict[str, Any]:
        """Energy (eV) and forces ((N, 3) eV/Å) of one structure."""
        atoms = atoms.copy()
        atoms.calc = self.calc
        return {
            "energy": float(atoms.get_potential_energy()),
            "forces": np.asarray(atoms.get_forces(), float),
        }


def model_calculator(
    model: str | Calculator, name: str, device: str = "cpu", dtype: str | None = None
) -> ModelCalculator:
    """A calculator that evaluates each structure once, from a softcalc model (name or calculator) or any
    ASE calculator."""
    if isinstance(model, ModelCalculator):
        adapter = model.model
    elif isinstance(model, Calculator):
        adapter = AseModel(model, name)
    else:
        adapter = load_adapter(model, device, dtype)
    return ModelCalculator(StoredForces(adapter.info, base=adapter))


@dataclass
class Layout:
    """Which frames of a material give which property.

    Attributes:
        bulk: index of the ground-state frame; None: ε_bulk is the zero-strain value of the mode fits.
        slabs: frame index -> slab geometry, for every slab that gives a surface energy.
        modes: mode name -> its frames.
        skipped: what (``surfaces``, ``strain``, ``mode k``, ``surface LABEL``) -> why it is skipped.
    """

    bulk: int | None = None
    slabs: dict[int, SlabGeometry] = field(default_factory=dict)
    modes: dict[str, StrainCurve] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class Material:
    """One material: its split (held-out forces), all its frames (train then test) and their layout."""

    name: str
    split: Split
    frames: list[ForceFrame]
    layout: Layout

    @property
    def test_slice(self) -> slice:
        """Where the test frames sit in :attr:`frames`."""
        return slice(len(self.split.train), len(self.frames))


def find_layout(frames: list[ForceFrame]) -> Layout:
    """Which frames are the bulk reference, slabs and strain modes; the skipped ones with reasons."""
    if not any(f.energy is not None for f in frames):
        reason = "the data carry no DFT energies"
        return Layout(skipped={"surfaces": reason, "strain": reason})
    layout = Layout()
    layout.bulk = next(
        (i for i, f in enumerate(frames) if f.energy is not None and is_ground_state(f.group, f.label)), None
    )
    layout.modes = strain_curves(frames, layout.bulk, layout.skipped)
    if layout.bulk is not None:
        bulk_atoms = frames[layout.bulk].atoms
    else:
        bulk_atoms = frames[next(iter(layout.modes.values())).frames[0]].atoms if layout.modes else None
    layout.slabs = find_slabs(frames, bulk_atoms, layout.skipped)
    return layout


def load_materials(paths: Sequence[str | Path]) -> list[Material]:
    """Every material of the data (see :func:`~softcalc.bench.softening.load_splits`) with its layout."""
    out = []
    for name, split in load_splits(paths).items():
        frames = [*split.train.frames, *split.test.frames]
        out.append(Material(name, split, frames, find_layout(frames)))
    return out


@dataclass
class PropertyValues:
    """Properties from one set of frame energies (DFT, or a model with a correction).

    Attributes:
        bulk_energy: ε_bulk (eV/atom); None without slabs.
        gamma: surface energies (eV/Å²), one per slab of the layout, in its order.
        curves: mode -> (strains, E/N in eV/atom), the ground state included at ε = 0 where it applies.
        fits: mode -> quadratic fit of its curve.
    """

    bulk_energy: float | None
    gamma: np.ndarray
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    fits: dict[str, QuadraticFit]


def property_values(material: Material, energies: np.ndarray) -> PropertyValues:
    """Surface energies and energy-strain fits of ``material`` from one energy (eV) per frame."""
    frames, layout = material.frames, material.layout
    per_atom = np.asarray(energies, dtype=float) / np.array([len(f.atoms) for f in frames])
    curves = {}
    for mode, curve in layout.modes.items():
        strains = [frames[i].strain for i in curve.frames] + ([0.0] if curve.with_bulk else [])
        values = [per_atom[i] for i in curve.frames] + ([per_atom[layout.bulk]] if curve.with_bulk else [])
        curves[mode] = (np.array(strains, dtype=float), np.array(values))
    fits = {mode: fit_quadratic(*curve) for mode, curve in curves.items()}
    bulk_energy, gamma = None, np.zeros(0)
    if layout.slabs:
        bulk_energy = float(per_atom[layout.bulk]) if layout.bulk is not None else zero_strain_energy(curves)
        gamma = np.array(
            [
                surface_energy(energies[i], len(frames[i].atoms), bulk_energy, g.area)
                for i, g in layout.slabs.items()
            ]
        )
    return PropertyValues(bulk_energy, gamma, curves, fits)


def _finite(value: float) -> float | None:
    """``value``, or None where it is NaN or infinite (strict JSON)."""
    return float(value) if math.isfinite(value) else None


def _bulk_source(material: Material) -> str:
    layout = material.layout
    if layout.bulk is not None:
        return f"ground-state frame {material.frames[layout.bulk].label!r}"
    return f"zero-strain value of the joint quadratic fit of {', '.join(layout.modes)}"


def dft_summary(material: Material, dft: PropertyValues) -> dict[str, Any]:
    """The data of one material and its DFT properties (surface energies eV/Å², curvatures eV/atom)."""
    frames, layout = material.frames, material.layout
    out: dict[str, Any] = {
        "splits": {
            name: {"source": d.source, "sha256": d.sha256, "n_frames": len(d)}
            for name, d in material.split.datasets().items()
        },
        "rule": material.split.rule,
        "skipped": dict(layout.skipped),
    }
    if layout.slabs:
        out["surfaces"] = {
            "bulk_reference": _bulk_source(material),
            "bulk_energy": dft.bulk_energy,
            "slabs": [
                {
                    "label": frames[i].label,
                    "n_atoms": len(frames[i].atoms),
                    "vacuum_axis": g.axis,
                    "area": g.area,
                    "vacuum": g.vacuum,
                    "gamma": float(gamma),
                }
                for (i, g), gamma in zip(layout.slabs.items(), dft.gamma)
            ],
        }
    if layout.modes:
        out["strain"] = {
            mode: {
                "kind": layout.modes[mode].kind,
                "n_points": fit.n_points,
                "n_strains": fit.n_strains,
                "with_ground_state": layout.modes[mode].with_bulk,
                "curvature": fit.curvature,
            }
            for mode, fit in dft.fits.items()
        }
    return out


def surface_summary(dft: PropertyValues, model: PropertyValues) -> dict[str, Any]:
    """γ slope through the origin (model vs DFT), MAE (eV/Å²), slabs underestimated, model γ per slab."""
    return {
        "n_slabs": len(dft.gamma),
        "slope": softening_scale(model.gamma, dft.gamma),
        "mae": mae(model.gamma, dft.gamma),
        "n_under": int(np.sum(model.gamma < dft.gamma)),
        "bulk_energy": model.bulk_energy,
        "gamma": [float(g) for g in model.gamma],
    }


def strain_summary(layout: Layout, dft: PropertyValues, model: PropertyValues) -> dict[str, Any]:
    """Curvature ratio model / DFT per mode; the mean ratio per kind (normal, shear) and over all modes."""
    modes = {
        mode: {
            "kind": layout.modes[mode].kind,
            "curvature": fit.curvature,
            "ratio": _finite(fit.curvature / dft.fits[mode].curvature) if dft.fits[mode].curvature else None,
        }
        for mode, fit in model.fits.items()
    }
    means: dict[str, float | None] = {}
    for kind in ("normal", "shear", "all"):
        ratios = [m["ratio"] for m in modes.values() if kind in ("all", m["kind"]) and m["ratio"] is not None]
        means[kind] = float(np.mean(ratios)) if ratios else None
    return {"modes": modes, "mean_ratio": means}


@dataclass
class Candidate:
    """A correction to compare: the bare model (``correction`` None), a fitted one or a file.

    Attributes:
        key: short name (``bare``, ``forces``, ``energy:Elastic``, ``file:NAME``...).
        fitted_on: what λ was fitted on (or where the correction comes from).
        correction: a :class:`Correction`, a correction file path, or None for the bare model.
        fit: calibrate's report fields (λ, its interval, verdict) or the file's scales.
        skipped: why there is no such correction here, or None.
    """

    key: str
    fitted_on: str
    correction: Correction | Path | None = None
    fit: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def _calibrated(
    calc: ModelCalculator,
    key: str,
    fitted_on: str,
    data: ForceDataset,
    test: ForceDataset,
    config: dict[str, Any],
    **kwargs: Any,
) -> Candidate:
    """λ fitted by :func:`calibrate` on ``data`` (``test`` held out), or the reason it cannot be."""
    try:
        cal = calibrate(
            calc, data, test=test, n_bootstrap=config["n_bootstrap"], seed=config["seed"], **kwargs
        )
    except SoftcalcError as exc:  # no frames of the group, no signal, no energies: a recorded skip
        return Candidate(key, fitted_on, skipped=str(exc))
    return Candidate(
        key, fitted_on, cal.correction, {k: cal.report[k] for k in REPORT_FIELDS if k in cal.report}
    )


def candidates(
    calc: ModelCalculator,
    material: Material,
    phonon_sets: Mapping[str, PhononSet],
    files: Sequence[Path],
    config: dict[str, Any],
) -> list[Candidate]:
    """The corrections compared on one material (see the module docstring), fitted where needed.

    ``phonon_sets`` maps materials to their phonopy force sets; with none at all, no ``phonons``
    correction is compared.
    """
    train, test = material.split.train, material.split.test
    out = [Candidate("bare", "no correction")]
    out += [_calibrated(calc, key, about, train, test, config, **kw) for key, (about, kw) in FITS.items()]
    elements = sorted({s for f in material.frames for s in f.atoms.get_chemical_symbols()})
    about = "calibration forces, all groups, one λ_Z per element"
    if len(elements) < 2:
        out.append(
            Candidate("per-species", about, skipped=f"single-element data ({elements[0]}): λ_Z = global λ")
        )
    elif not calc.model.supports_per_atom_energies:
        out.append(Candidate("per-species", about, skipped=f"{calc.info.name} has no per-atom energies"))
    else:
        out.append(_calibrated(calc, "per-species", about, train, test, config, per_species=True))
    if material.name in phonon_sets:
        pset = phonon_sets[material.name]
        about = f"phonopy force set {pset.dataset.source}"
        out.append(_calibrated(calc, "phonons", about, pset.dataset, test, config))
    elif phonon_sets:
        about = "phonopy force set"
        out.append(Candidate("phonons", about, skipped=f"no phonopy force set of {material.name} given"))
    out += [Candidate(f"file:{p.name}", f"correction file {p}", p) for p in files]
    return out


def corrected(calc: ModelCalculator, candidate: Candidate) -> Calculator:
    """The model with the candidate's correction (a not-recommended one is applied all the same).

    Fine-tuned weights replace the model, so they run on the adapter behind the benchmark's store of
    bare results (whose entries they must not reuse); scale corrections reuse the stored bare results.
    """
    if candidate.correction is None:
        return calc
    correction = candidate.correction
    if not isinstance(correction, Correction):
        correction = Correction.load(correction)
    base = calc
    if correction.kind == "finetune" and isinstance(calc.model, StoredForces) and calc.model.base is not None:
        base = ModelCalculator(calc.model.base)
    with warnings.catch_warnings():  # measuring a not-recommended correction is the point here
        warnings.simplefilter("ignore")
        return SoftCorrectedCalc(base, correction=correction)


@dataclass
class Evaluated:
    """One candidate on one material: the summary record and the arrays for predictions.h5."""

    record: dict[str, Any]
    energies: np.ndarray | None = None
    test_forces: np.ndarray | None = None
    values: PropertyValues | None = None


def evaluate_candidate(
    calc: ModelCalculator,
    candidate: Candidate,
    material: Material,
    dft: PropertyValues,
    phonons: PhononSet | None,
    progress: bool = False,
) -> Evaluated:
    """Held-out forces, surfaces, curvatures and phonons of the model with one correction."""
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
    energies = np.array([r["energy"] for r in results])
    test = material.test_slice
    model_forces = np.concatenate([r["forces"] for r in results[test]])
    dft_forces = np.concatenate([f.forces for f in material.frames[test]])
    metrics = force_metrics(model_forces, dft_forces, n_frames=len(results[test])).as_dict()
    record["heldout_forces"] = {k: _finite(v) if isinstance(v, float) else v for k, v in metrics.items()}
    values = None
    if any(f.energy is not None for f in material.frames):
        values = property_values(material, energies)
        if material.layout.slabs:
            record["surfaces"] = surface_summary(dft, values)
        if material.layout.modes:
            record["strain"] = strain_summary(material.layout, dft, values)
    if phonons is not None:
        metrics = compare_phonons(model, phonons, model=calc.info.name).metrics.as_dict()
        keys = ("force_set_slope", "freq_slope", "freq_mae_thz", "max_freq_ratio")
        record["phonons"] = {k: metrics[k] for k in keys}
    return Evaluated(record, energies, model_forces, values)


def _structures(materials: Sequence[Material], phonons: Mapping[str, PhononSet]) -> list[Atoms]:
    out = [f.atoms for m in materials for f in m.frames]
    for pset in phonons.values():
        out += [f.atoms for f in pset.dataset.frames] + [pset.dataset.reference]
    return out


def headline(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and material, the bare model: s, force MAE, γ slope/MAE/under, curvature ratios, ω MAE."""
    rows = []
    for model, per_material in results.items():
        for material, r in per_material.items():
            bare = r["corrections"]["bare"]
            surfaces, strain = bare.get("surfaces", {}), bare.get("strain", {})
            rows.append(
                {
                    "model": model,
                    "material": material,
                    "softening_scale": bare["heldout_forces"]["softening_scale"],
                    "force_mae": bare["heldout_forces"]["mae"],
                    "surface_slope": surfaces.get("slope"),
                    "surface_mae": surfaces.get("mae"),
                    "surface_under": surfaces.get("n_under"),
                    "n_slabs": surfaces.get("n_slabs"),
                    **{
                        f"curvature_{k}": strain.get("mean_ratio", {}).get(k)
                        for k in ("normal", "shear", "all")
                    },
                    "freq_mae_thz": bare.get("phonons", {}).get("freq_mae_thz"),
                }
            )
    return rows


def pooled_surfaces(
    data: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per model and correction, γ over the slabs of every material it was evaluated on (paper Fig. 2a):
    slope through the origin, MAE (eV/Å²), slabs underestimated."""
    out: dict[str, dict[str, Any]] = {}
    for model, per_material in results.items():
        pooled: dict[str, tuple[list[float], list[float], list[str]]] = {}
        for material, r in per_material.items():
            for key, c in r["corrections"].items():
                if "surfaces" in c:
                    dft, pred, materials = pooled.setdefault(key, ([], [], []))
                    dft += [s["gamma"] for s in data[material]["surfaces"]["slabs"]]
                    pred += c["surfaces"]["gamma"]
                    materials.append(material)
        out[model] = {
            key: {
                "materials": materials,
                "n_slabs": len(dft),
                "slope": softening_scale(np.array(pred), np.array(dft)),
                "mae": mae(np.array(pred), np.array(dft)),
                "n_under": int(np.sum(np.array(pred) < np.array(dft))),
            }
            for key, (dft, pred, materials) in pooled.items()
        }
    return out


def assemble(
    config: dict[str, Any],
    materials: dict[str, dict[str, Any]],
    models: dict[str, ModelCalculator],
    results: dict[str, dict[str, Any]],
    unmatched: dict[str, str],
) -> dict[str, Any]:
    """The summary document (deterministic: fixed seeds, no timestamps)."""
    return {
        "benchmark": "properties",
        "config": config,
        "models": {name: calc.info.fingerprint for name, calc in models.items()},
        "data": materials,
        "phonon_sets_skipped": unmatched,
        "results": results,
        "headline": headline(results),
        "pooled_surfaces": pooled_surfaces(materials, results),
        "softcalc_version": __version__,
    }


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
    """Run the benchmark; returns the summary written to ``out/summary.json`` (see the module docstring).

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
    mats = load_materials(data)
    sets = [load_phonon_reference(resolve_data_path(p)) for p in phonons]
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
    dft = {
        m.name: property_values(m, np.array([np.nan if f.energy is None else f.energy for f in m.frames]))
        for m in mats
    }
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
                c.key: evaluate_candidate(calc, c, m, dft[m.name], psets.get(m.name), progress)
                for c in candidates(calc, m, psets, files, config)
            }
            arrays[name][m.name] = evaluated
            results[name][m.name] = {"corrections": {k: e.record for k, e in evaluated.items()}}
    summary = assemble(config, {m.name: dft_summary(m, dft[m.name]) for m in mats}, calcs, results, unmatched)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(markdown(summary))
    write_predictions(out / "predictions.h5", config, mats, dft, calcs, arrays)
    if plots:
        from softcalc.bench.plots import curvature_ratio_plot, surface_parity_plot

        surface_parity_plot(out / "surface_parity.png", summary)
        curvature_ratio_plot(out / "curvature_ratio.png", summary)
    return summary


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype())


def _write_values(g: h5py.Group, values: PropertyValues) -> None:
    g["gamma"] = values.gamma
    for mode, (strains, energies) in values.curves.items():
        g[f"modes/{mode}/strain"], g[f"modes/{mode}/energy_per_atom"] = strains, energies


def write_predictions(
    path: Path,
    config: dict[str, Any],
    materials: Sequence[Material],
    dft: dict[str, PropertyValues],
    models: dict[str, ModelCalculator],
    arrays: dict[str, dict[str, dict[str, Evaluated]]],
) -> None:
    """Every DFT and model value behind the summary, atomically (energies eV, forces eV/Å, γ eV/Å²).

    Layout::

        /                                   attrs: format, config (JSON)
        /data/<material>/                   labels, groups, split, n_atoms, strain, dft_energy (NaN: none),
                                            test_forces; gamma, slab_frames; modes/<mode>/{strain,
                                            energy_per_atom}
        /models/<i>/                        attrs: name, fingerprint (JSON)
        /models/<i>/<material>/<correction>/  energy (every frame), test_forces, gamma,
                                            modes/<mode>/{strain, energy_per_atom}
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = FORMAT
        h5.attrs["config"] = json.dumps(config, sort_keys=True)
        for m in materials:
            g = h5.create_group(f"data/{m.name}")
            g["labels"] = _strings([f.label for f in m.frames])
            g["groups"] = _strings([f.group for f in m.frames])
            g["split"] = _strings(["train"] * len(m.split.train) + ["test"] * len(m.split.test))
            g["n_atoms"] = np.array([len(f.atoms) for f in m.frames], dtype=np.int64)
            g["strain"] = np.array([np.nan if f.strain is None else f.strain for f in m.frames])
            g["dft_energy"] = np.array([np.nan if f.energy is None else f.energy for f in m.frames])
            g["test_forces"] = np.concatenate([f.forces for f in m.split.test.frames])
            g["slab_frames"] = np.array(list(m.layout.slabs), dtype=np.int64)
            _write_values(g, dft[m.name])
        for i, (name, calc) in enumerate(models.items()):
            g = h5.create_group(f"models/{i}")
            g.attrs.update(name=name, fingerprint=json.dumps(calc.info.fingerprint, sort_keys=True))
            for material, evaluated in arrays[name].items():
                for key, e in evaluated.items():
                    if e.energies is None:
                        continue
                    c = g.create_group(f"{material}/{key}")
                    c["energy"], c["test_forces"] = e.energies, e.test_forces
                    if e.values is not None:
                        _write_values(c, e.values)
