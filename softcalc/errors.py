"""Exceptions raised by softcalc.

Every error names the problem and the fix. Each class also derives from the builtin exception a
user would expect (``ValueError``, ``FileNotFoundError``, ``ImportError``) so generic handlers work.
"""

from __future__ import annotations


class SoftcalcError(Exception):
    """Base class of all softcalc errors."""


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


class UnsupportedElementsError(SoftcalcError, ValueError):
    """The structure contains elements the model was not trained on."""

    def __init__(self, model: str, elements: list[str]) -> None:
        super().__init__(
            f"model {model} does not cover element(s) {', '.join(sorted(elements))}. "
            "Fix: use a model trained on these elements (see `softcalc models`)."
        )
        self.elements = sorted(elements)


class InvalidStructureError(SoftcalcError, ValueError):
    """The structure cannot be evaluated (NaN/inf positions, degenerate cell, ...)."""


class DataError(SoftcalcError, ValueError):
    """Reference data are unusable: empty, without forces, inconsistent shapes, unreadable."""


class CorrectionFileError(SoftcalcError, ValueError):
    """A correction file is corrupt or does not follow the schema."""


class CorrectionMismatchError(SoftcalcError, ValueError):
    """A correction was calibrated for a different model than the one it is applied to."""


class PerAtomEnergyNotSupportedError(SoftcalcError, NotImplementedError):
    """The model cannot provide differentiable per-atom energies (needed by per-species corrections)."""


class DeviceError(SoftcalcError, ValueError):
    """The requested compute device is malformed or not available on this machine."""
