"""The :class:`Property` protocol of ``bench properties`` and the registry of properties by name.

A property finds its frames in a material (or says why it is absent), computes its values from DFT and
from a model, summarises model vs DFT per correction, stores its arrays in ``predictions.h5`` and gives
its columns of the ``summary.md`` tables. Evaluation, aggregation, the report and the plots iterate over
:func:`registered_properties` in registration order, which is also the order of the properties in every
record of ``summary.json``. Adding a property is one module and one line::

    register_property(MyProperty())
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.calculators.calculator import Calculator

if TYPE_CHECKING:
    import h5py

    from softcalc.bench.properties.materials import Material

#: skip reason of a property that needs DFT energies, on data without any
NO_ENERGIES = "the data carry no DFT energies"


def finite(value: float) -> float | None:
    """``value``, or None where it is NaN or infinite (strict JSON)."""
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Source:
    """What property values are computed from: DFT (the frames' data) or a model with one correction.

    Attributes:
        energies: energy (eV) of every frame of the material, NaN where DFT gives none.
        forces: forces ((N, 3) eV/Å) of every frame.
        calc: the corrected model; None for DFT.
        model: the model's name ("" for DFT).
    """

    energies: np.ndarray
    forces: list[np.ndarray]
    calc: Calculator | None = None
    model: str = ""


class Property(ABC):
    """One property that ``bench properties`` measures, model vs DFT, for every model and correction.

    ``located`` below is what :meth:`locate` returned for the material (frames, a phonon set, ...);
    ``dft`` and ``model`` are what :meth:`values` returned for DFT and for the model with a correction.
    """

    #: key in summary.json (``data``, every correction's record, the skip reasons) and predictions.h5
    name: str
    #: absent (skip reason :data:`NO_ENERGIES`) from data without DFT energies
    needs_energies: bool = False
    #: properties whose :attr:`Material.located` entries :meth:`locate` reads: they are located first
    after: tuple[str, ...] = ()
    #: units and meaning in the heading of the bare-model table of summary.md ("": none)
    note: str = ""
    #: columns of the bare-model table and of the corrections table of summary.md
    headline_columns: tuple[str, ...] = ()
    correction_columns: tuple[str, ...] = ()

    @abstractmethod
    def locate(self, material: Material) -> Any | None:
        """What of ``material`` gives this property, or None where it is absent (the reasons go to
        ``material.skipped``, what -> why)."""

    @abstractmethod
    def values(self, material: Material, located: Any, source: Source) -> Any:
        """The property's values from ``source`` (DFT, or the model with one correction)."""

    def dft_summary(self, material: Material, located: Any, dft: Any) -> dict[str, Any] | None:
        """The DFT values in ``data[material][name]`` of summary.json; None: not reported."""
        return None

    @abstractmethod
    def summary(self, material: Material, located: Any, dft: Any, model: Any) -> dict[str, Any]:
        """Model vs DFT for one correction: ``results[model][material]["corrections"][key][name]``."""

    def store_frames(self, group: h5py.Group, material: Material, located: Any) -> None:  # noqa: B027
        """Which frames give the property, into ``/data/<material>/`` of predictions.h5 (default none)."""

    def store(self, group: h5py.Group, values: Any) -> None:  # noqa: B027
        """The values' arrays into predictions.h5: ``/data/<material>/`` (DFT) or
        ``/models/<i>/<material>/<correction>/`` (default none)."""

    @abstractmethod
    def headline(self, record: dict[str, Any] | None) -> dict[str, Any]:
        """The fields of the headline row (summary.json) from the bare model's record; None: absent."""

    @abstractmethod
    def headline_cells(self, row: dict[str, Any]) -> list[str]:
        """The :attr:`headline_columns` cells of one headline row."""

    @abstractmethod
    def correction_cells(self, record: dict[str, Any] | None) -> list[str]:
        """The :attr:`correction_columns` cells of one correction's record (None: absent)."""

    def pool(
        self, data: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Values pooled over materials per model and correction (``pooled_<name>`` in summary.json);
        None: none."""
        return None

    def pooled_section(self, summary: dict[str, Any]) -> tuple[str, str] | None:
        """(heading, table) of the pooled values in summary.md, after the corrections table."""
        return None

    def detail_section(self, summary: dict[str, Any]) -> tuple[str, str] | None:
        """(heading, table) of details in summary.md, after the cross-data table."""
        return None

    def plot(self, out: Path, summary: dict[str, Any]) -> None:  # noqa: B027
        """PNG plots into the folder ``out``, from the summary alone (default none)."""


_REGISTRY: dict[str, Property] = {}


def register_property(prop: Property) -> Property:
    """Add ``prop`` to every ``bench properties`` run from now on (after those registered before it)."""
    if prop.name in _REGISTRY:
        raise ValueError(f"a bench property named {prop.name!r} is registered already")
    _REGISTRY[prop.name] = prop
    return prop


def unregister_property(name: str) -> None:
    """Remove the property ``name`` from the registry."""
    del _REGISTRY[name]


def registered_properties() -> list[Property]:
    """Every registered property, in registration order."""
    return list(_REGISTRY.values())


def _locating_order(props: list[Property]) -> list[Property]:
    """``props`` with each one after the properties it names in :attr:`Property.after`."""
    order: list[Property] = []

    def visit(prop: Property) -> None:
        if prop not in order:
            for before in props:
                if before.name in prop.after:
                    visit(before)
            order.append(prop)

    for prop in props:
        visit(prop)
    return order


def locate(material: Material) -> None:
    """Fill ``material.located`` and ``material.skipped`` from every registered property."""
    props = registered_properties()
    if not material.has_energies:
        material.skipped.update({p.name: NO_ENERGIES for p in props if p.needs_energies})
        props = [p for p in props if not p.needs_energies]
    for prop in _locating_order(props):
        located = prop.locate(material)
        if located is not None:
            material.located[prop.name] = located
