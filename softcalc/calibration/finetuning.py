"""Fine-tuned weights as a calibration method, and ``auto``, which picks the method that validates best.

:class:`FineTune` (``finetune``) trains the model's weights on the calibration frames with
:func:`softcalc.finetune.training.fine_tune` (one training loop for every torch family). A share of the
calibration frames is kept aside for early stopping (:func:`validation_split`: one frame in ten, as
Deng et al. 2025 used 9 + 1 of 10 structures; none below five frames, where every frame is needed for
training and the epochs run to the end). The held-out check and the verdict are those of every other
method: the tuned model's forces and energies on the held-out frames against the bare model's.

:class:`Auto` (``auto``) splits the calibration frames the same way (at least one validation frame),
fits every method it can (global λ, per-species λ_Z where the model has per-atom energies, fine-tuning)
on the training part, measures each one's force MAE on the validation part and keeps the best; the bare
model competes too, so ``auto`` never picks a correction that validates worse than no correction. A
scale method that wins is refitted on all calibration frames (its single number does not need a
validation set); a fine-tune keeps the weights of its best validation epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from ase.calculators.calculator import Calculator

from softcalc.calibration.methods import (
    METHODS,
    CalibrationData,
    CalibrationMethod,
    Fit,
    ScaleFit,
)
from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.energies import EnergyComparison
from softcalc.errors import DataError, SoftcalcError
from softcalc.evaluation import ForceComparison, compare_sets
from softcalc.model import ModelCalculator

#: one validation frame per this many calibration frames (at least five frames for any validation)
VALIDATION_EVERY = 10


def validation_split(
    sets: Sequence[ForceDataset], rng: np.random.Generator, at_least: int = 0
) -> tuple[list[ForceDataset], list[ForceDataset]]:
    """(training, validation) subsets of ``sets``: round(n/10) frames drawn by ``rng``, at least ``at_least``.

    Frames keep their data set; a data set left without frames is dropped from that side.
    """
    owners = [(k, i) for k, d in enumerate(sets) for i in range(len(d))]
    n_val = max(at_least, round(len(owners) / VALIDATION_EVERY))
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
    _cache: dict[int, tuple[ForceComparison, EnergyComparison]] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        return 1.0

    @property
    def species_scales(self) -> dict[str, float]:
        return {}

    @property
    def adapter(self) -> Any:  # noqa: ANN401 - the tuned TorchAdapter
        """The tuned model adapter."""
        return self.calc.model if self.calc is not None else None

    def _run(self, sets: Sequence[ForceDataset]) -> tuple[ForceComparison, EnergyComparison]:
        if id(sets) not in self._cache:
            self._cache[id(sets)] = compare_sets(self.calc, sets, self.progress)
        return self._cache[id(sets)]

    def apply(self, sets: Sequence[ForceDataset], bare: ForceComparison) -> ForceComparison:
        return self._run(sets)[0]

    def apply_energies(self, sets: Sequence[ForceDataset], bare: EnergyComparison) -> EnergyComparison:
        return self._run(sets)[1]


def check_tunable(calc: Calculator, name: str) -> None:
    """A clear error before any model call when ``calc`` cannot be fine-tuned."""
    if not isinstance(calc, ModelCalculator) or not callable(getattr(calc.model, "tunable_parts", None)):
        raise SoftcalcError(
            f"method {name!r} fine-tunes the model's weights, which needs a softcalc torch model (CHGNet, "
            f"matgl M3GNet/TensorNet, MACE), not {calc!r}. Fix: pass the model by name (--model chgnet) "
            "or use --method scale."
        )


class FineTune(CalibrationMethod):
    """Tune the model's weights on the calibration frames (see the module docstring).

    Args:
        settings: a :class:`softcalc.finetune.settings.FineTuneSettings` (defaults when None).
    """

    name = "finetune"
    kind = "finetune"

    def __init__(self, settings: Any = None) -> None:  # noqa: ANN401 - FineTuneSettings
        from softcalc.finetune.settings import FineTuneSettings

        self.settings = settings if settings is not None else FineTuneSettings()

    def check(self, calc: Calculator) -> None:
        check_tunable(calc, self.name)

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> TunedFit:
        train, val = validation_split(data.sets, rng)
        return self.tune(data.calc, train, val, data.progress)

    def tune(
        self,
        calc: ModelCalculator,
        train: Sequence[ForceDataset],
        val: Sequence[ForceDataset],
        progress: bool,
    ) -> TunedFit:
        """Fine-tune ``calc``'s model on ``train``, stopping early on ``val``."""
        from softcalc.finetune.training import fine_tune

        result = fine_tune(calc.model, _frames(train), _frames(val), self.settings, progress=progress)
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
    def scale(self) -> float:
        return self.chosen.scale if self.chosen else 1.0

    @property
    def species_scales(self) -> dict[str, float]:
        return self.chosen.species_scales if self.chosen else {}

    def apply(self, sets: Sequence[ForceDataset], bare: ForceComparison) -> ForceComparison:
        return self.chosen.apply(sets, bare) if self.chosen else bare

    def apply_energies(self, sets: Sequence[ForceDataset], bare: EnergyComparison) -> EnergyComparison | None:
        return self.chosen.apply_energies(sets, bare) if self.chosen else bare


class Auto(CalibrationMethod):
    """Fit every applicable method, keep the one with the lowest validation force MAE (module docstring)."""

    name = "auto"
    kind = "auto"
    #: method names tried, in order (per-species only where the model has per-atom energies)
    CANDIDATES: ClassVar[tuple[str, ...]] = ("scale", "per-species", "finetune")

    def __init__(self, settings: Any = None) -> None:  # noqa: ANN401 - FineTuneSettings
        self.settings = settings

    def check(self, calc: Calculator) -> None:
        check_tunable(calc, self.name)

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> AutoFit:
        calc = data.calc
        train, val = validation_split(data.sets, rng, at_least=1)
        train_bare, train_energy = compare_sets(calc, train, data.progress)
        val_bare, _ = compare_sets(calc, val, data.progress)
        fits: dict[str, Fit | None] = {"none": None}
        for name in self.CANDIDATES:
            if name == "per-species" and not calc.model.supports_per_atom_energies:
                continue
            if name == "finetune":
                fits[name] = FineTune(self.settings).tune(calc, train, val, data.progress)
            else:
                part = CalibrationData(calc, train, train_bare, data.progress, train_energy)
                try:
                    fits[name] = METHODS[name]().fit(part, n_bootstrap, rng)
                except DataError:  # e.g. no force signal for a scale: the method cannot compete
                    continue
        scores = {
            name: (val_bare if fit is None else fit.apply(val, val_bare)).metrics().mae
            for name, fit in fits.items()
        }
        best = min(scores, key=scores.__getitem__)
        chosen = fits[best]
        if best in ("scale", "per-species"):
            chosen = METHODS[best]().fit(data, n_bootstrap, rng)
        summary = {
            **(chosen.summary if chosen is not None else {}),
            "auto": {"chosen": best, "validation_mae": scores, "n_validation": len(_frames(val))},
        }
        supported = chosen.supported if chosen is not None else False
        estimates = chosen.estimates if chosen is not None else ()
        return AutoFit(summary, supported, estimates, chosen, fits)


def chosen_kind(fit: Fit) -> str:
    """The correction kind a fit produces (``auto`` resolves to the method it chose)."""
    if isinstance(fit, AutoFit):
        return "none" if fit.chosen is None else chosen_kind(fit.chosen)
    if isinstance(fit, TunedFit):
        return "finetune"
    return "global" if isinstance(fit, ScaleFit) else "per-species"
