"""softcalc: calibrated, conservative softening corrections for universal ML interatomic potentials."""

from softcalc.calculator import SoftCorrectedCalc
from softcalc.calibration.pipeline import Calibration, calibrate
from softcalc.correction import Correction
from softcalc.model import ModelAdapter, ModelCalculator, ModelInfo
from softcalc.registry import ModelPlugin, available_models, load_adapter, load_model
from softcalc.version import __version__

__all__ = [
    "Calibration",
    "Correction",
    "ModelAdapter",
    "ModelCalculator",
    "ModelInfo",
    "ModelPlugin",
    "SoftCorrectedCalc",
    "__version__",
    "available_models",
    "calibrate",
    "load_adapter",
    "load_model",
]
