"""Settings of a few-shot fine-tune: :class:`FineTuneSettings`.

Loss (per optimiser step, over the frames of the batch; a term without data is left out):

    L = w_E · mean_k ((E_k - E_k^DFT) / n_k)² + w_F · mean (F_iα - F_iα^DFT)² + w_σ · mean (σ_v - σ_v^DFT)²

with per-atom energies in eV/atom (frames with a DFT energy), force components in eV/Å and Voigt
stress components in GPa (3D-periodic frames with a DFT stress). Default weights 1 / 3 / 0.1, for 60
epochs: CHGNet's own trainer defaults in the same units are 1 / 1 / 0.1 (a force error of 0.1 eV/Å,
an energy error of 0.1 eV/atom and a stress error of 0.3 GPa each add 0.01 to the loss), and the
forces, 3N numbers per frame against one energy and six stresses, dominate the gradient already.
Adam is invariant to the overall scale of the loss, so only the ratios matter. The defaults were
chosen by measurement (benchmarks/README.md, "Fine-tuning judged per regime"): on K = 10 spread frames
of mlearn Ge, Li, Mo and Si, CHGNet, 1 / 1 / 0.1 for 30 epochs cut held-out force MAE by a median 41 %;
60 epochs 42-45 %, force weight 3 alone 42-46 %, both together 50 % (M3GNet 45 → 50 %), where a
higher learning rate (3e-3) or batch size 1 did not help. Earlier, on 9 + 1 Si AIMD frames, 30 epochs:
1 / 1 / 0.1 gave held-out force MAE 0.108 eV/Å and energy MAE 0.016 eV/atom; the paper's
0.1 / 100 / 0.1 (forces 1000 times the energy) gave 0.111 eV/Å and 0.048 eV/atom.

Huber loss (``loss="huber"``): each squared residual r² above is replaced by

    ρ_δ(r) = r²              for |r| <= δ
    ρ_δ(r) = 2δ|r| - δ²      for |r| >  δ

twice torch's ``huber_loss`` (½r² below δ), so it equals the squared error for small residuals and the
loss weights keep their meaning; beyond δ it grows linearly, so a few large residuals (hot frames, an
outlier) no longer dominate the gradient. δ per quantity: 0.01 eV/atom, 0.01 eV/Å and 1.6 GPa
(MACE's ``huber_delta=0.01`` in its units: eV/atom, eV/Å, eV/Å³; 0.01 eV/Å³ = 1.6 GPa).

Per-frame weights: replay frames (``replay``) enter every sum above with the weight ``replay``; the
means stay divided by the number of terms, so a replay frame counts ``replay`` times as much as a DFT frame
of the same size.

Anchoring (``anchor``, L²-SP): a pull of the trained weights θ toward the foundation weights θ₀,
the penalty (anchor/2)·Σ_p (θ_p - θ₀_p)² applied after every Adam step as its proximal step with the
step's learning rate η: θ ← θ₀ + (θ - θ₀) / (1 + η·anchor). That is AdamW's decoupled weight decay (to
first order θ - θ₀ shrinks by the fraction η·anchor per step) toward θ₀ instead of 0, as Equitrain's
phonon fine-tuning trains θ₀ + δ with AdamW weight decay 10 on δ; the implicit form stays stable for any
anchor and gives θ₀ as anchor → ∞. Units: 1/η, i.e. anchor·η is the fraction of the displacement removed
per step (anchor 10 at η = 1e-3: 1 % per step). Normalisation: none is needed. Decoupled from Adam's
per-parameter scaling, the pull acts per parameter and does not depend on the number of parameters
(a 16-parameter toy or CHGNet's 4e5), on the loss weights or on MSE against Huber, so one value means
the same for every model and preset. (A penalty added to the loss would not: Adam divides its gradient by
the data gradient's scale, which differs per parameter and per preset; a sum over parameters would be
balanced by weights that differ across loss weights, a mean would dilute it by the number of
parameters.) μ_Z is not anchored: it is refitted and trains freely.

EMA (``ema``): after every step (and the anchor's pull) the exponential moving average
θ̄ ← ema·θ̄ + (1 - ema)·θ of every trained tensor, started from the refitted starting weights; validation
and the returned weights use θ̄.

Early stopping (``min_epochs``, ``min_validation_force_rms``; see :mod:`softcalc.finetune.training`):
validation frames whose DFT forces have an RMS below ``min_validation_force_rms`` (eV/Å) count for the
energy and stress part only; with fewer than two frames above it no epoch is chosen by validation and the
last epoch is kept.

Presets (:data:`PRESETS`, :meth:`FineTuneSettings.preset`): named sets of the options above.

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
#: accepted values of :attr:`FineTuneSettings.loss`
LOSS_OPTIONS = ("mse", "huber")
#: 1 eV/Å³ in GPa (Equitrain's stress weight is per (eV/Å³)², ours per GPa²)
_EV_A3_IN_GPA = 160.21766208

#: named settings (fields of FineTuneSettings) that :meth:`FineTuneSettings.preset` starts from:
#: - ``softcalc``: the defaults (MSE, weights 1 / 3 / 0.1, 60 epochs, no anchor, no EMA, no replay);
#: - ``equitrain``: Equitrain's phonon fine-tuning (Grandel et al. 2026): Huber loss, weights E 10 / F 100 /
#:   S 1000 per (eV/Å³)² (= 0.039 per GPa²), anchor 10 (AdamW weight decay 10 on θ - θ₀). Equitrain also
#:   trains only the embedding and the first interaction block, which ``freeze`` cannot express; all train;
#: - ``stress``: the default loss with ten times the stress weight (1 per GPa²), in the spirit of
#:   SevenNet's fine-tuning examples that raise the stress weight (the factor is ours).
PRESETS: dict[str, dict[str, Any]] = {
    "softcalc": {},
    "equitrain": {
        "loss": "huber",
        "energy_weight": 10.0,
        "force_weight": 100.0,
        "stress_weight": 1000.0 / _EV_A3_IN_GPA**2,
        "anchor": 10.0,
    },
    "stress": {"stress_weight": 1.0},
}


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
        anchor: strength of the pull toward the starting weights (L²-SP, module docstring), in 1/learning
            rate: anchor·lr is the fraction of θ - θ₀ removed per step; 0 (default) does not pull.
        ema: decay of the exponential moving average of the weights used for validation and returned;
            None or 0 (default): no average.
        loss: ``"mse"`` (squared errors, default) or ``"huber"`` (module docstring).
        huber_delta_energy: Huber δ of the per-atom energy error (eV/atom).
        huber_delta_force: Huber δ of a force-component error (eV/Å).
        huber_delta_stress: Huber δ of a Voigt stress-component error (GPa).
        min_epochs: the best validation epoch is chosen among epochs >= min_epochs and epoch 0 (the
            starting weights, kept only when no later candidate validates better: "no gain"); 1 (default)
            makes every epoch a candidate.
        min_validation_force_rms: validation frames whose DFT force RMS (eV/Å) is below this count only
            for energy and stress; with fewer than two frames above it the last epoch is kept.
        replay: weight of frames labelled by the base model itself (pseudo-labels) on the ground states of
            the tuned elements and the shared structures of other chemistries
            (:mod:`softcalc.finetune.replay`), relative to a DFT frame; 0 (default): no replay.

    Raises:
        SettingsError: a value out of range or an unknown ``freeze``; the message lists every problem.
    """

    epochs: int = 60
    lr: float = 1e-3
    lr_final: float = 1e-5
    batch_size: int = 2
    freeze: str = "none"
    energy_weight: float = 1.0
    force_weight: float = 3.0
    stress_weight: float = 0.1
    seed: int = 0
    device: str = "cpu"
    patience: int | None = None
    refit_references: bool = True
    threads: int | None = 1
    anchor: float = 0.0
    ema: float | None = None
    loss: str = "mse"
    huber_delta_energy: float = 0.01
    huber_delta_force: float = 0.01
    huber_delta_stress: float = 1.6
    min_epochs: int = 1
    min_validation_force_rms: float = 0.05
    replay: float = 0.0

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
        if not self.anchor >= 0:
            problems.append(f"anchor must be >= 0, got {self.anchor}")
        if self.ema is not None and not 0 <= self.ema < 1:
            problems.append(f"ema must be in [0, 1) or None, got {self.ema}")
        if self.loss not in LOSS_OPTIONS:
            problems.append(f"loss must be one of {', '.join(LOSS_OPTIONS)}, got {self.loss!r}")
        deltas = (self.huber_delta_energy, self.huber_delta_force, self.huber_delta_stress)
        if not min(deltas) > 0:
            problems.append(f"Huber deltas must be > 0, got {deltas}")
        if self.min_epochs < 1:
            problems.append(f"min_epochs must be at least 1, got {self.min_epochs}")
        if not self.min_validation_force_rms >= 0:
            problems.append(f"min_validation_force_rms must be >= 0, got {self.min_validation_force_rms}")
        if not self.replay >= 0:
            problems.append(f"replay must be >= 0, got {self.replay}")
        try:
            self.trained_blocks  # noqa: B018 - parses freeze
        except SettingsError as exc:
            problems.append(str(exc))
        if problems:
            raise SettingsError("invalid fine-tune settings: " + "; ".join(problems) + ". Fix: correct them.")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FineTuneSettings:  # noqa: ANN401 - field values
        """The settings of preset ``name`` (:data:`PRESETS`), with ``overrides`` (field values) on top.

        Raises:
            SettingsError: an unknown preset, or invalid settings.
        """
        if name not in PRESETS:
            raise SettingsError(f"unknown fine-tuning preset {name!r}. Fix: use one of {', '.join(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def ema_decay(self) -> float | None:
        """The EMA decay in use: None when off (``ema`` None or 0)."""
        return self.ema or None

    @property
    def huber_deltas(self) -> tuple[float, float, float] | None:
        """(energy eV/atom, force eV/Å, stress GPa) Huber δ with ``loss="huber"``; None for MSE."""
        if self.loss != "huber":
            return None
        return (self.huber_delta_energy, self.huber_delta_force, self.huber_delta_stress)

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
            "huber_delta_units": {"energy": "eV/atom", "force": "eV/A", "stress": "GPa"},
            "anchor_units": "1/learning rate (anchor*lr: fraction of theta - theta0 removed per step)",
        }
