"""A calibration method defined outside softcalc: λ = median over atoms of |f_DFT| / |f_model|.

It exists to show (and test) that a new method is this one module plus one
``register_method(MEDIAN_RATIO)`` line: the pipeline, ``softcalc calibrate --method``, ``auto`` and the
printed report then know it. The estimator itself is real and robust to outlier atoms, unlike λ*.
"""

from __future__ import annotations

import numpy as np

from softcalc.calibration.methods import (
    CalibrationData,
    CalibrationMethod,
    Estimate,
    ScaleFit,
    check_fitted,
    describe_scale,
)
from softcalc.calibration.registry import MethodSpec

#: atoms whose model force is below this (eV/Å) carry no ratio
MIN_FORCE = 1e-3


class MedianRatio(CalibrationMethod):
    """One λ: the median over atoms of |f_DFT| / |f_model|, with a bootstrap over atoms."""

    def fit(self, data: CalibrationData, n_bootstrap: int, rng: np.random.Generator) -> ScaleFit:
        model = np.concatenate([np.linalg.norm(m, axis=1) for m in data.bare.model])
        dft = np.concatenate([np.linalg.norm(d, axis=1) for d in data.bare.dft])
        ratios = dft[model > MIN_FORCE] / model[model > MIN_FORCE]
        value = float(np.median(ratios))
        check_fitted(value, "λ")
        samples = np.median(rng.choice(ratios, size=(n_bootstrap, ratios.size)), axis=1)
        low, high = (float(x) for x in np.percentile(samples, [2.5, 97.5]))
        summary = {"scale": value, "scale_std": float(samples.std()), "scale_ci95": [low, high]}
        estimate = Estimate("λ", value, (low, high))
        return ScaleFit(summary, not low <= 1.0 <= high, (estimate,), value=value)


MEDIAN_RATIO = MethodSpec(
    "median-ratio",
    lambda options: MedianRatio(),
    kind="global",
    help="λ = median of |f_DFT|/|f_model| over atoms",
    refit_after_auto=True,
    describe=lambda report: ["median ratio: " + describe_scale(report)[0]],
)
