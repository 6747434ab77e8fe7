"""Physical constants of phonon calculations, with the values phonopy uses (CODATA 2006).

Using phonopy's own values makes softcalc and phonopy agree to machine precision on the same force
constants rather than to the ~1e-7 by which CODATA revisions differ.
"""

from __future__ import annotations

from math import pi, sqrt

KB_J = 1.3806504e-23  #: Boltzmann constant, J/K
PLANCK_EV_S = 4.13566733e-15  #: Planck constant, eV s
AVOGADRO = 6.02214179e23  #: 1/mol
SPEED_OF_LIGHT = 299792458.0  #: m/s
AMU_KG = 1.6605402e-27  #: kg
EV_J = 1.60217733e-19  #: J

#: sqrt(eV/Å²/amu) expressed in THz (ordinary frequency): 15.6333 THz
EV_A2_AMU_TO_THZ = sqrt(EV_J / AMU_KG) / 1e-10 / (2 * pi) / 1e12
#: hν in eV of 1 THz
THZ_TO_EV = PLANCK_EV_S * 1e12
#: Boltzmann constant, eV/K
KB_EV = KB_J / EV_J
#: 1 THz in wavenumbers, cm⁻¹
THZ_TO_CM1 = 1e12 / (SPEED_OF_LIGHT * 100)
#: 1 eV per formula unit in kJ/mol
EV_TO_KJ_MOL = EV_J / 1000 * AVOGADRO


def thz_to_cm1(frequencies):  # noqa: ANN001, ANN201 - float or array in, same out
    """Convert frequencies from THz to cm⁻¹ (imaginary modes stay negative)."""
    return frequencies * THZ_TO_CM1
