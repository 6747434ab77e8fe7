"""What softcalc knows about a loaded model: :class:`ModelInfo` (a leaf module: no softcalc imports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelInfo:
    """What softcalc needs to know about a loaded model.

    Attributes:
        name: canonical model name, e.g. ``"chgnet-0.3.0"``.
        family: plugin family, e.g. ``"chgnet"``.
        weights: path of the weights actually loaded (None for built-in analytic models).
        weights_sha256: SHA-256 of the weights (file, or all files of a directory), None if unknown.
        elements: chemical symbols the model was trained on.
        cutoff: interaction cutoff radius in Å (the largest one the model uses).
        n_message_passing: number of message-passing layers (1 for local potentials); the receptive
            field, and the LAMMPS ghost shell, is ``n_message_passing * cutoff``.
        reference_energies: per-element reference energies μ_Z in eV/atom (the model's own atom
            references: CHGNet AtomRef, matgl element_refs, MACE E0s).
        device: torch device string the model runs on.
        dtype: ``"float32"`` or ``"float64"``.
    """

    name: str
    family: str
    weights: str | None
    weights_sha256: str | None
    elements: frozenset[str]
    cutoff: float
    n_message_passing: int
    reference_energies: Mapping[str, float] = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def receptive_field(self) -> float:
        """Distance in Å over which an atom's energy depends on its neighbours."""
        return self.n_message_passing * self.cutoff

    @property
    def fingerprint(self) -> dict[str, str | None]:
        """Identity used to check that a correction matches a model."""
        return {"family": self.family, "name": self.name, "weights_sha256": self.weights_sha256}
