"""Fine-tuned weights as a calibration method, and ``auto``, which picks the method that validates best.

:class:`FineTune` (``finetune``) trains the model's weights on the calibration frames with
:func:`softcalc.finetune.training.fine_tune` (one training loop for every torch family). A share of the
calibration frames is kept aside for early stopping (:func:`validation_split`: one frame in ten, but never
a single frame: below 15 frames every frame trains and the last epoch is kept, see
:mod:`softcalc.finetune.training` for the rule on near-zero-force validation frames). Its default frame
order is ``spread`` (:mod:`softcalc.calibration.frames`): K frames over the regimes the data label, since
weights tuned on one regime (ten vacancy frames of mlearn Ge) move the others (elastic, surface) freely.
The held-out check and the verdict are those of every other method: the tuned model's forces and
energies on the held-out frames against the bare model's.

:class:`Auto` (``auto``) splits the calibration frames the same way (at least two validation frames),
fits every registered method the model can take (global λ, per-species λ_Z where the model has per-atom
energies, fine-tuning) on the training part (a fine-tune early-stops on frames of that part, never on
the ranking frames) and ranks them on the validation part by their worst structure group
(:func:`worst_group_ratio`: force MAE relative to the bare model's), then by the pooled force MAE. The
bare model competes too (ratio 1), so ``auto`` never picks a correction that validates worse than no
correction in any regime of the validation frames. A scale method that wins is refitted on all
calibration frames (its single number does not need a validation set); a fine-tune keeps the weights it
was fitted with on the training part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.calculators.calculator import Calculator

from softcalc.calibration.forgetting import forgetting_check, forgetting_reason, ground_state_reason
from softcalc.calibration.methods import CalibrationData, CalibrationMethod, CheckedFrames, Fit, ScaleFit
from softcalc.calibration.registry import (
    MethodOptions,
    MethodSpec,
    Requirement,
    method_spec,
    methods,
    register_method,
)
from softcalc.calibration.verdict import Reason
from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.energies import EnergyComparison
from softcalc.errors import DataError
from softcalc.evaluation import ForceComparison, compare_sets
from softcalc.model import ModelCalculator, require_fine_tuning

if TYPE_CHECKING:
    from softcalc.calibration.report import CalibrationReport

#: one validation frame per this many calibration frames
VALIDATION_EVERY = 10
#: the fewest validation frames that choose an epoch or a method: one frame is noise, not a validation
#: (on 10 Cu AIMD and elastic frames, ``auto`` chose by 0.0001 eV/Å on one frame a λ worse on held-out data)
MIN_VALIDATION = 2


def validation_split(
    sets: Sequence[ForceDataset], rng: np.random.Generator, at_least: int = 0
) -> tuple[list[ForceDataset], list[ForceDataset]]:
    """(training, validation) subsets of ``sets``: round(n/10) frames drawn by ``rng``, at least ``at_least``.

    A validation set is never a single frame (:data:`MIN_VALIDATION`): fewer than that go back to
    training, and the fine-tune keeps its last epoch. Frames keep their data set; a data set left without
    frames is dropped from that side.
    """
    owners = [(k, i) for k, d in enumerate(sets) for i in range(len(d))]
    n_val = max(at_least, round(len(owners) / VALIDATION_EVERY))
    if n_val < MIN_VALIDATION:
        n_val = 0
    if n_val >= len(owners):
        raise DataError(
            f"{len(owners)} calibration frame(s) leave none for training after {n_val} validation frame(s). "
            "Fix: give more calibration frames (--frames)."
        )
    chosen = {owners[j] for j in rng.permutation(len(owners))[:n_val]}
    train, val = [], []
    for k, d in enumerate(sets):
        keep = [i for i in range(len(d)) if (k, i) not in chosen]
        held = [i for i in range(len(d)) if (k, i) in chosen]
        train += [d.subset(keep)] if keep else []
        val += [d.subset(held)] if held else []
    return train, val


def _frames(sets: Sequence[ForceDataset]) -> list[ForceFrame]:
    return [f for d in sets for f in d.frames]


@dataclass
class TunedFit(Fit):
    """Fine-tuned weights: the tuned model evaluates any frames itself."""

    calc: ModelCalculator | None = None
    progress: bool = False
    #: (sets, results) evaluated so far; the sets are kept, so an identity match is never a reused id
    _evaluated: list[tuple[Sequence[ForceDataset], tuple[ForceComparison, EnergyComparison]]] = field(
        default_factory=list
    )

    @property
    def kind(self) -> str:
        return "finetune"

    @property
    def scale(self) -> float:
        return 1.0

    @property
    def species_scales(self) -> dict[str, float]:
        return {}

    @property
    def tuned_adapter(self) -> Any:  # noqa: ANN401 - the tuned TorchAdapter
        return self.calc.model if self.calc is not None else None

    @property
    def many_parameters(self) -> bool:
        return True

    def _run(self, sets: Sequence[ForceDataset]) -> tuple[ForceComparison, EnergyComparison]:
        for seen, results in self._evaluated:
            if seen is sets:
                return results
        results = compare_sets(self.calc, sets, self.progress)
        self._evaluated.append((sets, results))
        return results

    def apply(self, sets: Sequence[ForceDataset], bare: ForceComparison) -> ForceComparison:
        return self._run(sets)[0]

    def apply_energies(self, sets: Sequence[ForceDataset], bare: EnergyComparison) -> EnergyComparison:
        return self._run(sets)[1]

    def checks(self, checked: CheckedFrames) -> dict[str, Any]:
        """The forgetting check: drift against the bare model off the tuned data (see forgetting)."""
        if not isinstance(checked.calc, ModelCalculator):
            return {}
        check = forgetting_check(checked.calc, self.calc, self.summary["elements"])
        if self.summary["finetune"]["replay"]:
            check["note"] = (
                "replay trained on other rattled copies of these structures, labelled by the base model: the "
                "drifts measure how well replay held them, not an independent check"
            )
        return {"forgetting": check}

    def reasons(self, checks: dict[str, Any]) -> tuple[Reason, ...]:
        tune = self.summary["finetune"]
        chosen_by_validation = tune["stopping"].startswith("best validation")
        found = [NO_GAIN if chosen_by_validation and tune["best_epoch"] == 0 else None]
        forgetting = checks.get("forgetting")
        if forgetting:
            found += [ground_state_reason(forgetting), forgetting_reason(forgetting)]
        return tuple(r for r in found if r is not None)


def check_tunable(calc: Calculator, name: str) -> None:
    """A clear error before any model call when ``calc`` cannot be fine-tuned."""
    fix = "pass the model by name (--model chgnet) or use --method scale"
    require_fine_tuning(calc, f"method {name!r}", fix)


class FineTune(CalibrationMethod):
    """Tune the model's weights on the calibration frames (see the module docstring).

    Args:
        settings: a :class:`softcalc.finetune.settings.FineTuneSettings` (defaults when None).
    """

    def __init__(self, settings: Any = None) -> None:  # noqa: ANN401 - FineTuneSettings
        from softcalc.finetune.settings import FineTuneSettings

        self.settings = settings if settings is not None else FineTuneSettings()

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> TunedFit:
        """Tune on ``data.sets``, stopping early on ``data.validation`` (drawn from the sets when None)."""
        from softcalc.finetune.training import fine_tune

        if data.validation is None:
            train, val = validation_split(data.sets, rng)
        else:
            train, val = list(data.sets), list(data.validation)
        progress = data.progress
        result = fine_tune(data.calc.model, _frames(train), _frames(val), self.settings, progress=progress)
        elements = sorted({s for d in train for s in d.elements})
        summary = {
            "finetune": {
                "settings": self.settings.to_dict(),
                "n_train": len(_frames(train)),
                "n_validation": len(_frames(val)),
                "best_epoch": result.best_epoch,
                "seconds": result.seconds,
                "n_parameters": result.n_parameters,
                "reference_shift": result.reference_shift,
                "loss_curve": result.loss_curve,
                "stopping": result.stopping,
                "n_usable_validation": result.n_usable_validation,
                "replay": result.replay,
            },
            "elements": elements,
        }
        return TunedFit(summary, True, (), ModelCalculator(result.adapter), progress)


@dataclass
class AutoFit(Fit):
    """The method ``auto`` chose, with every candidate's validation error."""

    chosen: Fit | None = None
    #: the candidates by method name (``none`` is the bare model), fitted on the training part
    candidates: dict[str, Fit | None] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "none" if self.chosen is None else self.chosen.kind

    @property
    def scale(self) -> float:
        return self.chosen.scale if self.chosen else 1.0

    @property
    def species_scales(self) -> dict[str, float]:
        return self.chosen.species_scales if self.chosen else {}

    @property
    def tuned_adapter(self) -> Any:  # noqa: ANN401 - the tuned TorchAdapter of a chosen fine-tune
        return self.chosen.tuned_adapter if self.chosen else None

    @property
    def many_parameters(self) -> bool:
        return self.chosen.many_parameters if self.chosen else False

    def apply(self, sets: Sequence[ForceDataset], bare: ForceComparison) -> ForceComparison:
        return self.chosen.apply(sets, bare) if self.chosen else bare

    def apply_energies(self, sets: Sequence[ForceDataset], bare: EnergyComparison) -> EnergyComparison | None:
        return self.chosen.apply_energies(sets, bare) if self.chosen else bare

    def checks(self, checked: CheckedFrames) -> dict[str, Any]:
        """The chosen method's checks, and every candidate's force and energy-difference errors on the
        checked frames (``methods``; the bare model as ``none``)."""
        identity = ScaleFit({}, True, (), value=1.0)
        rows = {
            name: {
                "validation_mae": self.summary["auto"]["validation_mae"][name],
                "mae_after": (fit or identity).apply(checked.sets, checked.bare).metrics().mae,
                "energy": checked.energy_errors(fit or identity),
            }
            for name, fit in self.candidates.items()
        }
        return {**(self.chosen.checks(checked) if self.chosen else {}), "methods": rows}

    def reasons(self, checks: dict[str, Any]) -> tuple[Reason, ...]:
        return self.chosen.reasons(checks) if self.chosen else (BARE_BEST,)


#: the reason of a fine-tune whose best validation epoch is the starting model
NO_GAIN = Reason(
    "no-gain",
    True,
    "no gain: the fine-tune kept its starting weights (best validation epoch 0, the base model with refitted "
    "reference energies), so training did not improve the validation frames. Fix: keep the bare model or a "
    "global λ, or tune on more frames, or with a higher --lr.",
)

#: the reason ``auto`` gives when the bare model validates best
BARE_BEST = Reason(
    "bare-best",
    True,
    "no correction: the bare model had the lowest validation error of every method tried (see 'auto'). "
    "Fix: keep the bare model, or calibrate on frames that resemble the intended simulation.",
)


class Auto(CalibrationMethod):
    """Fit every registered candidate the model can take, keep the one whose worst validation group is
    best, then the lowest validation force MAE (module docstring)."""

    def __init__(self, settings: Any = None) -> None:  # noqa: ANN401 - FineTuneSettings
        self.options = MethodOptions("forces", settings)

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> AutoFit:
        calc = data.calc
        train, val = validation_split(data.sets, rng, at_least=MIN_VALIDATION)
        train_bare, train_energy = compare_sets(calc, train, data.progress)
        val_bare, _ = compare_sets(calc, val, data.progress)
        # candidates never see the ranking frames: a fine-tune early-stops on frames of its own training part
        part = CalibrationData(calc, train, train_bare, data.progress, train_energy)
        fits: dict[str, Fit | None] = {"none": None}
        for spec in methods():
            if not spec.in_auto or "forces" not in spec.targets or not spec.available(calc):
                continue
            try:
                fits[spec.name] = spec.build(self.options).fit(part, n_bootstrap, rng)
            except DataError:  # e.g. no force signal for a scale: the method cannot compete
                continue
        validated = {name: fit.apply(val, val_bare) if fit else val_bare for name, fit in fits.items()}
        scores = {name: v.metrics().mae for name, v in validated.items()}
        worst = {name: worst_group_ratio(val_bare, v) for name, v in validated.items()}
        best = min(fits, key=lambda name: (worst[name], scores[name]))
        chosen = fits[best]
        if chosen is not None and method_spec(best).refit_after_auto:
            chosen = method_spec(best).build(self.options).fit(data, n_bootstrap, rng)
        summary = {
            **(chosen.summary if chosen is not None else {}),
            "auto": {
                "chosen": best,
                "validation_mae": scores,
                "worst_group_ratio": worst,
                "n_validation": len(_frames(val)),
            },
        }
        supported = chosen.supported if chosen is not None else False
        estimates = chosen.estimates if chosen is not None else ()
        return AutoFit(summary, supported, estimates, chosen, fits)


def worst_group_ratio(bare: ForceComparison, candidate: ForceComparison) -> float:
    """The largest ratio over structure groups of the candidate's force MAE to the bare model's (bare: 1).

    ``auto`` ranks candidates by it first and by the pooled MAE second: a correction is only as good as
    its worst regime, and a pooled gain made on hot frames must not hide an elastic or surface group made
    worse.
    """
    before, after = bare.by_group(), candidate.by_group()

    def ratio(g: str) -> float:
        if before[g].mae > 0:
            return after[g].mae / before[g].mae
        return 1.0 if after[g].mae == 0 else math.inf  # a group the bare model gets exactly right

    return max(ratio(g) for g in before)


#: a method tunes the model's weights (a softcalc torch model)
FINE_TUNING = Requirement("fine-tunable weights", check_tunable)


def describe_finetune(report: CalibrationReport) -> list[str]:
    """What the fine-tune did (parameters, frames, best epoch, time) and the forgetting drifts."""
    tune = report.parameters["finetune"]
    lines = [
        f"fine-tuned {tune['n_parameters']} parameters on {tune['n_train']} frame(s), "
        f"{tune['n_validation']} for validation: kept epoch {tune['best_epoch']} of "
        f"{len(tune['loss_curve']) - 1}, {tune['seconds']:.0f} s; {tune['stopping']}"
        + (f"; {len(tune['replay'])} replay frames" if tune["replay"] else "")
    ]
    for row in report.checks.get("forgetting", {}).get("structures", []):
        lines.append(
            f"  drift on {row['name']:22s} {row['energy_drift_meV_atom']:8.2f} meV/atom "
            f"{row['force_drift']:7.4f} eV/Å {row['pressure_drift_GPa']:7.3f} GPa"
        )
    note = report.checks.get("forgetting", {}).get("note")
    return [*lines, f"  ({note})"] if note else lines


def describe_auto(report: CalibrationReport) -> list[str]:
    """What ``auto`` compared and chose, then the chosen method's own lines."""
    auto = report.parameters["auto"]
    lines = [
        f"auto: chose {auto['chosen']} ({auto['n_validation']} validation frame(s))",
        f"  {'method':12s}{'validation MAE':>16s}{report.errors_on + ' MAE':>18s}  (eV/Å)",
    ]
    for name, m in report.checks["methods"].items():
        lines.append(f"  {name:12s}{m['validation_mae']:16.4f}{m['mae_after']:18.4f}")
    if auto["chosen"] != "none":
        lines += method_spec(auto["chosen"]).describe(report)
    return lines


register_method(
    MethodSpec("finetune", lambda options: FineTune(options.finetune), "finetune",
               "tune the weights, saved beside --out", needs=(FINE_TUNING,), default_order="spread",
               describe=describe_finetune)
)  # fmt: skip
register_method(
    MethodSpec("auto", lambda options: Auto(options.finetune), "chosen",
               "the method whose worst validation group is best, the bare model competing", in_auto=False,
               default_order="spread", describe=describe_auto)
)  # fmt: skip
