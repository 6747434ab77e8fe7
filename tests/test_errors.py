"""softcalc's errors: those about a calculation are ASE CalculatorErrors; all keep their builtin bases."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import (
    Calculator,
    CalculatorError,
    CalculatorSetupError,
    PropertyNotImplementedError,
)
from ase.calculators.emt import EMT

from softcalc import ModelCalculator, SoftCorrectedCalc
from softcalc.correction import Correction
from softcalc.errors import (
    CalculationSetupError,
    CorrectionFileError,
    CorrectionMismatchError,
    DataError,
    DeviceError,
    InvalidStructureError,
    MissingDependencyError,
    PerAtomEnergyNotSupportedError,
    SoftcalcError,
    UnknownModelError,
    UnsupportedElementsError,
    WeightsNotFoundError,
)
from softcalc.md import MDInstabilityError, MDSettingsError, TrajectoryFileError
from softcalc.registry import check_device

#: errors about a calculation (ASE CalculatorSetupError) and the builtin base each keeps
CALCULATION_ERRORS = {
    InvalidStructureError: ValueError,
    UnsupportedElementsError: ValueError,
    DeviceError: ValueError,
    CorrectionMismatchError: ValueError,
    PerAtomEnergyNotSupportedError: NotImplementedError,
}
#: errors about resources, inputs and MD runs: plain softcalc errors with their builtin base
OTHER_ERRORS = {
    UnknownModelError: ValueError,
    WeightsNotFoundError: FileNotFoundError,
    MissingDependencyError: ImportError,
    DataError: ValueError,
    CorrectionFileError: ValueError,
    MDInstabilityError: RuntimeError,
    MDSettingsError: ValueError,
    TrajectoryFileError: OSError,
}


@pytest.fixture(params=["model", "corrected"])
def calc(request: pytest.FixtureRequest) -> Calculator:
    from softcalc_toy import ToyMorse  # the toy plugin's adapter, without discovering every plugin

    model = ModelCalculator(ToyMorse())
    return model if request.param == "model" else SoftCorrectedCalc(model, scale=0.9)


def test_an_unsupported_element_is_caught_as_a_calculator_error(calc: Calculator) -> None:
    atoms = bulk("Cu", "fcc", a=3.61)
    atoms.calc = calc
    with pytest.raises(CalculatorError) as caught:
        atoms.get_forces()
    assert isinstance(caught.value, UnsupportedElementsError)
    assert caught.value.elements == ["Cu"]


def test_nan_positions_are_caught_as_a_calculator_error(calc: Calculator) -> None:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1, 0] = np.nan
    atoms.calc = calc
    with pytest.raises(CalculatorError, match="NaN") as caught:
        atoms.get_forces()
    assert isinstance(caught.value, InvalidStructureError)


def test_unusable_corrections_and_devices_are_calculator_setup_errors() -> None:
    from softcalc_toy import ToyMorse

    with pytest.raises(CalculatorSetupError, match="per-atom energies"):
        SoftCorrectedCalc(EMT(), correction=Correction(species_scales={"Cu": 1.1}))
    other = Correction(scale=1.1, model={"family": "chgnet", "name": "chgnet-0.3.0", "weights_sha256": None})
    with pytest.raises(CalculatorSetupError, match="different model"):
        SoftCorrectedCalc(ModelCalculator(ToyMorse()), correction=other)
    with pytest.raises(CalculatorSetupError, match="not a torch device"):
        check_device("abacus")


@pytest.mark.parametrize(("error", "builtin"), CALCULATION_ERRORS.items(), ids=lambda e: e.__name__)
def test_calculation_errors_are_ase_calculator_setup_errors(error: type, builtin: type) -> None:
    assert issubclass(error, CalculationSetupError)
    assert issubclass(error, CalculatorSetupError) and issubclass(error, CalculatorError)
    assert issubclass(error, SoftcalcError) and issubclass(error, builtin)


@pytest.mark.parametrize(("error", "builtin"), OTHER_ERRORS.items(), ids=lambda e: e.__name__)
def test_other_errors_are_plain_softcalc_errors(error: type, builtin: type) -> None:
    assert issubclass(error, SoftcalcError) and issubclass(error, builtin)
    assert not issubclass(error, CalculatorError)


def test_property_not_implemented_stays_apart_from_calculator_errors() -> None:
    """ASE's PropertyNotImplementedError is a NotImplementedError, not a CalculatorError; softcalc's
    missing per-atom energies are a setup error, so a stress fallback never swallows them."""
    assert not issubclass(PropertyNotImplementedError, CalculatorError)
    assert not issubclass(PerAtomEnergyNotSupportedError, PropertyNotImplementedError)
