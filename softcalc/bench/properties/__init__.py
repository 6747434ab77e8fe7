"""Which regime a softening correction fixes: ``softcalc bench properties``.

For every model, material and correction, each registered property (:class:`Property`), model vs DFT:

- ``heldout_forces``: s, λ*, MAE on the test split (:mod:`.heldout`);
- ``surfaces``: surface energies γ (eV/Å²) of the slabs, slope, MAE, slabs underestimated (:mod:`.surfaces`);
- ``strain``: energy-strain curvature d²(E/N)/dε² (eV/atom) per strain mode, ratio model / DFT
  (:mod:`.strain`);
- ``phonons``: phonon frequencies against the material's phonopy force set, when given (:mod:`.phonons`).

Modules: :mod:`.registry` (the protocol and the registry), :mod:`.materials` (materials, their splits and
frames), :mod:`.model` (any ASE calculator as a model, each structure evaluated once),
:mod:`.candidates` (the corrections compared), :mod:`.run` (evaluation and orchestration),
:mod:`.predictions` (predictions.h5), :mod:`.report` (summary.md). A model may be any ASE calculator.

What the data cannot give (no surfaces, no strain frames, no energies, a mode with fewer than three
strains, a slab without vacuum, a non-stoichiometric slab, a correction that cannot be fitted) is skipped
with the reason recorded in ``summary.json``. Outputs: ``summary.json`` (deterministic: fixed seeds, no
timestamps), ``summary.md``, ``predictions.h5`` and the PNG plots.

A new property is a :class:`Property` subclass registered with one line, ``register_property(MyProperty())``;
it then appears in every record of summary.json, the headline, the tables of summary.md and
predictions.h5. The built-in properties are registered below, in the order of their keys in summary.json.
"""

from softcalc.bench.properties.heldout import HeldoutForces
from softcalc.bench.properties.phonons import PhononFrequencies
from softcalc.bench.properties.registry import (
    Property,
    Source,
    register_property,
    registered_properties,
    unregister_property,
)
from softcalc.bench.properties.run import run_properties
from softcalc.bench.properties.strain import StrainCurvature
from softcalc.bench.properties.surfaces import SurfaceEnergies, pooled_surfaces

register_property(HeldoutForces())
register_property(SurfaceEnergies())
register_property(StrainCurvature())
register_property(PhononFrequencies())

__all__ = [
    "Property",
    "Source",
    "pooled_surfaces",
    "register_property",
    "registered_properties",
    "run_properties",
    "unregister_property",
]
