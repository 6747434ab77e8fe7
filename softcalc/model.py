"""The contract between softcalc's core and a uMLIP plugin.

A plugin (see :mod:`softcalc.registry`) turns a model name or path into a :class:`ModelAdapter`:
one loaded model that evaluates structures. :class:`ModelCalculator` exposes any adapter as a
conventional ASE calculator; it is what :func:`softcalc.load_model` returns.

Units throughout: energies in eV, forces in eV/Å, stress in eV/Å³ (ASE sign convention,
σ = (1/V) ∂E/∂ε, Voigt order xx yy zz yz xz xy), lengths in Å.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from softcalc.errors import CalculationSetupError, PerAtomEnergyNotSupportedError
from softcalc.info import ModelInfo
from softcalc.structure import check_structure

#: the fix :func:`require_fine_tuning` gives when its caller names none
_TUNE_FIX = (
    "load the model by name (softcalc.load_model('chgnet')), or implement the fine-tuning hooks of its plugin"
)

#: Properties every adapter computes.
BASE_PROPERTIES = ("energy", "free_energy", "forces", "stress")


def atom_batches(structures: Sequence[Atoms], max_atoms: int) -> Iterator[list[Atoms]]:
    """Consecutive runs of ``structures`` holding at most ``max_atoms`` atoms each.

    A structure larger than ``max_atoms`` forms a batch of its own. Plugins use this to bound the
    memory of one batched forward pass in :meth:`ModelAdapter.compute_many`.
    """
    batch: list[Atoms] = []
    n_atoms = 0
    for atoms in structures:
        if batch and n_atoms + len(atoms) > max_atoms:
            yield batch
            batch, n_atoms = [], 0
        batch.append(atoms)
        n_atoms += len(atoms)
    if batch:
        yield batch


class ModelAdapter(ABC):
    """One loaded uMLIP. Plugins subclass this; core code only talks to this interface.

    Subclasses set :attr:`info` and implement :meth:`compute`. They override :meth:`compute_many`
    when the model can evaluate several structures in one batch, and :meth:`weighted_energy` (with
    :attr:`supports_per_atom_energies` = True) when it exposes differentiable per-atom energies.
    Fine-tuning needs the hooks of :class:`softcalc.torch_adapter.TorchAdapter`, which sets
    :attr:`supports_fine_tuning`.
    """

    info: ModelInfo
    #: True when :meth:`weighted_energy` and per-atom ``energies`` are available.
    supports_per_atom_energies: ClassVar[bool] = False
    #: True when the adapter runs :func:`~softcalc.structure.check_structure` on every structure it
    #: evaluates; the calculators around it then do not check the same structure again.
    checks_structures: ClassVar[bool] = False
    #: True when :mod:`softcalc.finetune` can train the model's weights (a
    #: :class:`~softcalc.torch_adapter.TorchAdapter` whose plugin names its ``module``); every
    #: "can it be fine-tuned?" question asks this, through :func:`require_fine_tuning`.
    supports_fine_tuning: ClassVar[bool] = False

    @abstractmethod
    def compute(self, atoms: Atoms, properties: Sequence[str]) -> dict[str, Any]:
        """Evaluate one structure.

        Returns a dict with ``energy`` (eV, float), ``forces`` ((N, 3) eV/Å), ``stress`` ((6,) eV/Å³,
        only when requested and the cell is 3D periodic) and ``energies`` ((N,) eV, per-atom
        energies, only when requested and supported). Per-atom energies sum to ``energy``.
        """

    def compute_many(
        self, structures: Sequence[Atoms], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Evaluate many structures; plugins override this with a batched path."""
        return [self.compute(atoms, properties) for atoms in structures]

    def weighted_energy(
        self,
        atoms: Atoms,
        atom_weights: np.ndarray,
        compute_stress: bool = True,
        virials: bool = False,
        virial_origin: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Differentiate a weighted sum of per-atom energies.

        With per-atom energies e_i and weights w_i, returns ``energy`` = Σ w_i e_i (eV),
        ``forces`` = -∂/∂R of it ((N, 3) eV/Å), ``stress`` = (1/V) ∂/∂ε of it ((6,) eV/Å³, when
        requested and periodic), ``energies`` = e_i ((N,) eV, unweighted) and, when ``virials`` (a
        non-periodic ``atoms`` only), ``virials``: the per-atom virials of Σ w_i e_i ((N, 3, 3) eV,
        :func:`softcalc.autograd.centroid_virials`, positions taken from ``virial_origin`` (Å) or the
        centroid).
        """
        raise PerAtomEnergyNotSupportedError(
            f"model {self.info.name} ({self.info.family}) does not expose differentiable per-atom "
            "energies, so per-species corrections cannot be applied to it. "
            "Fix: use a global scale correction (calibrate without --per-species)."
        )


def default_properties(atoms: Atoms, model: ModelAdapter, requested: Sequence[str] | None) -> list[str]:
    """Everything one model call gives almost for free, so later ASE getters hit the cache.

    Energy and forces always; stress whenever the cell is 3D periodic (one backward pass yields it
    with the forces); per-atom energies when the model has them.
    """
    wanted = {"energy", "forces", *(requested or ())} - {"free_energy"}
    if atoms.pbc.all():
        wanted.add("stress")
    else:
        wanted.discard("stress")
    if model.supports_per_atom_energies:
        wanted.add("energies")
    return sorted(wanted)


class CheckedCalculator(Calculator, ABC):
    """An ASE calculator that checks every structure before its model sees it (softcalc's calculators).

    Subclasses implement :meth:`evaluate`; ``calculate`` stores the structure, checks it against
    :attr:`info` (finite positions, a valid cell, elements the model covers) and fills ``results``,
    with ``free_energy`` equal to ``energy``.
    """

    @property
    def info(self) -> ModelInfo | None:
        """The model's :class:`ModelInfo` (None when unknown: then only the geometry is checked)."""
        return None

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] | None = None,
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms  # the copy Calculator.calculate stored
        if self.checks_here:
            check_structure(atoms, self.info)
        self.results = self.evaluate(atoms, list(properties or ()), system_changes)
        self.results["free_energy"] = self.results["energy"]

    @property
    def checks_here(self) -> bool:
        """Whether :meth:`calculate` checks the structure (False when a layer inside checks it anyway)."""
        return True

    @abstractmethod
    def evaluate(self, atoms: Atoms, properties: Sequence[str], changes: Sequence[str]) -> dict[str, Any]:
        """Results of one checked structure: ``energy`` (eV), ``forces`` (eV/Å), ... as ASE names them.

        ``changes`` are ASE's system changes since the last call (for calculators that cache).
        """


class ModelCalculator(CheckedCalculator):
    """ASE calculator for a :class:`ModelAdapter`: what :func:`softcalc.load_model` returns.

    It validates every structure (finite positions, elements the model covers) before the model
    sees it, so bad input gives a softcalc error rather than a traceback from inside torch.
    """

    #: many structures evaluate in one :meth:`compute_many` call (see :mod:`softcalc.forces`)
    batched = True

    def __init__(self, model: ModelAdapter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        props = list(BASE_PROPERTIES)
        if model.supports_per_atom_energies:
            props.append("energies")
        self.implemented_properties = props

    @property
    def info(self) -> ModelInfo:
        """The loaded model's :class:`ModelInfo`."""
        return self.model.info

    def evaluate(self, atoms: Atoms, properties: Sequence[str], changes: Sequence[str]) -> dict[str, Any]:
        return self.model.compute(atoms, default_properties(atoms, self.model, properties))

    @property
    def checks_here(self) -> bool:
        return not self.model.checks_structures

    def compute_many(
        self, structures: Sequence[Atoms], properties: Sequence[str] = ("energy", "forces")
    ) -> list[dict[str, Any]]:
        """Check each structure, then evaluate all of them through the adapter's batched path.

        Returns one dict per structure with the adapter's results (``energy`` eV, ``forces`` eV/Å, ...).
        """
        if self.checks_here:
            for one in structures:
                check_structure(one, self.model.info)
        return self.model.compute_many(structures, properties)

    def __repr__(self) -> str:
        i = self.model.info
        return f"ModelCalculator({i.name!r}, family={i.family!r}, device={i.device!r}, dtype={i.dtype!r})"


def require_fine_tuning(model: Calculator | ModelAdapter, what: str, fix: str | None = None) -> ModelAdapter:
    """The adapter of ``model`` when its weights can be fine-tuned, else one error with the fix.

    Asks :attr:`ModelAdapter.supports_fine_tuning`.

    The one check behind every fine-tuning entry point (:func:`softcalc.finetune.fine_tune`,
    ``calibrate(..., method="finetune")``, a fine-tuned correction in :class:`~softcalc.SoftCorrectedCalc`).

    Args:
        model: a :class:`ModelCalculator` (its adapter is checked) or a :class:`ModelAdapter`; anything
            else is refused.
        what: what needs a model that can be fine-tuned, the message's subject (``"method 'finetune'"``).
        fix: the fix that fits the caller; default: load a model by name, or implement the plugin hook.

    Raises:
        CalculationSetupError: ``model`` cannot be fine-tuned; the message names it, why, and the fix.
    """
    adapter = model.model if isinstance(model, ModelCalculator) else model
    if isinstance(adapter, ModelAdapter):
        if adapter.supports_fine_tuning:
            return adapter
        name = f"model {adapter.info.name} ({adapter.info.family})"
        why = "its plugin does not implement TorchAdapter.module (README, 'Adding a model family')"
    else:
        name, why = repr(model), "it is not a softcalc model"
    raise CalculationSetupError(
        f"{what} needs a softcalc torch model whose plugin supports "
        f"fine-tuning (CHGNet, matgl M3GNet/TensorNet, MACE, ...), not {name}: {why}. "
        f"Fix: {fix or _TUNE_FIX}."
    )
