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
4. after every epoch evaluate the validation frames; keep the weights of the epoch with the lowest
   validation loss (epoch 0, the refitted starting model, included), or of the last epoch without
   validation frames; stop early after ``patience`` epochs without improvement.

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
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from softcalc.data.dataset import ForceFrame
from softcalc.errors import DataError, SettingsError
from softcalc.finetune.loss import ErrorSums, batch_errors, evaluate_errors
from softcalc.finetune.references import reference_shift
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
            ``val_energy_mae`` (eV/atom); validation values are None without validation frames (and the
            energy MAE without DFT energies).
        best_epoch: the epoch whose weights ``adapter`` holds.
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
        curve, best_epoch, reached = _train(tuned, params, list(train), list(validation), settings, progress)
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
        loss_curve=curve,
        best_epoch=best_epoch,
        seconds=time.perf_counter() - start_time,
        n_parameters=sum(p.numel() for p in params if id(p) in reached),
        reference_shift=shift,
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


def _epoch_row(
    epoch: int, lr: float | None, train_loss: float, val: ErrorSums | None, settings: FineTuneSettings
) -> dict[str, Any]:
    """One row of the loss curve (see :class:`TuneResult`)."""
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        "val_loss": None if val is None else float(val.loss(settings)),
        "val_force_mae": None if val is None else val.force_mae,
        "val_energy_mae": None if val is None else val.energy_mae,
    }


def _train(
    adapter: TorchAdapter,
    params: list[torch.nn.Parameter],
    train: list[ForceFrame],
    validation: list[ForceFrame],
    settings: FineTuneSettings,
    progress: bool,
) -> tuple[list[dict[str, Any]], int, set[int]]:
    """The training loop; leaves the best weights in ``adapter``. Returns the loss curve, the best epoch
    and the ids of the parameters the loss reached."""
    size = settings.batch_size
    steps_per_epoch = math.ceil(len(train) / size)
    total_steps = settings.epochs * steps_per_epoch
    rng = np.random.default_rng(settings.seed)
    module = adapter.module
    reached: set[int] = set()
    train_loss0 = float(evaluate_errors(adapter, train, size).loss(settings))
    val = evaluate_errors(adapter, validation, size)
    curve = [_epoch_row(0, None, train_loss0, val, settings)]
    best_loss = curve[0]["val_loss"]
    best_epoch, best_state = 0, _snapshot(module) if validation else None
    bar = tqdm(range(1, settings.epochs + 1), desc="fine-tune", unit="epoch", disable=not progress)
    with _requiring_grad(params), bar:
        optimizer = torch.optim.Adam(params, lr=settings.lr)
        step = 0
        for epoch in bar:
            order = rng.permutation(len(train))
            losses = []
            first_lr = _cosine(step, total_steps, settings)
            for begin in range(0, len(train), size):
                for group in optimizer.param_groups:
                    group["lr"] = _cosine(step, total_steps, settings)
                optimizer.zero_grad(set_to_none=True)
                batch = [train[k] for k in order[begin : begin + size]]
                loss = batch_errors(adapter, batch, create_graph=True).loss(settings)
                loss.backward()
                reached.update(id(p) for p in params if p.grad is not None)
                optimizer.step()
                losses.append(float(loss.detach()))
                step += 1
            val = evaluate_errors(adapter, validation, size)
            row = _epoch_row(epoch, first_lr, float(np.mean(losses)), val, settings)
            curve.append(row)
            bar.set_postfix(
                train=f"{row['train_loss']:.4g}", val="-" if val is None else f"{row['val_loss']:.4g}"
            )
            if val is None:
                best_epoch = epoch
            elif row["val_loss"] < best_loss:
                best_loss, best_epoch, best_state = row["val_loss"], epoch, _snapshot(module)
            elif settings.patience is not None and epoch - best_epoch >= settings.patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    return curve, best_epoch, reached


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state (to restore the best epoch's weights)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
