"""Settings of a few-shot fine-tune: :class:`FineTuneSettings`.

Loss (per optimiser step, over the frames of the batch; a term without data is left out):

    L = w_E · mean_k ((E_k - E_k^DFT) / n_k)² + w_F · mean (F_iα - F_iα^DFT)² + w_σ · mean (σ_v - σ_v^DFT)²

with per-atom energies in eV/atom (frames with a DFT energy), force components in eV/Å and Voigt
stress components in GPa (3D-periodic frames with a DFT stress). Default weights 1 / 1 / 0.1 are
CHGNet's own trainer defaults in the same units: a force error of 0.1 eV/Å, an energy error of
0.1 eV/atom and a stress error of 0.3 GPa each add 0.01 to the loss, and the forces, 3N numbers per
frame against one energy and six stresses, dominate the gradient. Adam is invariant to the overall scale of
the loss, so only the ratios matter. Measured on CHGNet, 9 + 1 mlearn Si AIMD frames, 30 epochs:
these weights gave held-out (Si test.json) force MAE 0.108 eV/Å and energy MAE 0.016 eV/atom; the
paper's 0.1 / 100 / 0.1 (forces 1000 times the energy) gave 0.111 eV/Å and 0.048 eV/atom.

Threads: few-shot fine-tuning runs small graphs, where torch's intra-op threads gain little and, on a
shared machine, lose much: on 2 busy cores the CHGNet fine-tune above took 1101 s with two torch
threads and 92 s with one. The default is therefore one thread (``threads``), restored afterwards.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from softcalc.errors import SettingsError

#: ``all-but-last:K``: the readout and the last K interaction blocks train
_ALL_BUT_LAST = re.compile(r"all-but-last:(\d+)")
#: accepted values of :attr:`FineTuneSettings.freeze`
FREEZE_OPTIONS = ("none", "all-but-readout", "all-but-last:K")


@dataclass(frozen=True)
class FineTuneSettings:
    """How :func:`softcalc.finetune.fine_tune` trains.

    Attributes:
        epochs: passes over the training frames.
        lr: Adam learning rate of the first step.
        lr_final: learning rate of the last step; in between it follows a cosine.
        batch_size: structures per optimiser step.
        freeze: which parameters stay fixed: ``"none"`` (all train), ``"all-but-readout"`` (only the
            readout head trains) or ``"all-but-last:K"`` (the readout and the last K interaction blocks
            train). The atom reference energies μ_Z train in every mode (see ``refit_references``).
        energy_weight: weight of the mean squared per-atom energy error, per (eV/atom)².
        force_weight: weight of the mean squared force-component error, per (eV/Å)².
        stress_weight: weight of the mean squared Voigt stress-component error, per GPa².
        seed: seed of the shuffling of training frames (and of torch's generator during the fine-tune).
        device: torch device the fine-tune runs on (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        patience: stop when the validation loss has not improved for this many epochs; None never stops
            early.
        refit_references: before training, shift μ_Z by the least-squares per-element fit of the training
            frames' energy residuals (frames with a DFT energy), in the model's weights.
        threads: torch CPU threads during the fine-tune (the previous number is restored afterwards);
            None leaves torch's setting.

    Raises:
        SettingsError: a value out of range or an unknown ``freeze``; the message lists every problem.
    """

    epochs: int = 30
    lr: float = 1e-3
    lr_final: float = 1e-5
    batch_size: int = 2
    freeze: str = "none"
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 0.1
    seed: int = 0
    device: str = "cpu"
    patience: int | None = None
    refit_references: bool = True
    threads: int | None = 1

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        if not 0 < self.lr_final <= self.lr:
            problems.append(
                f"learning rates need 0 < lr_final <= lr, got lr={self.lr}, lr_final={self.lr_final}"
            )
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1, got {self.batch_size}")
        weights = (self.energy_weight, self.force_weight, self.stress_weight)
        if min(weights) < 0 or max(weights) == 0:
            problems.append(f"loss weights must be >= 0 and not all 0, got {weights}")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience must be at least 1 or None, got {self.patience}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be at least 1 or None, got {self.threads}")
        try:
            self.trained_blocks  # noqa: B018 - parses freeze
        except SettingsError as exc:
            problems.append(str(exc))
        if problems:
            raise SettingsError("invalid fine-tune settings: " + "; ".join(problems) + ". Fix: correct them.")

    @property
    def trained_blocks(self) -> int | None:
        """Interaction blocks that train besides the readout: None for all (``freeze="none"``), else K."""
        if self.freeze == "none":
            return None
        if self.freeze == "all-but-readout":
            return 0
        match = _ALL_BUT_LAST.fullmatch(self.freeze)
        if match is None or int(match.group(1)) < 1:
            raise SettingsError(
                f"freeze must be one of {', '.join(FREEZE_OPTIONS)} (K >= 1), got {self.freeze!r}"
            )
        return int(match.group(1))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (for a correction's provenance), loss units included."""
        return {
            **asdict(self),
            "loss_units": {"energy": "(eV/atom)^2", "force": "(eV/A)^2", "stress": "GPa^2"},
        }
