"""Model and DFT energies of reference frames, compared as energy differences within a composition.

A uMLIP and a DFT code agree on energy *differences* far better than on absolute energies (their
per-element references differ), and the anchored correction E' = E_ref + λ (E − E_ref) scales exactly
these differences: for frames k of one reduced composition c, E_ref/N is the same for all of them, so

    e'_k − ē'_c = λ (e_k − ē_c),        e = E/N (eV/atom), ē_c = mean of e over the frames of c.

:class:`EnergyComparison` holds, per frame, the model and DFT total energies (eV), the atom count, the
reduced composition and the anchor energy E_ref = Σ_i μ_Zi of the model. :func:`energy_deviations`
turns them into per-atom deviations from the mean of the frames of the same composition, either of the
frames themselves (calibration) or of another set (held-out frames against the calibration means, so a
held-out check never sees the held-out DFT mean). Frames without a DFT (or model) energy, and
compositions with a single frame and no means to refer to, carry no difference and are left out (and
counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.formula import Formula


def reduced_composition(symbols: Sequence[str]) -> str:
    """The reduced formula of a structure (``"Si"`` for 63 and 64 Si atoms alike, ``"LiF"`` ...)."""
    return Formula.from_list(list(symbols)).reduce()[0].format("hill")


@dataclass
class EnergyComparison:
    """Model and DFT energies per frame.

    Attributes:
        model: model total energies (B,) in eV; NaN from a calculator that gives forces only.
        dft: DFT total energies (B,) in eV; NaN where the frame has none.
        n_atoms: atoms per frame (B,).
        composition: reduced formula per frame.
        reference: E_ref = Σ_i μ_Zi of each frame (B,) in eV, the anchor of the correction (0 when the
            model names no reference energies).
        groups: structure group per frame.
    """

    model: np.ndarray
    dft: np.ndarray
    n_atoms: np.ndarray
    composition: list[str]
    reference: np.ndarray
    groups: list[str]

    def __len__(self) -> int:
        return len(self.model)

    @property
    def paired(self) -> np.ndarray:
        """(B,) True where the frame has a DFT energy and the model gave one (not a forces-only model)."""
        return np.isfinite(self.dft) & np.isfinite(self.model)

    def scaled(self, factor: float) -> EnergyComparison:
        """The same comparison with the anchored global correction E' = E_ref + λ (E − E_ref) applied."""
        model = self.reference + factor * (self.model - self.reference)
        return EnergyComparison(model, self.dft, self.n_atoms, self.composition, self.reference, self.groups)

    def with_model(self, model: np.ndarray) -> EnergyComparison:
        """The same frames with other model energies (eV), e.g. of a corrected or tuned model."""
        model = np.asarray(model, dtype=float)
        return EnergyComparison(model, self.dft, self.n_atoms, self.composition, self.reference, self.groups)

    def means(self) -> dict[str, tuple[float, float]]:
        """(model, DFT) mean energy per atom (eV/atom) of each composition, over :attr:`paired` frames."""
        out = {}
        ok = self.paired
        for comp in dict.fromkeys(self.composition):
            sel = ok & (np.array(self.composition) == comp)
            if sel.any():
                per_atom = self.model[sel] / self.n_atoms[sel], self.dft[sel] / self.n_atoms[sel]
                out[comp] = (float(per_atom[0].mean()), float(per_atom[1].mean()))
        return out

    def subset(self, indices: Sequence[int]) -> EnergyComparison:
        """The frames at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=int)
        return EnergyComparison(
            self.model[idx],
            self.dft[idx],
            self.n_atoms[idx],
            [self.composition[i] for i in idx],
            self.reference[idx],
            [self.groups[i] for i in idx],
        )

    @staticmethod
    def merge(parts: Sequence[EnergyComparison]) -> EnergyComparison:
        """Concatenate comparisons (e.g. of several data sets)."""
        return EnergyComparison(
            np.concatenate([p.model for p in parts]),
            np.concatenate([p.dft for p in parts]),
            np.concatenate([p.n_atoms for p in parts]),
            [c for p in parts for c in p.composition],
            np.concatenate([p.reference for p in parts]),
            [g for p in parts for g in p.groups],
        )


@dataclass(frozen=True)
class EnergyDeviations:
    """Per-atom energy deviations from the mean of each frame's composition.

    Attributes:
        model, dft: deviations (eV/atom) of the frames that have one, (M,).
        weights: atoms per frame (M,), the weight of each frame in fits and errors.
        index: positions of these frames in the comparison (M,).
        n_skipped: frames without a deviation (no DFT energy, or the only frame of their composition).
    """

    model: np.ndarray
    dft: np.ndarray
    weights: np.ndarray
    index: np.ndarray
    n_skipped: int

    def mae(self) -> float:
        """Atom-weighted MAE of the deviations (eV/atom)."""
        return float(np.average(np.abs(self.model - self.dft), weights=self.weights))


def energy_deviations(
    frames: EnergyComparison, means: dict[str, tuple[float, float]] | None = None
) -> EnergyDeviations:
    """Deviations e_k − ē_c of model and DFT per-atom energies (see the module docstring).

    Args:
        frames: the frames to take deviations of.
        means: (model, DFT) means per composition to refer to (:meth:`EnergyComparison.means` of the
            calibration frames, for held-out frames); compositions missing there, or all when None, are
            referred to the mean of their own frames, which needs at least two of them.
    """
    own = frames.means()
    counts: dict[str, int] = {}
    for comp, ok in zip(frames.composition, frames.paired):
        counts[comp] = counts.get(comp, 0) + int(ok)
    keep = []
    for k, (comp, ok) in enumerate(zip(frames.composition, frames.paired)):
        if ok and ((means is not None and comp in means) or counts[comp] >= 2):
            keep.append(k)
    idx = np.array(keep, dtype=int)
    ref = [(means or {}).get(frames.composition[k], own[frames.composition[k]]) for k in keep]
    mean_m = np.array([r[0] for r in ref])
    mean_d = np.array([r[1] for r in ref])
    n = frames.n_atoms[idx].astype(float)
    return EnergyDeviations(
        model=frames.model[idx] / n - mean_m if len(idx) else np.zeros(0),
        dft=frames.dft[idx] / n - mean_d if len(idx) else np.zeros(0),
        weights=n,
        index=idx,
        n_skipped=len(frames) - len(idx),
    )
