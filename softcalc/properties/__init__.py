"""Material properties from energies of DFT-labelled frames: surface energies and energy-strain curvatures.

Pure numpy: the functions take frames, structures, descriptions and energies (eV) and never call a
model, so the same code measures DFT and any model on the same geometries
(:mod:`softcalc.bench.properties`).
"""

from softcalc.properties.strain import (
    MIN_STRAINS,
    QuadraticFit,
    StrainCurve,
    deformation_kind,
    distinct_strains,
    fit_quadratic,
    is_ground_state,
    strain_curves,
    strain_mode,
    zero_strain_energy,
)
from softcalc.properties.surfaces import (
    MIN_VACUUM,
    SURFACE_GROUP,
    SlabGeometry,
    SlabGeometryError,
    find_slabs,
    same_stoichiometry,
    slab_geometry,
    surface_energy,
    vacuum_gaps,
)

__all__ = [
    "MIN_STRAINS",
    "MIN_VACUUM",
    "SURFACE_GROUP",
    "QuadraticFit",
    "SlabGeometry",
    "SlabGeometryError",
    "StrainCurve",
    "deformation_kind",
    "distinct_strains",
    "find_slabs",
    "fit_quadratic",
    "is_ground_state",
    "same_stoichiometry",
    "slab_geometry",
    "strain_curves",
    "strain_mode",
    "surface_energy",
    "vacuum_gaps",
    "zero_strain_energy",
]
