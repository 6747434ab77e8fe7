"""The corrections ``bench properties`` compares on each material, and the model with one applied.

``bare``; ``forces`` (λ on all calibration forces); ``forces:AIMD-NVT`` (hot frames); ``energy`` and
``energy:Elastic`` (target energy: all frames, strain frames); ``per-species`` (λ_Z, multi-element data
only); ``phonons`` (the material's phonopy force set); ``file:NAME`` (given correction files). λ is fitted
by :func:`softcalc.calibrate` on the calibration split with the test split held out (fixed
seed); a correction that cannot be fitted is skipped with the reason (:mod:`softcalc.bench.fits`).
Global corrections reuse the stored bare results (E' = E_ref + λ(E − E_ref)); per-species ones run the
model again, fine-tuned weights run their own model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase.calculators.calculator import Calculator

from softcalc.bench.fits import calibrate_or_skip, per_species_skip, report_fields
from softcalc.bench.stored import StoredForces
from softcalc.calculator import SoftCorrectedCalc
from softcalc.correction import Correction
from softcalc.data.dataset import ForceDataset
from softcalc.model import ModelCalculator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from softcalc.bench.properties.materials import Material

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
#: corrections shown beside the bare model in the property plots (when fitted)
PLOT_SERIES = ("bare", "forces", "energy")


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
    """λ fitted on ``data`` (``test`` held out), or the reason it cannot be."""
    cal = calibrate_or_skip(calc, data, test, config["n_bootstrap"], config["seed"], **kwargs)
    if isinstance(cal, str):
        return Candidate(key, fitted_on, skipped=cal)
    return Candidate(key, fitted_on, cal.correction, report_fields(cal, REPORT_FIELDS))


def candidates(
    calc: ModelCalculator,
    material: Material,
    with_phonons: bool,
    files: Sequence[Path],
    config: dict[str, Any],
) -> list[Candidate]:
    """The corrections compared on one material (see the module docstring), fitted where needed.

    ``with_phonons``: phonopy force sets were given (a material without one then lists the ``phonons``
    correction as skipped); with none at all, no ``phonons`` correction is compared.
    """
    train, test = material.split.train, material.split.test
    out = [Candidate("bare", "no correction")]
    out += [_calibrated(calc, key, about, train, test, config, **kw) for key, (about, kw) in FITS.items()]
    elements = sorted({s for f in material.frames for s in f.atoms.get_chemical_symbols()})
    about = "calibration forces, all groups, one λ_Z per element"
    skipped = per_species_skip(elements, calc.model)
    if skipped:
        out.append(Candidate("per-species", about, skipped=skipped))
    else:
        out.append(_calibrated(calc, "per-species", about, train, test, config, per_species=True))
    if material.phonons is not None:
        about = f"phonopy force set {material.phonons.dataset.source}"
        out.append(_calibrated(calc, "phonons", about, material.phonons.dataset, test, config))
    elif with_phonons:
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
