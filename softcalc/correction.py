"""Softening corrections as data: the scales, the model they belong to, and their provenance.

The anchored scaling (docs/design.md): with reference energies μ_Z and per-atom energies e_i,

    E' = Σ_i [μ_Zi + λ_Zi (e_i - μ_Zi)],   F' = -∂E'/∂R,   σ' = (1/V) ∂E'/∂ε.

With one global λ this is E' = E_ref + λ (E - E_ref), F' = λF, σ' = λσ, E_ref = Σ_i μ_Zi.
Files are JSON (schema ``softcalc.correction/1``), validated on load.

A fine-tuned correction (``kind`` ``"finetune"``, from ``softcalc calibrate --method finetune``) replaces
the model's weights instead of scaling them: its ``weights`` block names the tuned weights file (a path
relative to the JSON file) and that file's sha256, and its ``model`` block is the fingerprint of the
base model the weights were tuned from. :class:`~softcalc.calculator.SoftCorrectedCalc` checks the base
model, then loads the file and refuses a missing or altered one (sha256 mismatch).

Which model a correction may be applied to (:meth:`Correction.check_model`, run by
``SoftCorrectedCalc`` on softcalc models):

- a *fitted* correction, one whose regime is not ``"manual"`` or that carries fit ``statistics``
  (everything ``softcalc calibrate`` writes), holds a λ that is only right for the model it was
  fitted with. It must carry that model's fingerprint (the ``model`` block: family, name, weights
  hash) and is refused for any other model, and refused outright when the fingerprint is missing
  (a file whose ``model`` block was deleted or nulled, or a calibration of a foreign calculator);
- a *manual* correction (regime ``"manual"``, no statistics: ``Correction(scale=1.1)``,
  ``SoftCorrectedCalc(base, scale=1.1)``, ``pair_style softcalc ... scale 1.1``, or such a
  correction saved to a file) is a λ set by hand; without a fingerprint it applies to any model.

The explicit override skips both refusals: ``check_model=False`` in Python, ``--allow-any-model``
on the command line, ``PairBridge(..., check_model=False)`` for LAMMPS.

Which scales a correction may hold (checked once, when a :class:`Correction` is built, so Python,
every CLI command and ``pair_style softcalc`` refuse the same values): every λ is a finite number
> 0, and a λ set by hand (a manual correction: ``--scale``, ``scale=``, ``pair_style ... scale``, a
manual file) lies in :data:`MANUAL_SCALE_RANGE` = [0.1, 10]. Softening corrections are λ ≈ 0.9-2.0 and
calibration recommends λ only in [0.5, 2.5] (``softcalc.calibration.verdict.PHYSICAL_SCALE_RANGE``);
the wider manual range leaves room for sensitivity checks while refusing typos such as ``1e308``,
which would turn every energy, force and error into ``inf``. A fitted λ is not held to the manual
range: calibration judges it (outside [0.5, 2.5] it is marked not recommended, and
``SoftCorrectedCalc`` warns before using it), and refusing it here would hide that verdict.

Which elements a per-species correction covers (:meth:`Correction.atom_scales`): every element of
the structure needs its own λ_Z, unless the global ``scale`` differs from 1, which then is an explicit
fallback for the others. An uncovered element with ``scale`` = 1 would silently run bare, so it is
an error naming the elements.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from softcalc.errors import CorrectionFileError, CorrectionMismatchError
from softcalc.fileio import write_json
from softcalc.info import ModelInfo

SCHEMA = "softcalc.correction/1"

#: Where a correction's scale comes from; reported so users know how far to trust it.
REGIMES = {
    "own-material": "fitted on DFT data of the material it is applied to (strongest)",
    "transfer": "fitted on other materials and transferred (may hurt other chemistries)",
    "manual": "set by hand",
}


#: fields of :class:`Correction` that describe where it came from in this process, never written
_NOT_SAVED = frozenset({"source", "path", "tuned"})


#: (low, high) inclusive bounds of a λ set by hand (see the module docstring)
MANUAL_SCALE_RANGE = (0.1, 10.0)


def _check_scale(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorrectionFileError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise CorrectionFileError(f"{what} must be a finite positive number, got {value!r}")
    return float(value)


def manual_scale_problem(value: float, what: str = "scale") -> str | None:
    """Why ``value`` cannot be a λ set by hand (outside :data:`MANUAL_SCALE_RANGE`), or None if it can.

    The one rule behind :class:`Correction`'s check and the ``--scale`` option of the command line.
    """
    low, high = MANUAL_SCALE_RANGE
    if math.isfinite(value) and low <= value <= high:
        return None
    return (
        f"{what} λ = {value:g} is outside [{low:g}, {high:g}], the range of a softening scale set by hand "
        "(softening corrections are λ ≈ 0.9-2.0; calibration recommends λ only in [0.5, 2.5]). "
        f"Fix: give a λ between {low:g} and {high:g}, or fit one with `softcalc calibrate`."
    )


@dataclass(frozen=True)
class Correction:
    """A calibrated softening correction.

    Attributes:
        scale: global λ (dimensionless); for a per-species correction, the fallback of species without
            their own scale, which must then differ from 1 (see :meth:`atom_scales`).
        species_scales: per-species λ_Z (needs a model with per-atom energies); empty for global.
        reference_energies: μ_Z in eV/atom used as anchors; empty means "the model's own".
        model: fingerprint of the model it was fitted for (family, name, weights_sha256), or None.
        regime: one of :data:`REGIMES`.
        recommended: False when calibration found that the correction does not help held-out data.
        statistics: fit statistics (softening scale, λ uncertainty, errors before/after...).
        provenance: data files and hashes, softcalc version, creation time, command.
        weights: for a fine-tuned correction, ``{"file": path relative to the JSON, "sha256": hex}``.
        source: where it was read from (``"correction file PATH"``), for messages; not saved.
        path: the file it was read from (weights files are relative to it); not saved.
        tuned: the tuned model adapter of a fine-tune not yet saved (``softcalc calibrate`` in Python);
            not saved: :meth:`softcalc.calibration.pipeline.Calibration.save` writes it as the weights file.
    """

    scale: float = 1.0
    species_scales: Mapping[str, float] = field(default_factory=dict)
    reference_energies: Mapping[str, float] = field(default_factory=dict)
    model: Mapping[str, str | None] | None = None
    regime: str = "manual"
    recommended: bool = True
    statistics: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, str] | None = None
    source: str | None = field(default=None, compare=False, repr=False)
    path: Path | None = field(default=None, compare=False, repr=False)
    tuned: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        scales = {"scale": _check_scale(self.scale, "scale")}
        for symbol, value in self.species_scales.items():
            scales[f"species scale of {symbol}"] = _check_scale(value, f"species scale of {symbol}")
        if self.regime not in REGIMES:
            raise CorrectionFileError(f"regime must be one of {sorted(REGIMES)}, got {self.regime!r}")
        if not self.fitted:
            for what, value in scales.items():
                problem = manual_scale_problem(value, what)
                if problem is not None:
                    raise CorrectionFileError(problem)

    @property
    def kind(self) -> str:
        """``"finetune"`` (tuned weights), ``"per-species"`` or ``"global"``."""
        if self.weights is not None or self.tuned is not None:
            return "finetune"
        return "per-species" if self.species_scales else "global"

    def parameters(self) -> dict[str, Any]:
        """The scales for a report: ``scale`` (λ) and, for a per-species correction, ``species_scales``;
        for a fine-tuned one, the sha256 of its weights."""
        out: dict[str, Any] = {"scale": self.scale}
        if self.species_scales:
            out["species_scales"] = dict(self.species_scales)
        if self.weights is not None:
            out["weights_sha256"] = self.weights.get("sha256")
        return out

    def weights_file(self) -> Path:
        """The tuned weights file of a fine-tuned correction, resolved against the JSON's folder.

        Raises:
            CorrectionFileError: the correction has no ``weights`` block.
        """
        if self.weights is None:
            raise CorrectionFileError(f"{self.source or 'this correction'} holds no tuned weights")
        file = Path(self.weights["file"])
        if not file.is_absolute() and self.path is not None:
            file = self.path.parent / file
        return file

    @property
    def is_identity(self) -> bool:
        """True when the correction changes nothing (λ = 1 everywhere, no tuned weights)."""
        return (
            self.kind != "finetune"
            and self.scale == 1.0
            and all(v == 1.0 for v in self.species_scales.values())
        )

    @property
    def fitted(self) -> bool:
        """True for a correction fitted on data (regime not ``"manual"``, or fit statistics present):
        it belongs to one model and needs that model's fingerprint (see the module docstring)."""
        return self.regime != "manual" or bool(self.statistics)

    def atom_scales(self, symbols: Sequence[str]) -> np.ndarray:
        """λ for each atom, shape (N,).

        Raises:
            CorrectionMismatchError: a per-species correction without a fallback (``scale`` = 1) lacks
                the λ_Z of some element of ``symbols``; the message names them.
        """
        if self.species_scales and self.scale == 1.0:
            uncovered = sorted(set(symbols) - set(self.species_scales))
            if uncovered:
                raise CorrectionMismatchError(
                    f"{self.source or 'the per-species correction'} has no scale for "
                    f"{', '.join(uncovered)} (it covers {', '.join(sorted(self.species_scales))}), so "
                    "these atoms would silently get the bare model. Fix: use a correction calibrated on "
                    f"data containing {', '.join(uncovered)} (softcalc calibrate --per-species ...), or add "
                    "them to species_scales (1.0 keeps them bare), or set a global fallback scale ≠ 1."
                )
        return np.array([self.species_scales.get(s, self.scale) for s in symbols], dtype=float)

    def check_model(self, info: ModelInfo) -> None:
        """Raise :class:`CorrectionMismatchError` if this correction was fitted for another model, or
        was fitted but carries no model fingerprint (see the module docstring)."""
        what = self.source or "this correction"
        if not any(v is not None for v in (self.model or {}).values()):  # no block, or one of nulls
            if not self.fitted:
                return
            raise CorrectionMismatchError(
                f"{what} was fitted on data (regime {self.regime!r}) but names no model: its 'model' "
                "block (family, name, weights hash) is missing or empty, so softcalc cannot tell if its λ "
                f"belongs to {info.name}, and a λ fitted for one model is wrong for another. "
                f"Fix: recalibrate for {info.name} (softcalc calibrate --model {info.name} ...), or "
                "restore the file's 'model' block, or, to apply it anyway, pass check_model=False "
                "(command line: --allow-any-model)."
            )
        mine = dict(self.model or {})
        theirs = info.fingerprint
        diffs = [
            f"{key}: correction has {mine.get(key)!r}, model has {theirs[key]!r}"
            for key in ("family", "name", "weights_sha256")
            if mine.get(key) is not None and theirs[key] is not None and mine.get(key) != theirs[key]
        ]
        if diffs:
            raise CorrectionMismatchError(
                f"{what} was calibrated for a different model (" + "; ".join(diffs) + "). "
                f"Fix: recalibrate for {info.name} (softcalc calibrate --model {info.name} ...), "
                "or pass check_model=False (command line: --allow-any-model) if you really mean to "
                "transfer it."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including the schema tag."""
        data = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in _NOT_SAVED}
        data["statistics"] = copy.deepcopy(dict(self.statistics))
        data["provenance"] = copy.deepcopy(dict(self.provenance))
        data["species_scales"] = dict(self.species_scales)
        data["reference_energies"] = dict(self.reference_energies)
        data["model"] = None if self.model is None else dict(self.model)
        data["weights"] = None if self.weights is None else dict(self.weights)
        if self.weights is None:
            del data["weights"]  # files of scale corrections stay as before
        return {"schema": SCHEMA, "kind": self.kind, **data}

    def save(self, path: str | Path) -> None:
        """Write the correction as JSON (atomically: a crash never leaves a half-written file)."""
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None, path: Path | None = None) -> Correction:
        """Build from a dict, validating the schema; errors name ``source`` (e.g. ``"correction file
        PATH"``, kept as :attr:`source`) and the problem. ``path`` is the file it came from."""
        try:
            if not isinstance(data, dict):
                raise CorrectionFileError("top level must be a JSON object")
            if data.get("schema") != SCHEMA:
                raise CorrectionFileError(f"schema must be {SCHEMA!r}, found {data.get('schema')!r}")
            if "scale" not in data:
                raise CorrectionFileError("required field 'scale' is missing")
            known = set(cls.__dataclass_fields__) - _NOT_SAVED
            unknown = set(data) - known - {"schema", "kind"}
            if unknown:
                raise CorrectionFileError(f"unknown field(s) {sorted(unknown)}")
            for name in ("species_scales", "reference_energies", "statistics", "provenance"):
                if not isinstance(data.get(name, {}), dict):
                    raise CorrectionFileError(f"field {name!r} must be an object")
            refs = data.get("reference_energies", {})
            for symbol, value in refs.items():
                if not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise CorrectionFileError(f"reference energy of {symbol} must be a finite number")
            if data.get("model") is not None and not isinstance(data["model"], dict):
                raise CorrectionFileError("field 'model' must be an object or null")
            weights = data.get("weights")
            if weights is not None and not (
                isinstance(weights, dict)
                and isinstance(weights.get("file"), str)
                and isinstance(weights.get("sha256"), str)
            ):
                raise CorrectionFileError("field 'weights' needs the strings 'file' and 'sha256'")
            return cls(**{k: v for k, v in data.items() if k in known}, source=source, path=path)
        except CorrectionFileError as exc:
            raise CorrectionFileError(
                f"{source or 'correction'} is not a valid softcalc correction: {exc}. "
                "Fix: recreate it with `softcalc calibrate` (do not edit it by hand)."
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> Correction:
        """Read and validate a correction file."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise CorrectionFileError(f"correction file {path} does not exist") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorrectionFileError(
                f"correction file {path} is corrupt (not valid JSON: {exc}). "
                "Fix: recreate it with `softcalc calibrate`."
            ) from None
        return cls.from_dict(data, source=f"correction file {path}", path=path)
