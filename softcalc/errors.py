"""Exceptions raised by softcalc.

Every error names the problem and the fix. Each class also derives from the builtin exception a
user would expect (``ValueError``, ``FileNotFoundError``, ``ImportError``) so generic handlers work.

Errors that concern a calculation derive from :class:`CalculationSetupError`, a subclass of ASE's
``CalculatorSetupError`` (and so of ``CalculatorError``), as ASE's own calculators' errors do: code
written against ASE (``try: atoms.get_forces() except CalculatorError:``) catches them. ASE means
by a setup error that the calculation cannot be done as asked (unsupported atoms or parameters),
which covers each of them:

- :class:`InvalidStructureError`: atoms no model can evaluate (NaN positions, degenerate cell).
- :class:`UnsupportedElementsError`: elements outside the model's training set.
- :class:`PerAtomEnergyNotSupportedError`: a per-species correction on a model without
  differentiable per-atom energies (a ``NotImplementedError`` too, but not ASE's
  ``PropertyNotImplementedError``, which is no ``CalculatorError`` and which softcalc calculators
  keep raising, as ASE's do, for a property they do not give, such as the stress of a molecule).
- :class:`DeviceError`: a compute device that is malformed or absent.
- :class:`CorrectionMismatchError`: a correction applied to a model it was not fitted for.

The others stay plain softcalc errors: they concern finding and reading resources, not a
calculation, and are raised before any calculator exists or outside one (CLI input, data sets,
correction files, weights, plugins). Their builtin bases are what a caller checks:
:class:`UnknownModelError` (a name no plugin serves, ``ValueError``), :class:`WeightsNotFoundError`
(``FileNotFoundError``), :class:`MissingDependencyError` (``ImportError``), :class:`DataError`
(reference data), :class:`SettingsError` (an option out of range or a combination that cannot work:
a bad method, target, order, bootstrap count or fine-tuning setting) and :class:`CorrectionFileError`
(a corrupt correction file).
"""

from __future__ import annotations

from ase.calculators.calculator import CalculatorSetupError


class SoftcalcError(Exception):
    """Base class of all softcalc errors."""


class CalculationSetupError(SoftcalcError, CalculatorSetupError):
    """A calculation cannot be done as asked: the structure, the model or its settings do not allow it.

    Also an ASE ``CalculatorSetupError``, so ``except CalculatorError`` catches it.
    """


class UnknownModelError(SoftcalcError, ValueError):
    """No plugin serves the requested model name or path."""


class WeightsNotFoundError(SoftcalcError, FileNotFoundError):
    """Model weights could not be found; the message lists every path searched."""

    def __init__(self, what: str, searched: list[str], fix: str = "") -> None:
        lines = [f"weights for {what} not found. Searched:"]
        lines += [f"  - {p}" for p in searched] or ["  (nothing)"]
        lines.append(
            fix or "Fix: pass an explicit path, or set SOFTCALC_MODEL_DIR to a folder holding the weights."
        )
        super().__init__("\n".join(lines))
        self.searched = list(searched)


class MissingDependencyError(SoftcalcError, ImportError):
    """An optional package needed by a plugin or feature is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the Python package '{package}', which is not installed. "
            f"Fix: pip install 'softcalc[{extra}]'"
        )
        self.package = package
        self.extra = extra


class UnsupportedElementsError(CalculationSetupError, ValueError):
    """The structure contains elements the model was not trained on."""

    def __init__(self, model: str, elements: list[str]) -> None:
        super().__init__(
            f"model {model} does not cover element(s) {', '.join(sorted(elements))}. "
            "Fix: use a model trained on these elements (see `softcalc models`)."
        )
        self.elements = sorted(elements)


class InvalidStructureError(CalculationSetupError, ValueError):
    """The structure cannot be evaluated (NaN/inf positions, degenerate cell, ...)."""


class DataError(SoftcalcError, ValueError):
    """Reference data are unusable: empty, without forces, inconsistent shapes, unreadable."""


class SettingsError(SoftcalcError, ValueError):
    """An option is out of range or options contradict each other (method, target, order, bootstrap
    count, fine-tuning settings); the message names the option, the allowed values and the fix."""


class CorrectionFileError(SoftcalcError, ValueError):
    """A correction file is corrupt or does not follow the schema."""


class CorrectionMismatchError(CalculationSetupError, ValueError):
    """A correction was calibrated for a different model than the one it is applied to."""


class PerAtomEnergyNotSupportedError(CalculationSetupError, NotImplementedError):
    """The model cannot provide differentiable per-atom energies (needed by per-species corrections)."""


class DeviceError(CalculationSetupError, ValueError):
    """The requested compute device is malformed or not available on this machine."""


class CorruptWeightsError(SoftcalcError, ValueError):
    """A model weights file exists but cannot be read: truncated, overwritten, or not a model file.

    Raised by :func:`softcalc.weight_files.loading_weights` around every plugin's load; the message names
    the file, what is wrong with it and how to get it again. ``path`` is the damaged file.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
