"""argparse types for numeric options: out-of-range values are rejected by the parser (exit code 2).

argparse prefixes each message with the option, e.g. ``argument --bootstrap: must be an integer >= 1,
got 0``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from softcalc.correction import manual_scale_problem


def _at_least(text: str, convert: Callable[[str], float], what: str, low: float, strict: bool) -> float:
    """``text`` as a finite number >= ``low`` (> ``low`` when ``strict``); ArgumentTypeError otherwise.

    argparse prefixes the message with the option (``argument --bootstrap: ...``) and exits with 2.
    """
    bound = f"{'>' if strict else '>='} {low:g}"
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}") from None
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise argparse.ArgumentTypeError(f"must be {what} {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts: frames, steps, replicas, batch sizes)."""
    return int(_at_least(text, int, "an integer", 1, strict=False))


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (random seeds, step counts that may be zero)."""
    return int(_at_least(text, int, "an integer", 0, strict=False))


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (time steps, displacements, time constants, scales)."""
    return _at_least(text, float, "a number", 0, strict=True)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (temperatures in K, friction, equilibration time)."""
    return _at_least(text, float, "a number", 0, strict=False)


def softening_scale(text: str) -> float:
    """argparse type: a global λ set by hand (``--scale``), in [0.1, 10] (the rule of
    :func:`softcalc.correction.manual_scale_problem`, the check every :class:`~softcalc.Correction` makes)."""
    value = positive_float(text)
    problem = manual_scale_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value
