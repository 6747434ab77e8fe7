"""Replay frames: structures outside the DFT data, labelled by the base model itself (pseudo-labels).

A few-shot fine-tune sees only the calibration frames; nothing holds the weights where no DFT frame
says anything, and a model tuned on hot MD frames drifts near equilibrium and on other chemistries.
MACE's multihead fine-tuning replays foundation data, or configurations labelled by the foundation
model (its "mode 2" replay); here the second: energy, forces and stress of the model before training
(after the μ_Z refit, so that replayed and DFT energies share one offset: the refit shifts energies by a
constant per atom and leaves forces and stress unchanged) on

(a) the ground state of every tuned element (ASE's reference crystal, ``ase.build.bulk``), and
(b) the shared unit cells of other chemistries the model covers
    (:func:`softcalc.data.paths.reference_structures`; none without the shared data),

each repeated to a supercell of at least :data:`MIN_EDGE` Å and rattled by :data:`RATTLE` Å with fixed
seeds (:data:`GROUND_STATE_FRAMES` per ground state, :data:`OTHER_FRAMES` per other structure). The
training loop adds them to the training frames with the loss weight ``replay``
(:class:`~softcalc.finetune.settings.FineTuneSettings`), so the weights may move only where DFT frames
ask them to.

These are the structures (not the configurations: other seeds) of the forgetting check
(``softcalc.calibration.forgetting``): with replay on, that check measures how well the replay held the
model, not an independent drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.io import read

from softcalc.data.dataset import ForceFrame
from softcalc.data.paths import reference_structures
from softcalc.torch_adapter import TorchAdapter

#: rattle amplitude (Å, standard deviation of each displacement component) and smallest supercell edge (Å)
RATTLE, MIN_EDGE = 0.05, 8.0
#: rattled supercells per tuned element's ground state, and per structure of another chemistry
GROUND_STATE_FRAMES, OTHER_FRAMES = 2, 1
#: first rattle seed (the forgetting check uses 0, 1, ...; replay uses other configurations)
SEED = 1000


def replay_structures(elements: Sequence[str], covered: frozenset[str]) -> list[tuple[str, Atoms]]:
    """(name, rattled supercell) of the replay set for tuned ``elements`` and a model covering ``covered``.

    Elements without an ASE reference crystal and other-chemistry cells with elements outside ``covered``
    (or only tuned elements) are left out.
    """
    bases: list[tuple[str, Atoms, int]] = []
    for el in sorted(elements):
        try:
            bases.append((f"{el} ground state", bulk(el), GROUND_STATE_FRAMES))
        except (ValueError, KeyError, RuntimeError):
            continue
    for name, path in reference_structures().items():
        atoms = read(path, format="vasp")
        symbols = set(atoms.get_chemical_symbols())
        if symbols <= covered and not symbols <= set(elements):
            bases.append((name, atoms, OTHER_FRAMES))
    out = []
    seed = SEED
    for name, atoms, n in bases:
        rep = [max(1, int(np.ceil(MIN_EDGE / x))) for x in atoms.cell.lengths()]
        for k in range(n):
            big = atoms.repeat(rep)
            big.rattle(RATTLE, seed=seed)
            seed += 1
            out.append((f"{name}, rattled {k}", big))
    return out


def replay_frames(adapter: TorchAdapter, elements: Sequence[str], batch_size: int = 4) -> list[ForceFrame]:
    """The replay set (:func:`replay_structures`) labelled by ``adapter``: energy (eV), forces (eV/Å) and
    stress (Voigt, eV/Å³); group ``"replay"``."""
    named = replay_structures(elements, adapter.info.elements)
    frames = []
    for start in range(0, len(named), batch_size):
        part = named[start : start + batch_size]
        results = adapter.compute_many([atoms for _, atoms in part], ["energy", "forces", "stress"])
        for (name, atoms), r in zip(part, results):
            frames.append(
                ForceFrame(atoms, r["forces"], r["energy"], r.get("stress"), group="replay", label=name)
            )
    return frames
