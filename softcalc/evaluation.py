"""Model forces on reference data, paired with the DFT forces they are compared to.

Finite-displacement (phonopy) sets are compared as displacement responses: the model's forces on the
undisplaced supercell are subtracted (the DFT-relaxed cell is not a minimum of the model), and where
± displacement pairs exist, (F₊ − F₋)/2 is used for both model and DFT, cancelling residual forces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.calculators.calculator import Calculator
from tqdm.auto import tqdm

from softcalc.data.dataset import ForceDataset
from softcalc.energies import EnergyComparison, reduced_composition
from softcalc.forces import DEFAULT_BATCH, ForceEvaluator
from softcalc.metrics import ForceMetrics, force_metrics, grouped_metrics
from softcalc.model import ModelCalculator


@dataclass
class ForceComparison:
    """Model and DFT forces per sample (a frame, or a ± displacement pair), in eV/Å.

    Attributes:
        model, dft: one (n, 3) array per sample.
        symbols: chemical symbols per sample (for per-element metrics).
        groups: structure group per sample; frame_index: index of the (first) frame in the dataset.
        material: dataset material name.
    """

    model: list[np.ndarray]
    dft: list[np.ndarray]
    symbols: list[list[str]]
    groups: list[str]
    frame_index: list[int]
    material: str

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """All components concatenated: (model, dft), each (M,)."""
        return np.concatenate([m.ravel() for m in self.model]), np.concatenate([d.ravel() for d in self.dft])

    def metrics(self) -> ForceMetrics:
        """Pooled metrics over every sample."""
        return force_metrics(*self.pooled(), n_frames=len(self.model))

    def by_group(self) -> dict[str, ForceMetrics]:
        """Metrics per structure group."""
        return grouped_metrics(self.model, self.dft, self.groups)

    def by_element(self) -> dict[str, ForceMetrics]:
        """Metrics per element (forces on atoms of that element)."""
        fm, fd, labels = [], [], []
        for m, d, syms in zip(self.model, self.dft, self.symbols):
            for el in sorted(set(syms)):
                mask = np.array(syms) == el
                fm.append(m[mask])
                fd.append(d[mask])
                labels.append(el)
        out = grouped_metrics(fm, fd, labels)
        return dict(sorted(out.items()))

    def scaled(self, factor: float) -> ForceComparison:
        """The same comparison with model forces multiplied by ``factor``."""
        return ForceComparison(
            [factor * m for m in self.model],
            self.dft,
            self.symbols,
            self.groups,
            self.frame_index,
            self.material,
        )


def compare_forces(
    calc: Calculator, dataset: ForceDataset, batch_size: int = DEFAULT_BATCH, progress: bool = False
) -> ForceComparison:
    """Evaluate ``calc`` on every frame of ``dataset`` and pair its forces with the DFT forces."""
    return compare_forces_energies(calc, dataset, batch_size, progress)[0]


def compare_forces_energies(
    calc: Calculator, dataset: ForceDataset, batch_size: int = DEFAULT_BATCH, progress: bool = False
) -> tuple[ForceComparison, EnergyComparison]:
    """Forces and energies of ``calc`` on every frame of ``dataset``, paired with the DFT ones.

    One model call per frame gives both. The energies carry the model's anchors E_ref = Σ_i μ_Zi
    (``calc.reference_energies`` of a corrected calculator, else the model's own, else 0).
    """
    structures = [f.atoms for f in dataset.frames]
    if dataset.reference is not None:
        structures = [*structures, dataset.reference]
    evaluator = ForceEvaluator(calc, batch_size)
    results = evaluator.results(structures, progress=progress, desc=dataset.material or "data")
    forces = [np.asarray(r["forces"]) for r in results]
    frames = dataset.frames
    refs = getattr(calc, "reference_energies", None)
    if refs is None:
        refs = calc.info.reference_energies if isinstance(calc, ModelCalculator) else {}
    symbols = [f.atoms.get_chemical_symbols() for f in frames]
    energies = EnergyComparison(
        model=np.array([float(r["energy"]) for r in results[: len(frames)]]),
        dft=np.array([np.nan if f.energy is None else f.energy for f in frames], dtype=float),
        n_atoms=np.array([len(f.atoms) for f in frames]),
        composition=[reduced_composition(s) for s in symbols],
        reference=np.array([sum(refs.get(z, 0.0) for z in s) for s in symbols], dtype=float),
        groups=[f.group for f in frames],
    )
    return pair_forces(dataset, forces), energies


def compare_sets(
    calc: Calculator, sets: Sequence[ForceDataset], progress: bool = False
) -> tuple[ForceComparison, EnergyComparison]:
    """:func:`compare_forces_energies` of several data sets, merged in order."""
    pairs = [compare_forces_energies(calc, d, progress=progress) for d in sets]
    return merge_comparisons([f for f, _ in pairs]), EnergyComparison.merge([e for _, e in pairs])


def pair_forces(dataset: ForceDataset, forces: Sequence[np.ndarray]) -> ForceComparison:
    """Pair precomputed model forces (one per frame, then the reference if any) with DFT forces."""
    frames = dataset.frames
    model = list(forces[: len(frames)])
    if dataset.reference is not None:
        model = [m - forces[len(frames)] for m in model]
    in_pair = {i for pair in dataset.pairs for i in pair}
    samples: list[tuple[np.ndarray, np.ndarray, int]] = [
        (0.5 * (model[i] - model[j]), 0.5 * (frames[i].forces - frames[j].forces), i)
        for i, j in dataset.pairs
    ]
    samples += [(model[i], frames[i].forces, i) for i in range(len(frames)) if i not in in_pair]
    samples.sort(key=lambda s: s[2])
    return ForceComparison(
        model=[s[0] for s in samples],
        dft=[s[1] for s in samples],
        symbols=[frames[s[2]].atoms.get_chemical_symbols() for s in samples],
        groups=[frames[s[2]].group for s in samples],
        frame_index=[s[2] for s in samples],
        material=dataset.material,
    )


def species_force_components(
    calc: ModelCalculator, dataset: ForceDataset, species: Sequence[str], progress: bool = False
) -> dict[str, ForceComparison]:
    """Per-species force contributions F^Z = −∂(Σ_{i∈Z} e_i)/∂R for each species Z.

    The corrected forces of a per-species correction are F' = Σ_Z λ_Z F^Z, linear in λ_Z, which makes
    the per-species fit an exact linear least-squares problem. Needs per-atom energies.
    """
    structures = [f.atoms for f in dataset.frames]
    if dataset.reference is not None:
        structures.append(dataset.reference)
    out: dict[str, ForceComparison] = {}
    for el in species:
        forces = []
        for atoms in tqdm(structures, desc=f"F^{el}", disable=not progress, leave=False):
            weights = (np.array(atoms.get_chemical_symbols()) == el).astype(float)
            forces.append(
                np.asarray(calc.model.weighted_energy(atoms, weights, compute_stress=False)["forces"])
            )
        out[el] = pair_forces(dataset, forces)
    return out


def merge_comparisons(comps: Sequence[ForceComparison]) -> ForceComparison:
    """Concatenate comparisons (e.g. several data sets) into one."""
    return ForceComparison(
        [m for c in comps for m in c.model],
        [d for c in comps for d in c.dft],
        [s for c in comps for s in c.symbols],
        [g for c in comps for g in c.groups],
        [i for c in comps for i in c.frame_index],
        "+".join(dict.fromkeys(c.material for c in comps)),
    )
