"""Whether a fitted correction is recommended, with every reason as data.

A correction is recommended unless a blocking reason applies:

- ``heldout-overlap`` (all): every held-out frame is a calibration frame (e.g. ``--test`` names the
  calibration file), so there is no held-out check although one was asked for;
- ``undetermined``: the 95 % bootstrap interval of λ (or of any λ_Z) reaches 0 or below, so the data
  do not determine λ, not even its sign (near-equilibrium frames whose forces are mostly noise);
- ``unphysical``: λ (or any λ_Z) lies outside ``PHYSICAL_SCALE_RANGE`` = [0.5, 2.5]. Deng et al.
  (2025) report softening scales s ≈ 0.5-1.1 across models and materials, so a correction λ ≈ 1/s
  lies roughly in [0.9, 2.0]; a λ below 0.5 or above 2.5 is not a softening correction but a sign
  that the frames carry no usable force signal (or that model and data disagree in units or setup);
- ``not-supported``: λ = 1 inside the 95 % bootstrap interval (the bare model is as good);
- ``worse``: the correction makes the checked target worse: forces (target ``forces``), energy
  differences (target ``energy``), either of them (target ``forces+energy``);
- ``no-energy-check``: an energy-fitted λ whose checked frames carry no energy differences;
- ``group-worse`` (fits with many parameters: fine-tuned weights): a structure group of the held-out
  frames whose force MAE the correction raises beyond its bootstrap noise (the 95 % interval of the
  change lies above 0, or starts at 0: :func:`group_worse`). A correction is only as good as its worst
  regime: a fine-tune that cuts the pooled error by fixing hot frames can still break the elastic or
  surface frames, whose small forces weigh little in the pooled MAE. For a global λ, which changes
  every group the same way, it is a warning;
- ``property-worse`` (fits with many parameters; a warning for a global λ): an energy-strain curvature
  ratio or the surface-energy slope of the calibration and held-out frames moved further from DFT than the
  bare model's (:mod:`softcalc.calibration.properties`);
- ``no-heldout`` (fits with many parameters): no held-out frames at all. A one-parameter λ checked on its
  own calibration frames is a weak but honest check; a fit of 10⁵ weights is not checked at all by its
  own training error.

Other reasons are warnings only: no held-out frames (errors are on the calibration frames
themselves), some held-out frames identical to calibration frames (``heldout-overlap``: they were
dropped from the held-out check, see :mod:`softcalc.calibration.frames`) and weak model-DFT
correlation (much of the error is not a scale), and a quantity outside the target that the correction
makes worse (``forces-worse``, ``energy-worse``: the regime it was fitted for is not the regime of
that quantity, e.g. λ fitted on strain energies over-corrects hot-MD forces).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from softcalc.calibration.methods import Estimate, bootstrap_weights
from softcalc.calibration.properties import PROPERTY_TOLERANCE, worse_properties
from softcalc.energies import EnergyDeviations
from softcalc.evaluation import ForceComparison
from softcalc.metrics import ForceMetrics

#: a correlation below this means model and DFT forces agree too poorly for one scalar to mean much
WEAK_CORRELATION = 0.85
#: (low, high) a physical softening correction λ (or λ_Z) lies in. Softening scales s ≈ 0.5-1.1 (Deng et
#: al. 2025, across models and materials) give λ ≈ 1/s ≈ 0.9-2.0; the margin on both sides admits
#: strongly softened models (CHGNet on mlearn Ge: λ* ≈ 2.0-2.4) and slightly stiff ones, while a λ of
#: 0.05 (near-equilibrium frames: DFT forces are mostly noise) or 3.5 is not a softening correction.
PHYSICAL_SCALE_RANGE = (0.5, 2.5)


@dataclass(frozen=True)
class Reason:
    """One finding about a correction.

    Attributes:
        code: stable identifier: ``no-heldout``, ``heldout-overlap``, ``undetermined``, ``unphysical``,
            ``not-supported``, ``worse``, ``forces-worse``, ``energy-worse``, ``no-energy-check``,
            ``group-worse``, ``property-worse``, ``weak-correlation``; and the methods' own: ``no-gain``,
            ``bare-best``, ``ground-state-moved``, ``forgetting``.
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
    #: what the correction was fitted on (``forces``, ``energy``, ``forces+energy``)
    target: str = "forces"

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
            parts = []
            if self.target != "energy":
                parts.append(f"MAE {e['mae_before']:.4f} -> {e['mae_after']:.4f} eV/Å")
            if self.target != "forces":
                before, after = 1e3 * e["energy"]["mae_before"], 1e3 * e["energy"]["mae_after"]
                parts.append(f"energy MAE {before:.2f} -> {after:.2f} meV/atom")
            return f"recommended: {self.errors_on} " + ", ".join(parts)
        first = next(r for r in self.reasons if r.blocking)
        return "not recommended: " + first.message.split(":")[0]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The reasons as plain dicts for JSON reports."""
        return [asdict(r) for r in self.reasons]


def group_changes(
    before: ForceComparison, after: ForceComparison, n_bootstrap: int, rng: np.random.Generator
) -> dict[str, tuple[float, float]]:
    """Per structure group, the 95 % interval (eV/Å) of the change of force MAE, after − before.

    A Poisson bootstrap over the group's samples and their atoms (as for λ) draws both MAEs from the same
    weights, so the interval is that of the change itself, not of two independent errors.
    """
    out = {}
    for group in dict.fromkeys(before.groups):
        idx = [i for i, g in enumerate(before.groups) if g == group]
        err_b = np.concatenate([np.abs(before.model[i] - before.dft[i]).sum(1) for i in idx])
        err_a = np.concatenate([np.abs(after.model[i] - after.dft[i]).sum(1) for i in idx])
        owner = np.concatenate([np.full(len(before.model[i]), k) for k, i in enumerate(idx)])
        w = bootstrap_weights(owner, len(idx), n_bootstrap, rng)
        n = 3 * w.sum(1)
        ok = n > 0
        change = (w[ok] @ (err_a - err_b)) / n[ok]
        low, high = np.percentile(change, [2.5, 97.5]) if change.size else (0.0, 0.0)
        out[group] = (float(low), float(high))
    return out


def error_summary(
    before: ForceComparison, after: ForceComparison, n_bootstrap: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Force errors (eV/Å) of the bare and the corrected model on the same frames, pooled and per group.

    Each group carries ``change_ci95``, the 95 % bootstrap interval of its MAE change (``n_bootstrap``
    replicas, ``seed``; see :func:`group_changes`).
    """
    mb, ma = before.metrics(), after.metrics()
    groups_b, groups_a = before.by_group(), after.by_group()
    changes = group_changes(before, after, n_bootstrap, np.random.default_rng(seed))
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
            g: {
                "n_frames": groups_b[g].n_frames,
                "mae_before": groups_b[g].mae,
                "mae_after": groups_a[g].mae,
                "change_ci95": list(changes[g]),
            }
            for g in groups_b
        },
    }


def energy_error_summary(before: EnergyDeviations, after: EnergyDeviations | None) -> dict[str, Any] | None:
    """Errors of energy differences (eV/atom, atom-weighted MAE) of the bare and corrected model.

    None when no frame has an energy difference (no DFT energies, or one frame per composition);
    ``mae_after`` is None when the correction gives no energies (per-species λ_Z).
    """
    if not len(before.model):
        return None
    return {
        "n_frames": len(before.model),
        "n_skipped": before.n_skipped,
        "mae_before": before.mae(),
        "mae_after": None if after is None or not len(after.model) else after.mae(),
    }


_NO_HELDOUT = Reason(
    "no-heldout",
    False,
    "no held-out frames: the errors below are on the calibration frames themselves and cannot "
    "show whether the correction transfers. Fix: pass more frames than --frames, or --test data.",
)


_NO_HELDOUT_TUNED = Reason(
    "no-heldout",
    True,
    "no held-out frames: fine-tuned weights (many parameters) judged on their own training frames say "
    "nothing about what they do elsewhere. Fix: pass --test data, or more frames than --frames.",
)


def judge(
    errors: dict[str, Any],
    *,
    heldout: bool,
    supported: bool,
    fit_metrics: ForceMetrics,
    estimates: Sequence[Estimate] = (),
    overlap: int = 0,
    target: str = "forces",
    many_parameters: bool = False,
    properties: dict[str, dict[str, Any]] | None = None,
) -> Verdict:
    """The verdict on a correction from its errors, its bootstrap support and the calibration metrics.

    Args:
        errors: :func:`error_summary` on the held-out frames, or on the calibration frames without any.
        heldout: whether ``errors`` are on held-out frames.
        supported: the data exclude "no correction" (see :class:`~softcalc.calibration.methods.Fit`).
        fit_metrics: bare-model metrics on the calibration frames.
        estimates: the fitted scales with their 95 % intervals (checked against 0 and
            ``PHYSICAL_SCALE_RANGE``).
        overlap: held-out frames dropped because they are calibration frames
            (:attr:`~softcalc.calibration.frames.FrameSplit.overlap`).
        target: what λ was fitted on; a worse target blocks, a worse other quantity warns.
        many_parameters: the fit has many parameters (fine-tuned weights): no held-out frames, a
            structure group made worse beyond its bootstrap noise, or a property moved away from DFT,
            block it.
        properties: property ratios [bare, corrected] per material
            (:func:`softcalc.calibration.properties.property_changes`).
    """
    errors_on = "held-out" if heldout else "calibration"
    reasons: list[Reason] = []
    if not heldout:
        reasons.append(
            _overlap_reason(overlap, heldout)
            if overlap
            else (_NO_HELDOUT_TUNED if many_parameters else _NO_HELDOUT)
        )
    elif overlap:
        reasons.append(_overlap_reason(overlap, heldout))
    reasons += _estimate_reasons(estimates)
    if not supported:
        reasons.append(
            Reason(
                "not-supported",
                True,
                "the data do not support a correction: λ = 1 lies inside the 95% bootstrap interval. "
                "The bare model is as good as the corrected one within the uncertainty.",
            )
        )
    reasons += _worse_reasons(errors, errors_on, target)
    reasons += _group_reasons(errors, errors_on, blocking=many_parameters)
    reasons += _property_reasons(properties or {}, blocking=many_parameters)
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
    return Verdict(errors, errors_on, tuple(reasons), target)


def _worse_reasons(errors: dict[str, Any], errors_on: str, target: str) -> list[Reason]:
    """Blocking reasons for a worse target, warnings for a worse quantity the correction was not fitted on."""
    reasons = []
    if errors["mae_after"] > errors["mae_before"]:
        blocking = target != "energy"
        reasons.append(
            Reason(
                "worse" if blocking else "forces-worse",
                blocking,
                f"the correction makes {errors_on} forces WORSE: MAE {errors['mae_before']:.4f} -> "
                f"{errors['mae_after']:.4f} eV/Å. "
                + (
                    "Do not apply it; calibrate on frames that resemble the intended simulation (--groups, "
                    "--temperature, --strain, --order) or keep the bare model."
                    if blocking
                    else "λ was fitted on energy differences (curvature): use it for elastic and phonon "
                    "properties, not for hot MD, whose forces it over-corrects."
                ),
            )
        )
    energy = errors.get("energy")
    if energy is None or energy["mae_after"] is None:
        if target != "forces":
            reasons.append(
                Reason(
                    "no-energy-check",
                    True,
                    f"the {errors_on} frames carry no energy differences (no DFT energies, or one frame "
                    "per composition), so the energy-fitted λ cannot be checked. Fix: hold out frames "
                    "with energies of the calibrated compositions (--frames, --test).",
                )
            )
        return reasons
    if energy["mae_after"] > energy["mae_before"]:
        blocking = target != "forces"
        before, after = 1e3 * energy["mae_before"], 1e3 * energy["mae_after"]
        reasons.append(
            Reason(
                "worse" if blocking else "energy-worse",
                blocking,
                f"the correction makes {errors_on} energy differences WORSE: MAE {before:.2f} -> "
                f"{after:.2f} meV/atom. "
                + (
                    "Do not apply it; calibrate on frames that resemble the intended simulation or keep "
                    "the bare model."
                    if blocking
                    else "λ was fitted on forces: energies between structures (strain, surfaces) do not "
                    "improve with it; calibrate with --target energy for those."
                ),
            )
        )
    return reasons


#: a change of a group's force MAE below this (eV/Å) is numerically zero (float32 models differ by ~1e-7)
NUMERICAL_ZERO = 1e-5


def group_worse(low: float, high: float) -> bool:
    """Whether a group's 95 % interval of the MAE change (eV/Å) says it got worse beyond noise.

    A lower end at 0 counts as worse: it comes from replicas that drew only frames the correction leaves
    unchanged (symmetric strained cells whose forces are zero for either model), while every other replica
    got worse.
    """
    return low >= -NUMERICAL_ZERO and high > NUMERICAL_ZERO


def _group_reasons(errors: dict[str, Any], errors_on: str, blocking: bool) -> list[Reason]:
    """Structure groups whose force MAE rose beyond noise (only where there is more than one group)."""
    groups = errors.get("by_group", {})
    worse = {g: v for g, v in groups.items() if group_worse(*v["change_ci95"])}
    if len(groups) < 2 or not worse:
        return []
    listed = ", ".join(
        f"{g} {v['mae_before']:.4f} -> {v['mae_after']:.4f} eV/Å ({v['n_frames']} frames)"
        for g, v in worse.items()
    )
    fix = (
        "Do not apply it to these regimes: fine-tune with a stronger anchor to the base model, with frames "
        "of these groups among the calibration frames, or use a global λ."
        if blocking
        else "A global λ scales every regime alike; use it where it helps (calibrate with --groups)."
    )
    return [
        Reason(
            "group-worse",
            blocking,
            f"the correction makes {errors_on} structure group(s) WORSE beyond bootstrap noise: {listed}. "
            + fix,
        )
    ]


def _property_reasons(properties: dict[str, dict[str, Any]], blocking: bool) -> list[Reason]:
    """Curvature ratios or surface slopes the correction moved further from DFT than the bare model."""
    worse = worse_properties(properties)
    if not worse:
        return []
    fix = (
        "Do not use these weights for elastic constants, surfaces or equilibrium structures: fine-tune with "
        "a stronger anchor to the base model, with strain and surface frames among the calibration frames, "
        "or keep the bare model for these properties."
        if blocking
        else "A global λ scales every curvature alike: for these properties calibrate with --target energy "
        "on strain and surface frames, or keep the bare model."
    )
    return [
        Reason(
            "property-worse",
            blocking,
            f"the correction moves property ratios (model/DFT, right value 1) further from DFT than the bare "
            f"model by more than {PROPERTY_TOLERANCE}: {', '.join(worse)}. " + fix,
        )
    ]


def _overlap_reason(overlap: int, heldout: bool) -> Reason:
    """Held-out frames that are calibration frames: all of them blocks, some of them were dropped."""
    same = "identical to calibration frames (same atoms, positions and cell)"
    if not heldout:
        return Reason(
            "heldout-overlap",
            True,
            f"the held-out frames are the calibration frames: all {overlap} held-out frame(s) are {same}, "
            "so there is no held-out check and the errors below are on the calibration frames. "
            "Fix: pass --test data the fit did not use (e.g. mlearn test.json beside training.json), "
            "or more frames than --frames.",
        )
    return Reason(
        "heldout-overlap",
        False,
        f"{overlap} held-out frame(s) are {same} and were left out of the held-out check: "
        "errors on frames the fit used are not held-out. The errors below are on the other held-out frames.",
    )


def _estimate_reasons(estimates: Sequence[Estimate]) -> list[Reason]:
    """Blocking reasons for scales the data do not determine or that no softening explains."""
    reasons = []
    low, high = PHYSICAL_SCALE_RANGE
    undetermined = [e for e in estimates if e.ci95[0] <= 0]
    if undetermined:
        names = ", ".join(e.name for e in undetermined)
        cis = "; ".join(
            f"{e.name} = {e.value:.3f}, 95% interval [{e.ci95[0]:.3f}, {e.ci95[1]:.3f}]" for e in undetermined
        )
        reasons.append(
            Reason(
                "undetermined",
                True,
                f"the data do not determine {names}: the 95% bootstrap interval reaches 0 ({cis}), so not "
                "even the sign of the correction is known; the calibration frames carry too little force "
                "signal (near-equilibrium structures, few atoms). Fix: calibrate on frames with larger "
                "forces (AIMD snapshots, rattled or displaced structures, --order largest-force) or more "
                "frames.",
            )
        )
    outside = [e for e in estimates if not low <= e.value <= high]
    if outside:
        values = ", ".join(f"{e.name} = {e.value:.3f}" for e in outside)
        verb = "lies" if len(outside) == 1 else "lie"
        reasons.append(
            Reason(
                "unphysical",
                True,
                f"{values} {verb} outside [{low:g}, {high:g}], the range of a physical softening correction: "
                f"softening scales s ≈ 0.5-1.1 give λ ≈ 1/s ≈ 0.9-2.0, so a λ below {low:g} or above "
                f"{high:g} is not softening but a sign that the frames carry no usable force signal (or "
                "that model and DFT data disagree in units or setup). Fix: calibrate on frames with "
                "clear forces that resemble the intended simulation, and check the data.",
            )
        )
    return reasons
