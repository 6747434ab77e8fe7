"""Whether a fitted correction is recommended, with every reason as data.

A correction is recommended unless a blocking reason applies: the data do not support it (λ = 1
inside the 95 % bootstrap interval) or it makes the checked forces worse. Other reasons are
warnings only: no held-out frames (errors are on the calibration frames themselves) and weak
model-DFT correlation (much of the error is not a scale).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from softcalc.evaluation import ForceComparison
from softcalc.metrics import ForceMetrics

#: a correlation below this means model and DFT forces agree too poorly for one scalar to mean much
WEAK_CORRELATION = 0.85


@dataclass(frozen=True)
class Reason:
    """One finding about a correction.

    Attributes:
        code: stable identifier (``no-heldout``, ``not-supported``, ``worse``, ``weak-correlation``).
        blocking: the finding makes the correction not recommended.
        message: the explanation shown to the user, with the fix where there is one.
    """

    code: str
    blocking: bool
    message: str


@dataclass(frozen=True)
class Verdict:
    """The recommendation and the reasons behind it (in the order they were found)."""

    errors: dict[str, Any]
    errors_on: str
    reasons: tuple[Reason, ...]

    @property
    def recommended(self) -> bool:
        return not any(r.blocking for r in self.reasons)

    @property
    def warnings(self) -> list[str]:
        """Every reason's message."""
        return [r.message for r in self.reasons]

    @property
    def text(self) -> str:
        """One line: recommended with the error change, or not recommended with the first blocking reason."""
        e = self.errors
        if self.recommended:
            return f"recommended: {self.errors_on} MAE {e['mae_before']:.4f} -> {e['mae_after']:.4f} eV/Å"
        first = next(r for r in self.reasons if r.blocking)
        return "not recommended: " + first.message.split(":")[0]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The reasons as plain dicts for JSON reports."""
        return [asdict(r) for r in self.reasons]


def error_summary(before: ForceComparison, after: ForceComparison) -> dict[str, Any]:
    """Force errors (eV/Å) of the bare and the corrected model on the same frames, pooled and per group."""
    mb, ma = before.metrics(), after.metrics()
    groups_b, groups_a = before.by_group(), after.by_group()
    return {
        "n_frames": mb.n_frames,
        "n_components": mb.n_components,
        "softening_scale": mb.softening_scale,
        "softening_scale_after": ma.softening_scale,
        "correlation": mb.correlation,
        "mae_before": mb.mae,
        "mae_after": ma.mae,
        "rmse_before": mb.rmse,
        "rmse_after": ma.rmse,
        "cmae": mb.cmae,
        "by_group": {
            g: {"n_frames": groups_b[g].n_frames, "mae_before": groups_b[g].mae, "mae_after": groups_a[g].mae}
            for g in groups_b
        },
    }


def judge(errors: dict[str, Any], heldout: bool, supported: bool, fit_metrics: ForceMetrics) -> Verdict:
    """The verdict on a correction from its errors, its bootstrap support and the calibration metrics.

    Args:
        errors: :func:`error_summary` on the held-out frames, or on the calibration frames without any.
        heldout: whether ``errors`` are on held-out frames.
        supported: the data exclude "no correction" (see :class:`~softcalc.calibration.methods.Fit`).
        fit_metrics: bare-model metrics on the calibration frames.
    """
    errors_on = "held-out" if heldout else "calibration"
    reasons: list[Reason] = []
    if not heldout:
        reasons.append(
            Reason(
                "no-heldout",
                False,
                "no held-out frames: the errors below are on the calibration frames themselves and cannot "
                "show whether the correction transfers. Fix: pass more frames than --frames, or --test data.",
            )
        )
    if not supported:
        reasons.append(
            Reason(
                "not-supported",
                True,
                "the data do not support a correction: λ = 1 lies inside the 95% bootstrap interval. "
                "The bare model is as good as the corrected one within the uncertainty.",
            )
        )
    if errors["mae_after"] > errors["mae_before"]:
        reasons.append(
            Reason(
                "worse",
                True,
                f"the correction makes {errors_on} forces WORSE: MAE {errors['mae_before']:.4f} -> "
                f"{errors['mae_after']:.4f} eV/Å. Do not apply it; calibrate on frames that resemble the "
                "intended simulation (--groups, --temperature, --strain, --order) or keep the bare model.",
            )
        )
    if fit_metrics.correlation < WEAK_CORRELATION:
        reasons.append(
            Reason(
                "weak-correlation",
                False,
                "model and DFT forces correlate weakly on the calibration frames "
                f"(r = {fit_metrics.correlation:.3f}; s = {fit_metrics.softening_scale:.3f} but "
                f"1/λ* = {1 / fit_metrics.scale_opt:.3f}): much of the error is not a systematic scale, "
                "so one scalar removes little of it.",
            )
        )
    return Verdict(errors, errors_on, tuple(reasons))
