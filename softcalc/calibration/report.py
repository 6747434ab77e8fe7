"""The calibration report: what :func:`softcalc.calibrate` fitted, checked and concluded, typed.

:class:`CalibrationReport` is read by attribute (``report.scale``, ``report.recommended``,
``report.errors["by_group"]``) by the CLI and the benchmarks; :meth:`CalibrationReport.to_dict` gives
the flat JSON form that ``--json`` writes and the correction file's ``statistics`` keep (every field,
the method's parameters and checks spread in, as the keys have always been).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: keys of :meth:`CalibrationReport.to_dict` a correction file does not repeat in its statistics
NOT_IN_STATISTICS = frozenset({"errors", "warnings", "reasons"})


@dataclass(frozen=True)
class CalibrationReport:
    """What a calibration fitted and found (errors in eV/Å for forces, eV/atom for energy differences).

    Attributes:
        model: the model's name (or the calculator's class name).
        method: the method asked for (``scale``, ``per-species``, ``finetune``, ``auto``, ...).
        kind: the correction produced (``global``, ``per-species``, ``finetune``; ``none`` when ``auto``
            found the bare model best).
        target: what a global λ was fitted on (``forces``, ``energy``, ``forces+energy``).
        parameters: the method's fitted parameters and their uncertainty (``scale``, ``scale_std``,
            ``scale_ci95``; ``species_scales``, ``species_uncertainty``; ``finetune``, ``elements``;
            ``auto``).
        softening_scale_fit, scale_opt_fit, correlation_fit: s, λ* and the model-DFT force correlation
            on the calibration frames (bare model).
        n_frames: calibration frames; n_heldout: held-out frames checked; n_heldout_overlap: held-out
            frames dropped as copies of calibration frames.
        errors_on: ``held-out`` or ``calibration`` (no held-out frames).
        errors: force errors before/after (``mae_before``, ``rmse_after``, ``by_group``, ...) and
            ``energy`` (energy-difference errors, or None), on ``errors_on`` frames.
        recommended: no blocking reason applies; reasons: every finding as a dict (code, blocking,
            message); verdict: one line.
        properties: per material, property ratios model / DFT as [bare, corrected]
            (``curvature_normal``, ``curvature_shear``, ``surface_slope``; see
            :mod:`softcalc.calibration.properties`); empty where the frames give none.
        checks: further checks of the method (``forgetting`` of tuned weights, ``methods`` of ``auto``).
    """

    model: str
    method: str
    kind: str
    target: str
    parameters: dict[str, Any]
    softening_scale_fit: float
    scale_opt_fit: float
    correlation_fit: float
    n_frames: int
    n_heldout: int
    n_heldout_overlap: int
    errors_on: str
    errors: dict[str, Any]
    recommended: bool
    reasons: list[dict[str, Any]]
    verdict: str
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> float | None:
        """The fitted global λ (None for per-species λ_Z, fine-tuned weights or no correction)."""
        return self.parameters.get("scale")

    @property
    def scale_std(self) -> float | None:
        """Bootstrap standard deviation of λ."""
        return self.parameters.get("scale_std")

    @property
    def scale_ci95(self) -> list[float] | None:
        """(low, high) 95 % bootstrap interval of λ."""
        return self.parameters.get("scale_ci95")

    @property
    def species_scales(self) -> dict[str, float]:
        """λ_Z per element (empty unless per species)."""
        return self.parameters.get("species_scales", {})

    @property
    def softening_scale(self) -> float:
        """s of the bare model on the ``errors_on`` frames."""
        return self.errors["softening_scale"]

    @property
    def mae_before(self) -> float:
        """Force MAE of the bare model on the ``errors_on`` frames (eV/Å)."""
        return self.errors["mae_before"]

    @property
    def mae_after(self) -> float:
        """Force MAE of the corrected model on the ``errors_on`` frames (eV/Å)."""
        return self.errors["mae_after"]

    @property
    def warnings(self) -> list[str]:
        """Every reason's message, blocking or not."""
        return [r["message"] for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form (``--json``): fields, parameters and checks spread in."""
        return {
            "model": self.model,
            "method": self.method,
            "kind": self.kind,
            "target": self.target,
            **self.parameters,
            "softening_scale_fit": self.softening_scale_fit,
            "scale_opt_fit": self.scale_opt_fit,
            "correlation_fit": self.correlation_fit,
            "n_frames": self.n_frames,
            "n_heldout": self.n_heldout,
            "n_heldout_overlap": self.n_heldout_overlap,
            "errors_on": self.errors_on,
            "softening_scale": self.softening_scale,
            "mae_before": self.mae_before,
            "mae_after": self.mae_after,
            "errors": self.errors,
            "recommended": self.recommended,
            "warnings": self.warnings,
            "reasons": self.reasons,
            "verdict": self.verdict,
            "properties": self.properties,
            **self.checks,
        }

    def statistics(self) -> dict[str, Any]:
        """What a correction file keeps of the report (no errors, warnings or reasons)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IN_STATISTICS}
