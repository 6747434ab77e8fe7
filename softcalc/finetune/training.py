"""Few-shot fine-tuning of a uMLIP on a handful of DFT frames: :func:`fine_tune`.

Design: ONE PyTorch training loop, shared by every model family (CHGNet, matgl's M3GNet and
TensorNet, MACE, any plugin built on :class:`~softcalc.torch_adapter.TorchAdapter`), not one per
plugin. The families' own trainers differ (CHGNet's ``Trainer``, matgl's Lightning module, MACE's
``run_train`` command line), and not all of them run offline and deterministically here. Training
through softcalc's own :meth:`~softcalc.torch_adapter.TorchAdapter.forward_pass` trains exactly the
energy that softcalc evaluates: the matgl destination-aggregation repair
(``softcalc_matgl/_aggregation.py``) and CHGNet's AtomRef added outside the network are part of the
trained model with no extra code. A plugin only names its module, its readout and interaction blocks
and its μ_Z table (the fine-tuning hooks of :mod:`softcalc.torch_adapter`).

The loop, on a deep copy of the adapter (the input adapter is left untouched):

1. check the frames (at least one training frame; elements the model covers; valid structures);
2. refit μ_Z by least squares to the training energies (:mod:`softcalc.finetune.references`), in
   the weights, so that the shift is saved with them;
3. train the parameters the ``freeze`` option selects, and μ_Z, with Adam, the learning rate
   cosine-decayed per step from ``lr`` to ``lr_final``, minimising the loss of
   :mod:`softcalc.finetune.settings` with forces and stress by autograd with the graph kept
   (:mod:`softcalc.finetune.loss`). The module stays in eval mode (no dropout, frozen normalisation
   statistics); only the trained tensors require grad during training, and none afterwards;
4. after every step, pull the trained weights toward the starting ones (``anchor``; μ_Z excepted) and
   update their moving average (``ema``); both as :mod:`softcalc.finetune.settings` describes;
5. after every epoch evaluate the validation frames (with the averaged weights when ``ema``) and choose
   the weights to keep (below); stop early after ``patience`` epochs without improvement.

Which epoch is kept. A validation frame is *usable* when its DFT forces have an RMS of at least
``min_validation_force_rms`` (eV/Å); the others (a relaxed or strained cell with near-zero forces, whose
force error cannot tell a softened model from a corrected one) count for the energy and stress part of
the validation loss only. With fewer than two usable frames (none, or one usable frame among
near-zero-force ones) no epoch is chosen on validation: the last epoch is kept, and
:attr:`TuneResult.stopping` says so. Otherwise the kept epoch is the one with the lowest validation loss
among the epochs >= ``min_epochs`` and epoch 0, the refitted starting model: epoch 0 is kept only when
no candidate epoch validates better (``best_epoch == 0``, "no gain"), so a fine-tune that harms the
validation frames from the first epoch on returns the starting weights. Patience counts from the later of
the best epoch and ``min_epochs - 1``. With the default ``min_epochs=1`` every epoch is a candidate.

Replay (``replay > 0``): frames labelled by the model itself after the μ_Z refit
(:mod:`softcalc.finetune.replay`) join the training frames with the loss weight ``replay``; they are
shuffled with them and take part in every epoch.

Freeze semantics per family (the plugins' ``tunable_groups``): readout = CHGNet's readout norm and
site-energy MLP, M3GNet's weighted readout, TensorNet's output norm, linear layer and readout, MACE's
readouts (one per interaction, all summed into the energy); block k = CHGNet's atom conv k with the
bond and angle updates after it, M3GNet's three-body interaction k with graph layer k, TensorNet's
interaction layer k, MACE's interaction k with product k. Everything else (embeddings, radial bases)
trains only with ``freeze="none"``. μ_Z (CHGNet's AtomRef, matgl's element_refs, MACE's E0s) trains in
every mode: it is the per-element energy offset of the output, and without it a change of the
network's energy scale (a stiffer model is also more strongly bound) would fight a stale offset in
the energy loss. Frames without energies leave μ_Z where the refit put it (zero gradient).

Determinism: frames are shuffled by a numpy Generator seeded with ``seed``, torch's generator is
seeded inside a forked RNG state, and the CPU path has no nondeterministic operation: the same
settings give the same tuned weights.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from softcalc.data.dataset import ForceFrame
from softcalc.errors import DataError, SettingsError
from softcalc.finetune.loss import Residuals, batch_errors, evaluate_errors
from softcalc.finetune.references import reference_shift
from softcalc.finetune.replay import replay_frames
from softcalc.finetune.settings import FineTuneSettings
from softcalc.model import ModelCalculator, require_fine_tuning
from softcalc.registry import check_device
from softcalc.structure import check_structure
from softcalc.torch_adapter import TorchAdapter, TunableParts
from softcalc.tuned_weights import tuned_weights_sha256


@dataclass
class TuneResult:
    """What :func:`fine_tune` returns.

    Attributes:
        adapter: the tuned model, a new adapter (the input is untouched), with the weights of
            ``best_epoch``; ``info.name`` is ``{base}+tuned`` and ``info.weights_sha256`` the hash of its
            tuned-weights file (:func:`softcalc.finetune.save_tuned_weights` writes it).
        loss_curve: one dict per epoch, epoch 0 being the starting model after the μ_Z refit: ``epoch``,
            ``lr`` (of the epoch's first step; None for epoch 0), ``train_loss`` (mean step loss of the
            epoch; epoch 0: loss over the training frames), ``val_loss``, ``val_force_mae`` (eV/Å),
            ``val_energy_mae`` (eV/atom), ``weight_rms_change`` (RMS of θ - θ₀ over the trained tensors but
            μ_Z, of the weights validated); validation values are None without validation frames (and the
            energy MAE without DFT energies); the validation force MAE covers the usable frames only.
        best_epoch: the epoch whose weights ``adapter`` holds.
        stopping: how that epoch was chosen, for the report: e.g. ``"best validation epoch (3 usable
            validation frames)"`` or ``"last epoch (1 usable validation frame)"``.
        n_usable_validation: validation frames with DFT force RMS >= ``min_validation_force_rms``.
        replay: labels of the replay frames trained on (empty without replay).
        seconds: wall time of the fine-tune (s).
        n_parameters: number of parameters trained (those the loss depends on, among the selected ones).
        reference_shift: μ_Z shifts of the refit (eV/atom, by element); empty when none was made.
    """

    adapter: TorchAdapter
    loss_curve: list[dict[str, Any]]
    best_epoch: int
    seconds: float
    n_parameters: int
    reference_shift: dict[str, float]
    stopping: str = ""
    n_usable_validation: int = 0
    replay: list[str] = field(default_factory=list)


def fine_tune(
    adapter: TorchAdapter | ModelCalculator,
    train: Sequence[ForceFrame],
    validation: Sequence[ForceFrame],
    settings: FineTuneSettings,
    progress: bool = False,
) -> TuneResult:
    """Fine-tune a copy of ``adapter`` on DFT frames (forces eV/Å, energies eV, stress eV/Å³).

    Args:
        adapter: the model to start from (left untouched): a model adapter that supports fine-tuning
            (:attr:`~softcalc.model.ModelAdapter.supports_fine_tuning`), or its :class:`ModelCalculator`.
        train: frames to train on; frames without energy or stress add no energy or stress term.
        validation: frames to choose the best epoch by (and stop early on); may be empty.
        settings: epochs, learning rates, batch size, freezing, loss weights, seed, device.
        progress: show a progress bar with the training and validation loss of each epoch.

    Raises:
        CalculationSetupError: ``adapter`` cannot be fine-tuned (:func:`softcalc.model.require_fine_tuning`).
        SettingsError: ``settings.freeze`` asks for parts the model does not have.
        DataError: no training frames, or a frame with a malformed stress.
        UnsupportedElementsError, InvalidStructureError: a frame the model cannot evaluate.
    """
    start_time = time.perf_counter()
    adapter = _check_inputs(adapter, train, validation)
    tuned = copy.deepcopy(adapter)
    _move(tuned, settings.device)
    params = trained_parameters(tuned.tunable_parts(), settings.trained_blocks, adapter.info.name)
    devices = [tuned.device] if tuned.device.type == "cuda" else []
    with _torch_threads(settings.threads), torch.random.fork_rng(devices=devices):
        torch.manual_seed(settings.seed)
        shift = _refit_references(tuned, train, settings)
        replayed = _replay(tuned, train, settings)
        frames = [*train, *replayed]
        weights = [1.0] * len(train) + [settings.replay] * len(replayed)
        run = _train(tuned, params, frames, weights, list(validation), settings, progress)
    tuned.weights_changed()
    tuned.tuned_from = dict(adapter.info.fingerprint)
    tuned.info = replace(
        tuned.info,
        name=f"{adapter.info.name}+tuned",
        weights=None,
        weights_sha256=tuned_weights_sha256(tuned),
    )
    return TuneResult(
        adapter=tuned,
        loss_curve=run.curve,
        best_epoch=run.best_epoch,
        seconds=time.perf_counter() - start_time,
        n_parameters=sum(p.numel() for p in params if id(p) in run.reached),
        reference_shift=shift,
        stopping=run.stopping,
        n_usable_validation=run.n_usable,
        replay=[f.label for f in replayed],
    )


def trained_parameters(
    parts: TunableParts, trained_blocks: int | None, model: str
) -> list[torch.nn.Parameter]:
    """The tensors that train: all of ``parts`` (``trained_blocks`` None), or the readout and the last
    ``trained_blocks`` interaction blocks; the μ_Z table in either case."""
    if trained_blocks is None:
        chosen = [*parts.readout, *(p for block in parts.blocks for p in block), *parts.other]
    else:
        if not parts.readout:
            raise SettingsError(
                f"model {model} declares no readout to train alone. Fix: fine-tune with freeze='none'."
            )
        if trained_blocks > len(parts.blocks):
            raise SettingsError(
                f"freeze='all-but-last:{trained_blocks}', but model {model} has {len(parts.blocks)} "
                f"interaction block(s). Fix: use at most all-but-last:{len(parts.blocks)}, or freeze='none'."
            )
        last = parts.blocks[len(parts.blocks) - trained_blocks :]
        chosen = [*parts.readout, *(p for block in last for p in block)]
    if parts.references is not None:
        chosen.append(parts.references)
    return list({id(p): p for p in chosen}.values())


def _check_inputs(
    model: TorchAdapter | ModelCalculator, train: Sequence[ForceFrame], validation: Sequence[ForceFrame]
) -> TorchAdapter:
    """The adapter to tune, after checking that it can be and that every frame fits it."""
    fix = "pass a model loaded by name (softcalc.load_model('chgnet')) or its adapter"
    adapter = cast(TorchAdapter, require_fine_tuning(model, "fine_tune", fix))  # only TorchAdapters tune
    if not train:
        raise DataError("no training frames to fine-tune on. Fix: give at least one frame with DFT forces.")
    for kind, frames in (("training", train), ("validation", validation)):
        for k, frame in enumerate(frames):
            check_structure(frame.atoms, adapter.info)
            if frame.stress is not None and np.shape(frame.stress) != (6,):
                raise DataError(
                    f"{kind} frame {k} ({frame.label or 'no label'}): stress has shape "
                    f"{np.shape(frame.stress)}, expected Voigt (6,) in eV/Å³. Fix: convert it or drop it."
                )
    return adapter


def _move(adapter: TorchAdapter, device: str) -> None:
    """Put the (copied) adapter's module on ``device``."""
    target = torch.device(check_device(device))
    if target != adapter.device:
        adapter.module.to(target)
        adapter.device = target
        adapter.info = replace(adapter.info, device=str(target))


def _refit_references(
    adapter: TorchAdapter, train: Sequence[ForceFrame], settings: FineTuneSettings
) -> dict[str, float]:
    """Shift μ_Z by the least-squares fit to the training energies (when asked and possible)."""
    if not settings.refit_references or all(f.energy is None for f in train):
        return {}
    if not adapter.reference_energies():
        warnings.warn(
            f"model {adapter.info.name} has no atom reference energies to refit; fine-tuning without refit",
            UserWarning,
            stacklevel=3,
        )
        return {}
    shift = reference_shift(adapter, train, settings.batch_size)
    adapter.shift_reference_energies(shift)
    return shift


def _cosine(step: int, total: int, settings: FineTuneSettings) -> float:
    """Learning rate of ``step`` (0-based) of ``total``: ``lr`` at the first, ``lr_final`` at the last."""
    if total <= 1:
        return settings.lr
    return settings.lr_final + 0.5 * (settings.lr - settings.lr_final) * (
        1 + math.cos(math.pi * step / (total - 1))
    )


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` inside (None: unchanged), restored after."""
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextmanager
def _requiring_grad(params: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """``params`` require grad inside, and none of them (without a stored grad) after."""
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None


def _replay(
    adapter: TorchAdapter, train: Sequence[ForceFrame], settings: FineTuneSettings
) -> list[ForceFrame]:
    """The replay frames labelled by ``adapter`` as it is now (after the μ_Z refit); none when off."""
    if not settings.replay:
        return []
    elements = sorted({s for f in train for s in f.atoms.get_chemical_symbols()})
    with torch.random.fork_rng():  # labelling draws nothing, but keeps the training stream untouched anyway
        return replay_frames(adapter, elements, settings.batch_size)


def usable_for_forces(frames: Sequence[ForceFrame], min_rms: float) -> list[bool]:
    """Per frame: whether its DFT forces have an RMS (eV/Å, over components) of at least ``min_rms``."""
    return [bool(np.sqrt(np.mean(f.forces**2)) >= min_rms) if f.forces.size else False for f in frames]


def _stopping_rule(n_validation: int, n_usable: int, settings: FineTuneSettings) -> str | None:
    """Why no epoch is chosen on validation (the last is kept), or None when one is."""
    if n_usable >= MIN_USABLE_VALIDATION:
        return None
    if n_validation == 0:
        return "last epoch (no validation frames)"
    frames = "frame" if n_usable == 1 else "frames"
    ignored = n_validation - n_usable
    why = (
        f"; {ignored} with DFT force RMS below {settings.min_validation_force_rms} eV/Å not counted"
        if ignored
        else ""
    )
    return f"last epoch ({n_usable} usable validation {frames}{why})"


#: fewest usable validation frames (DFT force RMS >= min_validation_force_rms) to choose an epoch on
MIN_USABLE_VALIDATION = 2


def _epoch_row(
    epoch: int,
    lr: float | None,
    train_loss: float,
    val: Residuals | None,
    settings: FineTuneSettings,
    weight_change: float,
) -> dict[str, Any]:
    """One row of the loss curve (see :class:`TuneResult`)."""
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        "val_loss": None if val is None else float(val.loss(settings)),
        "val_force_mae": None if val is None else val.force_mae,
        "val_energy_mae": None if val is None else val.energy_mae,
        "weight_rms_change": weight_change,
    }


class _Weights:
    """The trained tensors with the starting copies the anchor pulls toward and their moving average.

    θ₀ is kept only for the anchored tensors (trained, μ_Z excepted) and only when ``anchor`` > 0 or for
    the RMS change; the average only with ``ema``.
    """

    def __init__(
        self, params: list[torch.nn.Parameter], references: torch.Tensor | None, settings: FineTuneSettings
    ):
        self.params = params
        self.anchored = [p for p in params if p is not references]
        self.start = [p.detach().clone() for p in self.anchored]
        self.n_anchored = sum(p.numel() for p in self.anchored)
        self.anchor = settings.anchor
        self.decay = settings.ema_decay
        self.average = [p.detach().clone() for p in params] if self.decay else None

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        """The anchor's proximal pull θ ← θ₀ + (θ - θ₀)/(1 + lr·anchor), then the EMA update."""
        if self.anchor:
            keep = 1.0 / (1.0 + lr * self.anchor)
            for p, p0 in zip(self.anchored, self.start):
                p.copy_(p0 + keep * (p - p0))
        if self.average is not None:
            for avg, p in zip(self.average, self.params):
                avg.lerp_(p, 1.0 - self.decay)

    @torch.no_grad()
    def rms_change(self) -> float:
        """RMS of θ - θ₀ over the anchored tensors (in the tensors' units; 0 without any)."""
        if not self.n_anchored:
            return 0.0
        total = sum(float(((p - p0) ** 2).sum()) for p, p0 in zip(self.anchored, self.start))
        return math.sqrt(total / self.n_anchored)

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The moving average in the tensors inside (no-op without EMA), the trained values restored after."""
        if self.average is None:
            yield
            return
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, avg in zip(self.params, self.average):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(self.params, saved):
                    p.copy_(value)

    @torch.no_grad()
    def keep_average(self) -> None:
        """Leave the moving average in the tensors for good (no-op without EMA)."""
        if self.average is not None:
            for p, avg in zip(self.params, self.average):
                p.copy_(avg)


@dataclass
class _Run:
    """What :func:`_train` found (see :class:`TuneResult`)."""

    curve: list[dict[str, Any]]
    best_epoch: int
    reached: set[int]
    stopping: str
    n_usable: int


def _train(
    adapter: TorchAdapter,
    params: list[torch.nn.Parameter],
    train: list[ForceFrame],
    weights: list[float],
    validation: list[ForceFrame],
    settings: FineTuneSettings,
    progress: bool,
) -> _Run:
    """The training loop; leaves the kept weights in ``adapter`` (module docstring)."""
    size = settings.batch_size
    steps_per_epoch = math.ceil(len(train) / size)
    total_steps = settings.epochs * steps_per_epoch
    rng = np.random.default_rng(settings.seed)
    module = adapter.module
    reached: set[int] = set()
    table = adapter.reference_energy_table()
    state = _Weights(params, None if table is None else table[0], settings)
    use_forces = usable_for_forces(validation, settings.min_validation_force_rms)
    n_usable = sum(use_forces)
    fixed = _stopping_rule(len(validation), n_usable, settings)
    train_loss0 = float(evaluate_errors(adapter, train, size, weights).loss(settings))

    def validate() -> Residuals | None:
        return evaluate_errors(adapter, validation, size, use_forces=use_forces)

    curve = [_epoch_row(0, None, train_loss0, validate(), settings, 0.0)]
    best_loss = curve[0]["val_loss"]
    best_epoch, best_state = 0, _snapshot(module) if fixed is None else None
    stopped = None
    bar = tqdm(range(1, settings.epochs + 1), desc="fine-tune", unit="epoch", disable=not progress)
    with _requiring_grad(params), bar:
        optimizer = torch.optim.Adam(params, lr=settings.lr)
        step = 0
        for epoch in bar:
            order = rng.permutation(len(train))
            losses = []
            first_lr = _cosine(step, total_steps, settings)
            for begin in range(0, len(train), size):
                lr = _cosine(step, total_steps, settings)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                chosen = order[begin : begin + size]
                batch = [train[k] for k in chosen]
                loss = batch_errors(adapter, batch, True, weights=[weights[k] for k in chosen]).loss(settings)
                loss.backward()
                reached.update(id(p) for p in params if p.grad is not None)
                optimizer.step()
                state.after_step(lr)
                losses.append(float(loss.detach()))
                step += 1
            with state.averaged():
                val = validate()
                row = _epoch_row(epoch, first_lr, float(np.mean(losses)), val, settings, state.rms_change())
                curve.append(row)
                if fixed is not None:
                    best_epoch = epoch
                elif epoch >= settings.min_epochs and row["val_loss"] < best_loss:
                    best_loss, best_epoch, best_state = row["val_loss"], epoch, _snapshot(module)
            bar.set_postfix(
                train=f"{row['train_loss']:.4g}", val="-" if val is None else f"{row['val_loss']:.4g}"
            )
            since = epoch - max(best_epoch, settings.min_epochs - 1)
            if fixed is None and settings.patience is not None and since >= settings.patience:
                stopped = epoch
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        state.keep_average()
    if fixed is not None:
        stopping = fixed
    else:
        stopping = f"best validation epoch ({n_usable} usable validation frames"
        if n_usable < len(validation):
            stopping += f", {len(validation) - n_usable} counted for energy and stress only"
        stopping += ")" if stopped is None else f"; stopped early at epoch {stopped})"
    return _Run(curve, best_epoch, reached, stopping, n_usable)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state (to restore the best epoch's weights)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
