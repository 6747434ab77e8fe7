"""Calibration methods by name: the one list that the pipeline, the CLI, ``auto`` and the report read.

A method is a :class:`~softcalc.calibration.methods.CalibrationMethod` subclass plus one
:func:`register_method` line with its :class:`MethodSpec`: its name (``--method``), a factory taking
:class:`MethodOptions`, the kind of correction it produces, the targets it fits, what it needs from the
model (:class:`Requirement`), whether ``auto`` tries it and how the CLI prints its parameters. Nothing
else needs to change: ``softcalc calibrate --method`` offers every registered name, ``auto`` tries every
registered candidate the model can take, and the report prints what the spec's ``describe`` returns.

The built-in methods register themselves where they are defined: ``scale`` and ``per-species`` in
:mod:`softcalc.calibration.methods`, ``finetune`` and ``auto`` in :mod:`softcalc.calibration.finetuning`
(both imported by :mod:`softcalc.calibration.pipeline`). A new method's module registers itself when
imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ase.calculators.calculator import Calculator

from softcalc.errors import SettingsError, SoftcalcError

if TYPE_CHECKING:
    from softcalc.calibration.methods import CalibrationMethod
    from softcalc.calibration.report import CalibrationReport

#: what a method can be fitted on (``calibrate(target=...)``, ``--target``)
TARGETS = ("forces", "energy", "forces+energy")


@dataclass(frozen=True)
class Requirement:
    """Something a method needs from the model (per-atom energies, fine-tunable weights).

    Attributes:
        name: what is needed, in words (shown in reports).
        check: raises a clear error, naming the method (second argument) and the fix, when the
            calculator cannot provide it; returns None otherwise. Called before any model call.
    """

    name: str
    check: Callable[[Calculator, str], None]

    def met_by(self, calc: Calculator, method: str) -> bool:
        """Whether ``calc`` provides it (the check does not raise a softcalc error)."""
        try:
            self.check(calc, method)
        except SoftcalcError:
            return False
        return True


@dataclass(frozen=True)
class MethodOptions:
    """What the user chose that a method factory may need.

    Attributes:
        target: ``forces``, ``energy`` or ``forces+energy`` (one of the spec's ``targets``).
        finetune: settings of methods that tune weights (a
            :class:`~softcalc.finetune.settings.FineTuneSettings`; None: its defaults).
    """

    target: str = "forces"
    finetune: Any = None


def _no_lines(report: CalibrationReport) -> list[str]:
    return []


@dataclass(frozen=True)
class MethodSpec:
    """One registered calibration method.

    Attributes:
        name: the name on the command line and in reports.
        factory: builds the method for the user's options.
        kind: the :class:`~softcalc.correction.Correction` kind it produces (``auto``: ``chosen``, the
            kind of the method it picks).
        help: one line for ``--method``'s help.
        targets: the targets it can fit (the first is its default).
        needs: what the model must provide; checked before any model call.
        in_auto: ``auto`` fits it as a candidate.
        default_order: the frame order when the user names none (``file``; ``spread`` for methods with
            many parameters, which must see every regime the data hold).
        refit_after_auto: when ``auto`` picks it, it is fitted again on all calibration frames (cheap
            methods whose parameters need no validation frames); otherwise the candidate fitted on the
            training part is kept (a fine-tune keeps the weights of its best validation epoch).
        describe: the report lines of its fitted parameters (λ with its interval, λ_Z, epochs, ...).
    """

    name: str
    factory: Callable[[MethodOptions], CalibrationMethod]
    kind: str
    help: str
    targets: tuple[str, ...] = ("forces",)
    needs: tuple[Requirement, ...] = ()
    in_auto: bool = True
    default_order: str = "file"
    refit_after_auto: bool = False
    describe: Callable[[CalibrationReport], list[str]] = field(default=_no_lines)

    def check(self, calc: Calculator) -> None:
        """Raise the first unmet requirement's error (before any model call)."""
        for need in self.needs:
            need.check(calc, self.name)

    def available(self, calc: Calculator) -> bool:
        """Whether ``calc`` meets every requirement."""
        return all(need.met_by(calc, self.name) for need in self.needs)

    def build(self, options: MethodOptions) -> CalibrationMethod:
        """The method for ``options``, or a :class:`SettingsError` for a target it cannot fit."""
        if options.target not in self.targets:
            raise SettingsError(
                f"method {self.name!r} fits on {' or '.join(self.targets)} only, not on target "
                f"{options.target!r}. Fix: use --method scale (one λ on energies) or --target "
                f"{self.targets[0]}."
            )
        return self.factory(options)


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (a name registered twice is an error); returns it."""
    if spec.name in _METHODS:
        raise SettingsError(f"calibration method {spec.name!r} is registered twice")
    unknown = set(spec.targets) - set(TARGETS)
    if unknown:
        raise SettingsError(f"method {spec.name!r} names unknown targets {sorted(unknown)}; known: {TARGETS}")
    _METHODS[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a registered method (for plugins and tests that register temporarily)."""
    _METHODS.pop(name, None)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``, or a :class:`SettingsError` listing the registered ones."""
    try:
        return _METHODS[name]
    except KeyError:
        raise SettingsError(
            f"method must be one of {', '.join(_METHODS)}, not {name!r}. Fix: choose one of these."
        ) from None


def method_names() -> tuple[str, ...]:
    """Every registered method name, in registration order."""
    return tuple(_METHODS)


def methods() -> Iterator[MethodSpec]:
    """Every registered method, in registration order."""
    return iter(tuple(_METHODS.values()))


def check_target(target: str) -> None:
    """A :class:`SettingsError` for a target no method fits."""
    if target not in TARGETS:
        raise SettingsError(
            f"target must be one of {', '.join(TARGETS)}, not {target!r}. Fix: choose one of these."
        )
