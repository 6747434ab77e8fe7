"""Force-error metrics of the softening analysis (definitions as in the paper and matcalc).

All functions take model and DFT force components in eV/Å (any shape; flattened):

- softening scale s = Σ f_model·f_dft / Σ f_dft² (least-squares slope through the origin of model vs DFT);
- optimal scale λ* = Σ f_model·f_dft / Σ f_model² (minimises ||λ f_model − f_dft||²);
- MAE over components; cMAE = MAE of f_model/s vs f_dft.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from softcalc.errors import DataError


def _flat(f_model: np.ndarray, f_dft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(f_model, dtype=float).ravel()
    b = np.asarray(f_dft, dtype=float).ravel()
    if a.shape != b.shape:
        raise DataError(f"model and DFT forces differ in size ({a.size} vs {b.size} components)")
    if a.size == 0:
        raise DataError("no force components to compare. Fix: give at least one frame with atoms.")
    return a, b


def softening_scale(f_model: np.ndarray, f_dft: np.ndarray) -> float:
    """Slope through the origin of model vs DFT force components (dimensionless)."""
    a, b = _flat(f_model, f_dft)
    return float(a @ b / (b @ b))


def optimal_scale(f_model: np.ndarray, f_dft: np.ndarray) -> float:
    """λ* minimising ||λ f_model − f_dft||² (dimensionless)."""
    a, b = _flat(f_model, f_dft)
    return float(a @ b / (a @ a))


def mae(f_model: np.ndarray, f_dft: np.ndarray) -> float:
    """Mean absolute error over force components (eV/Å)."""
    a, b = _flat(f_model, f_dft)
    return float(np.mean(np.abs(a - b)))


def cmae(f_model: np.ndarray, f_dft: np.ndarray) -> float:
    """MAE after dividing model forces by the softening scale (eV/Å)."""
    a, b = _flat(f_model, f_dft)
    return float(np.mean(np.abs(a / softening_scale(a, b) - b)))


@dataclass(frozen=True)
class ForceMetrics:
    """Summary of model vs DFT forces.

    Attributes:
        n_frames: frames compared; n_components: force components (3 per atom).
        softening_scale: s (slope model vs DFT through the origin).
        scale_opt: λ* (the scale that best corrects the model forces).
        mae, cmae, rmse: eV/Å.
        correlation: uncentred correlation Σab / sqrt(Σa² Σb²) = sqrt(s·λ*); below ~0.9, s and 1/λ*
            disagree and one scalar explains little of the error.
    """

    n_frames: int
    n_components: int
    softening_scale: float
    scale_opt: float
    mae: float
    cmae: float
    rmse: float
    correlation: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON."""
        return asdict(self)


def force_metrics(f_model: np.ndarray, f_dft: np.ndarray, n_frames: int) -> ForceMetrics:
    """All metrics at once for pooled force components.

    Slopes, cMAE and the correlation are NaN where they are undefined (all DFT or all model forces
    zero, e.g. Li's unstrained Elastic frames), without a numpy warning.
    """
    a, b = _flat(f_model, f_dft)
    s = _ratio(a @ b, b @ b)
    return ForceMetrics(
        n_frames=n_frames,
        n_components=int(a.size),
        softening_scale=s,
        scale_opt=_ratio(a @ b, a @ a),
        mae=float(np.mean(np.abs(a - b))),
        cmae=float(np.mean(np.abs(a / s - b))) if np.isfinite(s) and s != 0 else float("nan"),
        rmse=float(np.sqrt(np.mean((a - b) ** 2))),
        correlation=_ratio(a @ b, np.sqrt((a @ a) * (b @ b))),
    )


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero."""
    return float(numerator / denominator) if denominator != 0 else float("nan")


def grouped_metrics(
    f_model: Sequence[np.ndarray], f_dft: Sequence[np.ndarray], labels: Sequence[str]
) -> dict[str, ForceMetrics]:
    """Metrics per label (structure group, element...), one (n, 3) array pair per labelled item."""
    out: dict[str, ForceMetrics] = {}
    for label in dict.fromkeys(labels):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        fm = np.concatenate([np.ravel(f_model[i]) for i in idx])
        fd = np.concatenate([np.ravel(f_dft[i]) for i in idx])
        out[label] = force_metrics(fm, fd, n_frames=len(idx))
    return out
