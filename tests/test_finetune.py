"""Few-shot fine-tuning (softcalc.finetune): a known answer, determinism, freezing, saving and loading,
refusals, and one short run per real family (random-weight MACE, CHGNet, M3GNet).

The known answer: the toy Morse model tuned on frames of the same model with 1.3 times deeper wells
must find the deeper wells (held-out forces at most a third of the bare error; measured 0.052 against
0.282 eV/Å).

Against forgetting (issue 19): the anchor (L²-SP), the moving average, the Huber loss, the early-stopping
rule (no epoch chosen on fewer than two usable validation frames) and replay of frames labelled by the
base model, each on the toy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from softcalc_toy import ToyMorse

from softcalc.data.dataset import ForceFrame
from softcalc.errors import (
    CalculationSetupError,
    CorrectionFileError,
    DataError,
    SettingsError,
    UnsupportedElementsError,
)
from softcalc.finetune import FineTuneSettings, fine_tune, load_tuned_weights, save_tuned_weights
from softcalc.finetune.loss import batch_errors, evaluate_errors, penalty
from softcalc.finetune.replay import replay_frames
from softcalc.finetune.settings import PRESETS
from softcalc.torch_adapter import TorchAdapter

#: one torch thread: on a shared 2-core machine, two spinning threads slow the small models down
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: toy fine-tune that recovers 1.3 times deeper Morse wells (about 1 s)
KNOWN = FineTuneSettings(epochs=20, lr=0.05, lr_final=1e-3, force_weight=1.0)
#: a few epochs, for tests of the mechanics
SHORT = FineTuneSettings(epochs=3, lr=0.02, force_weight=1.0)


def stiff_toy() -> ToyMorse:
    """The reference: the toy model with 1.3 times deeper wells."""
    toy = ToyMorse()
    with torch.no_grad():
        toy.params.depth.mul_(1.3)
    return toy


def labelled(model: TorchAdapter, structures: list[Atoms], energy: bool = True, stress: bool = True):
    """Frames of ``structures`` labelled by ``model`` (forces, and energy and stress when asked)."""
    frames = []
    for atoms in structures:
        r = model.compute(atoms, ["energy", "forces", "stress"])
        frames.append(
            ForceFrame(atoms, r["forces"], r["energy"] if energy else None, r["stress"] if stress else None)
        )
    return frames


def rattled(seed: int, n: int, symbols: dict[int, str] | None = None, stdev: float = 0.1) -> list[Atoms]:
    """``n`` 8-atom diamond cells (Si, some sites replaced by ``symbols``) rattled by ``stdev`` Å."""
    out = []
    for k in range(n):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        for site, symbol in (symbols or {}).items():
            atoms.symbols[site] = symbol
        atoms.rattle(stdev, seed=seed + k)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def toy_frames() -> dict[str, list[ForceFrame]]:
    ref = stiff_toy()
    return {name: labelled(ref, rattled(seed, n)) for name, seed, n in (("train", 0, 4), ("val", 100, 2))}


@pytest.fixture(scope="module")
def toy_result(toy_frames):
    return fine_tune(ToyMorse(), toy_frames["train"], toy_frames["val"], KNOWN)


def state(adapter: TorchAdapter) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in adapter.module.state_dict().items()}


def force_mae(adapter: TorchAdapter, frames: list[ForceFrame]) -> float:
    results = adapter.compute_many([f.atoms for f in frames], ["energy", "forces"])
    return float(np.mean([np.abs(r["forces"] - f.forces).mean() for r, f in zip(results, frames)]))


# -- the loop -------------------------------------------------------------------------------------


def test_known_answer_lowers_held_out_force_error(toy_result, toy_frames) -> None:
    test = labelled(stiff_toy(), rattled(200, 3))
    bare, tuned = force_mae(ToyMorse(), test), force_mae(toy_result.adapter, test)
    assert bare > 0.2
    assert tuned < bare / 3
    depth = toy_result.adapter.params.depth.detach()
    assert float(depth[0]) == pytest.approx(1.3 * 2.2, rel=0.05)  # Si's well depth, found again
    assert depth[1:].tolist() == list(ToyMorse().params.depth.detach()[1:])  # no Ge, C, O in the data


def test_result_and_input_adapter(toy_result, toy_frames) -> None:
    base = ToyMorse()
    before = state(base)
    result = fine_tune(base, toy_frames["train"][:2], [], SHORT)
    assert all(torch.equal(v, state(base)[k]) for k, v in before.items())  # the input is untouched
    assert result.adapter is not base
    assert result.best_epoch == SHORT.epochs  # no validation frames: the last epoch
    assert result.stopping == "last epoch (no validation frames)"
    assert [row["epoch"] for row in result.loss_curve] == list(range(SHORT.epochs + 1))
    assert all(row["val_loss"] is None for row in result.loss_curve)
    info = toy_result.adapter.info
    assert info.name == "toy-morse+tuned" and info.weights is None and len(info.weights_sha256) == 64
    assert toy_result.adapter.tuned_from == base.info.fingerprint
    assert info.reference_energies["Si"] == pytest.approx(float(toy_result.adapter.params.references[0]))
    assert set(toy_result.reference_shift) == {"Si"}
    assert toy_result.n_parameters == 16  # D, a, r0 and μ of four elements
    row = toy_result.loss_curve[-1]
    assert set(row) == {
        "epoch",
        "lr",
        "train_loss",
        "val_loss",
        "val_force_mae",
        "val_energy_mae",
        "weight_rms_change",
    }
    assert toy_result.stopping == "best validation epoch (2 usable validation frames)"
    assert toy_result.n_usable_validation == 2 and toy_result.replay == []
    assert row["lr"] < KNOWN.lr and toy_result.loss_curve[1]["lr"] == KNOWN.lr
    assert toy_result.loss_curve[toy_result.best_epoch]["val_loss"] == min(
        r["val_loss"] for r in toy_result.loss_curve
    )
    json.dumps({"curve": toy_result.loss_curve, "settings": KNOWN.to_dict()})


def test_reference_refit_is_the_mean_residual_per_atom(toy_frames) -> None:
    frames = toy_frames["train"]
    base = ToyMorse()
    model = base.compute_many([f.atoms for f in frames], ["energy", "forces"])
    expected = np.mean([(f.energy - r["energy"]) / len(f.atoms) for f, r in zip(frames, model)])
    one_epoch = FineTuneSettings(epochs=1, lr=1e-9, lr_final=1e-9)
    result = fine_tune(base, frames, [], one_epoch)
    assert result.reference_shift["Si"] == pytest.approx(expected, abs=1e-12)
    unfitted = fine_tune(base, frames, [], FineTuneSettings(epochs=1, refit_references=False))
    assert unfitted.reference_shift == {}


def test_frames_without_energy_or_stress_leave_references_alone(toy_frames) -> None:
    frames = labelled(stiff_toy(), rattled(0, 2), energy=False, stress=False)
    result = fine_tune(ToyMorse(), frames, [], SHORT)
    assert result.reference_shift == {}
    assert result.adapter.info.reference_energies == ToyMorse().info.reference_energies
    assert result.adapter.params.depth[0] != ToyMorse().params.depth[0]


def test_same_seed_same_weights(toy_frames) -> None:
    runs = [fine_tune(ToyMorse(), toy_frames["train"], toy_frames["val"], SHORT) for _ in range(2)]
    other = fine_tune(
        ToyMorse(), toy_frames["train"], toy_frames["val"], FineTuneSettings(epochs=3, lr=0.02, seed=1)
    )
    first, second, third = (state(r.adapter) for r in (*runs, other))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert runs[0].loss_curve == runs[1].loss_curve
    assert runs[0].adapter.info.weights_sha256 == runs[1].adapter.info.weights_sha256
    assert not all(torch.equal(first[k], third[k]) for k in first)  # another shuffle


def test_early_stopping_keeps_the_best_epoch(toy_frames) -> None:
    """Validation frames of the bare model: every step away from it is worse, so epoch 0 stays best."""
    validation = labelled(ToyMorse(), rattled(100, 2))
    settings = FineTuneSettings(epochs=10, lr=0.02, patience=2)
    result = fine_tune(ToyMorse(), toy_frames["train"], validation, settings)
    assert result.best_epoch == 0
    assert len(result.loss_curve) == 3  # epoch 0, then two epochs without improvement
    assert torch.equal(result.adapter.params.depth, ToyMorse().params.depth)
    assert result.stopping == "best validation epoch (2 usable validation frames; stopped early at epoch 2)"


# -- against forgetting: anchor, EMA, Huber, the stopping rule, replay -----------------------------


@pytest.fixture(scope="module")
def softening_toy() -> dict[str, list[ForceFrame]]:
    """Hot frames (0.25 Å rattles) of the 1.3 times stiffer toy to train on; near-equilibrium frames
    (0.02 Å rattles) of the bare toy, held out: the "DFT" agrees with the bare model near equilibrium, so
    every change of the well depths that the hot frames ask for is a curvature error there."""
    return {
        "hot": labelled(stiff_toy(), rattled(0, 4, stdev=0.25)),
        "near": labelled(ToyMorse(), rattled(300, 3, stdev=0.02)),
    }


def test_anchor_keeps_the_near_equilibrium_curvature(softening_toy) -> None:
    """Without the anchor the depths move to 1.3 times and the near-equilibrium forces follow; anchored,
    they move a fraction of that while the hot frames still gain. With anchor=0 the two runs are one and
    the first assertion fails."""
    hot, near = softening_toy["hot"], softening_toy["near"]
    naive = fine_tune(ToyMorse(), hot, [], KNOWN)
    anchored = fine_tune(ToyMorse(), hot, [], replace(KNOWN, anchor=100.0))
    bare_near = force_mae(ToyMorse(), near)
    naive_near, anchored_near = (force_mae(r.adapter, near) for r in (naive, anchored))
    assert anchored_near < naive_near / 2
    assert bare_near == 0 and naive_near > 0.02  # the naive tune overshoots near equilibrium
    assert force_mae(anchored.adapter, hot) < force_mae(ToyMorse(), hot)  # yet the hot frames gain
    base_depth = float(ToyMorse().params.depth[0])
    moved = [float(r.adapter.params.depth[0]) - base_depth for r in (naive, anchored)]
    assert 0 < moved[1] < moved[0] / 2
    assert anchored.loss_curve[-1]["weight_rms_change"] < naive.loss_curve[-1]["weight_rms_change"]


def test_infinite_anchor_returns_the_starting_weights(softening_toy) -> None:
    """The proximal pull with anchor → ∞ puts θ back on θ₀ after every step; μ_Z is not anchored."""
    settings = FineTuneSettings(epochs=3, lr=0.05, anchor=1e15)
    result = fine_tune(ToyMorse(), softening_toy["hot"], [], settings)
    base, tuned = ToyMorse().params, result.adapter.params
    for name in ("depth", "width", "distance"):
        torch.testing.assert_close(getattr(tuned, name), getattr(base, name), rtol=0, atol=1e-12)
    assert result.loss_curve[-1]["weight_rms_change"] < 1e-12
    assert float(tuned.references[0]) != float(base.references[0])  # μ_Z refitted and trained


def test_ema_weights_are_validated_and_returned(toy_frames) -> None:
    """One step: the returned weights are ema·θ_start + (1 - ema)·θ_1 exactly, θ_1 from the plain run."""
    frames = toy_frames["train"][:1]
    plain = fine_tune(ToyMorse(), frames, [], FineTuneSettings(epochs=1, lr=0.05, batch_size=1))
    averaged = fine_tune(ToyMorse(), frames, [], FineTuneSettings(epochs=1, lr=0.05, batch_size=1, ema=0.75))
    start = state(ToyMorse())
    start["references"] = start["references"].clone()
    start["references"][0] += plain.reference_shift["Si"]
    one, avg = state(plain.adapter), state(averaged.adapter)
    assert not torch.equal(one["depth"], avg["depth"])
    for key in one:
        torch.testing.assert_close(avg[key], 0.75 * start[key] + 0.25 * one[key], rtol=0, atol=1e-12)
    # the average is what validation sees, too
    validated = fine_tune(
        ToyMorse(), frames, toy_frames["val"], FineTuneSettings(epochs=1, lr=0.05, ema=0.75)
    )
    row = validated.loss_curve[1]
    assert row["val_force_mae"] == pytest.approx(
        evaluate_errors(validated.adapter, toy_frames["val"], 2).force_mae, abs=1e-12
    )


def test_huber_is_the_squared_error_below_delta_and_linear_above() -> None:
    r = torch.tensor([-0.004, 0.0, 0.003, 0.009])
    torch.testing.assert_close(penalty(r, 0.01), r**2)
    big = torch.tensor([0.5, 1.0, 2.0])
    rho = penalty(big, 0.01)
    torch.testing.assert_close(rho, 2 * 0.01 * big - 0.01**2)  # 2δ|r| - δ²
    torch.testing.assert_close((rho[2] - rho[1]) / 1.0, torch.tensor(0.02))  # slope 2δ
    torch.testing.assert_close((rho[1] - rho[0]) / 0.5, torch.tensor(0.02))
    torch.testing.assert_close(penalty(big, None), big**2)


def test_huber_loss_equals_mse_for_small_residuals(toy_frames) -> None:
    """Frames of a slightly changed model: every residual below δ, so both losses agree."""
    near = ToyMorse()
    with torch.no_grad():
        near.params.depth.mul_(1.0005)
    frames = labelled(near, rattled(0, 2, stdev=0.02))
    sums = evaluate_errors(ToyMorse(), frames, 2)
    assert float(sums.force.abs().max()) < 0.01 and float(sums.stress.abs().max()) < 1.6
    mse, huber = FineTuneSettings(), FineTuneSettings(loss="huber")
    assert float(sums.loss(huber)) == pytest.approx(float(sums.loss(mse)), rel=1e-12)
    hot = evaluate_errors(ToyMorse(), toy_frames["train"], 2)  # forces off by ~0.3 eV/Å: linear regime
    forces_only = {"energy_weight": 0.0, "force_weight": 1.0, "stress_weight": 0.0}
    rho = float(hot.loss(FineTuneSettings(loss="huber", **forces_only)))
    linear = float((0.02 * hot.force.abs() - 1e-4).mean())  # 2δ|r| - δ², all but a few components
    assert rho == pytest.approx(linear, rel=1e-3)
    assert rho < 0.2 * float(hot.loss(FineTuneSettings(**forces_only)))


def equilibrium_frame() -> ForceFrame:
    """The perfect diamond cell: DFT forces zero by symmetry."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    return ForceFrame(atoms, np.zeros((len(atoms), 3)), None, None, label="equilibrium")


def test_one_usable_validation_frame_keeps_the_last_epoch(toy_frames) -> None:
    """A hot validation frame and a zero-force one: one usable frame, so no epoch is chosen on it; the
    zero-force frame is left out of the force part of the validation loss."""
    hot = labelled(ToyMorse(), rattled(100, 1))  # the bare model: every epoch validates worse than epoch 0
    validation = [*hot, equilibrium_frame()]
    settings = FineTuneSettings(epochs=3, lr=0.02, patience=1)
    result = fine_tune(ToyMorse(), toy_frames["train"], validation, settings)
    assert result.best_epoch == 3 and len(result.loss_curve) == 4  # last epoch, no early stop
    assert result.n_usable_validation == 1
    assert result.stopping == (
        "last epoch (1 usable validation frame; 1 with DFT force RMS below 0.05 eV/Å not counted)"
    )
    assert result.loss_curve[-1]["val_force_mae"] == pytest.approx(force_mae(result.adapter, hot), rel=1e-9)
    alone = fine_tune(ToyMorse(), toy_frames["train"], hot, settings)
    assert alone.stopping == "last epoch (1 usable validation frame)" and alone.best_epoch == 3


def test_min_epochs_and_patience(toy_frames) -> None:
    """Validation frames of the bare model: epoch 0 validates best. Epochs 1-3 are no candidates
    (min_epochs=4) and patience counts from epoch 3: stop at epoch 5, keep epoch 0 (no gain)."""
    validation = [*labelled(ToyMorse(), rattled(100, 2)), equilibrium_frame()]
    settings = FineTuneSettings(epochs=10, lr=0.02, patience=2, min_epochs=4)
    result = fine_tune(ToyMorse(), toy_frames["train"], validation, settings)
    assert len(result.loss_curve) == 6 and result.best_epoch == 0
    assert torch.equal(result.adapter.params.depth, ToyMorse().params.depth)
    assert result.stopping == (
        "best validation epoch (2 usable validation frames, 1 counted for energy and stress only; "
        "stopped early at epoch 5)"
    )
    # improving validation frames: the kept epoch is the best among epochs >= min_epochs
    improving = fine_tune(ToyMorse(), toy_frames["train"], toy_frames["val"], replace(KNOWN, min_epochs=8))
    curve = improving.loss_curve
    assert improving.best_epoch >= 8
    assert curve[improving.best_epoch]["val_loss"] == min(r["val_loss"] for r in curve[8:])


def test_replay_frames_are_labelled_by_the_base_model(data_dir) -> None:
    model = ToyMorse()
    frames = replay_frames(model, ["Si"])
    labels = [f.label for f in frames]
    assert labels[:2] == ["Si ground state, rattled 0", "Si ground state, rattled 1"]
    assert "SiO2-HP, rattled 0" in labels  # another chemistry the toy covers (Si, O)
    assert not any(label.startswith(("NaCl", "MgO", "Si,")) for label in labels)  # not covered / tuned
    for frame in frames:
        assert frame.group == "replay" and min(frame.atoms.cell.lengths()) >= 8.0
        r = model.compute(frame.atoms, ["energy", "forces", "stress"])
        np.testing.assert_allclose(frame.forces, r["forces"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(frame.stress, r["stress"], rtol=0, atol=1e-12)
        assert frame.energy == pytest.approx(r["energy"], abs=1e-10)
        assert np.abs(frame.forces).max() > 0.01  # rattled: the forces hold the curvature
    again = replay_frames(ToyMorse(), ["Si"])
    assert all(np.array_equal(a.atoms.positions, b.atoms.positions) for a, b in zip(frames, again))


def test_replay_frames_are_weighted_and_hold_the_model(softening_toy, data_dir) -> None:
    frames = softening_toy["hot"][:2]
    one = batch_errors(ToyMorse(), frames, False).detach()
    weighted = batch_errors(ToyMorse(), frames, False, weights=[3.0, 3.0]).detach()
    assert float(weighted.loss(FineTuneSettings())) == pytest.approx(3 * float(one.loss(FineTuneSettings())))
    mixed = batch_errors(ToyMorse(), frames, False, weights=[1.0, 0.0]).detach()
    first = batch_errors(ToyMorse(), frames[:1], False).detach()
    assert float(mixed.loss(FineTuneSettings())) == pytest.approx(float(first.loss(FineTuneSettings())) / 2)
    settings = replace(KNOWN, epochs=8)
    runs = {
        w: fine_tune(ToyMorse(), softening_toy["hot"], [], replace(settings, replay=w)) for w in (0.0, 5.0)
    }
    assert runs[0.0].replay == [] and "Si ground state, rattled 0" in runs[5.0].replay
    base_depth = float(ToyMorse().params.depth[0])
    moved = {w: abs(float(r.adapter.params.depth[0]) - base_depth) for w, r in runs.items()}
    assert moved[5.0] < moved[0.0] / 10  # the replayed ground state holds the Si well depth
    replayed = replay_frames(ToyMorse(), ["Si"])
    assert force_mae(runs[5.0].adapter, replayed) < force_mae(runs[0.0].adapter, replayed)


def test_same_seed_same_weights_with_every_option(softening_toy, toy_frames, data_dir) -> None:
    settings = FineTuneSettings(
        epochs=3, lr=0.05, anchor=10.0, ema=0.8, loss="huber", min_epochs=2, replay=0.5, patience=2
    )
    runs = [fine_tune(ToyMorse(), softening_toy["hot"], toy_frames["val"], settings) for _ in range(2)]
    first, second = (state(r.adapter) for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert runs[0].loss_curve == runs[1].loss_curve and runs[0].replay == runs[1].replay
    assert not torch.equal(first["depth"], ToyMorse().params.depth)


def test_presets_and_recorded_settings() -> None:
    assert FineTuneSettings.preset("softcalc") == FineTuneSettings()
    equitrain = FineTuneSettings.preset("equitrain", anchor=3.0)
    assert equitrain.loss == "huber" and equitrain.anchor == 3.0  # overrides win
    assert (equitrain.energy_weight, equitrain.force_weight) == (10.0, 100.0)
    assert equitrain.stress_weight == pytest.approx(1000 / 160.21766208**2)
    assert FineTuneSettings.preset("stress").stress_weight == 1.0
    assert set(PRESETS) == {"softcalc", "equitrain", "stress"}
    with pytest.raises(SettingsError, match="unknown fine-tuning preset 'fast'.*Fix"):
        FineTuneSettings.preset("fast")
    recorded = FineTuneSettings(ema=0.99, replay=0.1).to_dict()
    for key in (
        "anchor",
        "ema",
        "loss",
        "huber_delta_force",
        "min_epochs",
        "min_validation_force_rms",
        "replay",
    ):
        assert key in recorded
    assert recorded["huber_delta_units"]["stress"] == "GPa"
    json.dumps(recorded)
    from softcalc.cli.calibrate import TUNING_OPTIONS

    assert {name for name, _, _ in TUNING_OPTIONS} <= set(FineTuneSettings.__dataclass_fields__)


# -- freezing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("freeze", "changed"),
    [
        ("none", {"depth", "width", "distance"}),
        ("all-but-readout", {"depth"}),
        ("all-but-last:1", {"depth", "width", "distance"}),
    ],
)
def test_toy_freeze_options(toy_frames, freeze: str, changed: set[str]) -> None:
    settings = FineTuneSettings(epochs=2, lr=0.02, freeze=freeze)
    result = fine_tune(ToyMorse(), toy_frames["train"], [], settings)
    before, after = state(ToyMorse()), state(result.adapter)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == changed | {"references"}


def test_freeze_beyond_the_model_is_refused(toy_frames) -> None:
    with pytest.raises(SettingsError, match=r"has 1 interaction block.*all-but-last:1"):
        fine_tune(ToyMorse(), toy_frames["train"], [], FineTuneSettings(freeze="all-but-last:2"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"freeze": "all-but-first:1"},
        {"freeze": "all-but-last:0"},
        {"epochs": 0},
        {"lr_final": 1.0},
        {"patience": 0},
        {"anchor": -1.0},
        {"ema": 1.0},
        {"loss": "l1"},
        {"huber_delta_force": 0.0},
        {"min_epochs": 0},
        {"replay": -0.5},
    ],
)
def test_bad_settings_are_refused(kwargs) -> None:
    with pytest.raises(SettingsError, match="invalid fine-tune settings.*Fix"):
        FineTuneSettings(**kwargs)


# -- refusals -------------------------------------------------------------------------------------


def test_bad_inputs_are_refused(toy_frames) -> None:
    with pytest.raises(DataError, match="no training frames"):
        fine_tune(ToyMorse(), [], toy_frames["val"], SHORT)
    with pytest.raises(CalculationSetupError, match=r"fine_tune needs a softcalc torch model.*EMT.*Fix"):
        fine_tune(EMT(), toy_frames["train"], [], SHORT)
    iron = bulk("Fe", "bcc", a=2.87, cubic=True)
    frame = ForceFrame(iron, np.zeros((len(iron), 3)))
    with pytest.raises(UnsupportedElementsError, match="Fe"):
        fine_tune(ToyMorse(), toy_frames["train"], [frame], SHORT)


# -- saving and loading ---------------------------------------------------------------------------


def test_save_and_load_into_a_fresh_base_model(toy_result, toy_frames, tmp_path: Path) -> None:
    tuned = toy_result.adapter
    path = tmp_path / "tuned.pt"
    sha = save_tuned_weights(tuned, path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest() == tuned.info.weights_sha256
    assert tuned.info.weights == str(path)
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed
    fresh = ToyMorse()
    load_tuned_weights(fresh, path, sha, "correction.json")
    assert fresh.info.fingerprint == tuned.info.fingerprint
    assert fresh.info.reference_energies == tuned.info.reference_energies
    atoms = toy_frames["val"][0].atoms
    want, got = (m.compute(atoms, ["energy", "forces", "stress"]) for m in (tuned, fresh))
    np.testing.assert_allclose(got["forces"], want["forces"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["stress"], want["stress"], rtol=0, atol=1e-12)
    assert got["energy"] == pytest.approx(want["energy"], abs=1e-10)


def test_load_refusals_name_the_file(toy_result, tmp_path: Path) -> None:
    path = tmp_path / "tuned.pt"
    sha = save_tuned_weights(toy_result.adapter, path)
    missing = tmp_path / "gone.pt"
    with pytest.raises(CorrectionFileError, match=f"{missing}.*not found.*Fix"):
        load_tuned_weights(ToyMorse(), missing, sha, "c.json")
    altered = tmp_path / "altered.pt"
    altered.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorrectionFileError, match=f"{altered}.*SHA-256.*Fix"):
        load_tuned_weights(ToyMorse(), altered, sha, "c.json")
    fresh = ToyMorse()
    load_tuned_weights(fresh, path, sha, "c.json")
    with pytest.raises(
        CorrectionFileError, match=f"{path}.*tuned from toy-morse.*loaded model is toy-morse\\+tuned"
    ):
        load_tuned_weights(fresh, path, sha, "c.json")  # tuned already


def test_state_for_another_model_is_refused(toy_result, tmp_path: Path) -> None:
    from mace_models import random_mace
    from softcalc_mace._adapter import MaceAdapter

    path = tmp_path / "tuned.pt"
    sha = save_tuned_weights(toy_result.adapter, path)
    mace = MaceAdapter(random_mace(), name="random")
    with pytest.raises(CorrectionFileError, match=f"{path}.*tuned from toy-morse.*Fix: load the base model"):
        load_tuned_weights(mace, path, sha, "c.json")
    # right fingerprint, wrong weights: refused before anything is copied
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = state(mace)
    forged = tmp_path / "forged.pt"
    torch.save(payload, forged)
    fresh = ToyMorse()
    with pytest.raises(CorrectionFileError, match=f"{forged}.*do not fit model toy-morse.*missing: depth"):
        load_tuned_weights(fresh, forged, hashlib.sha256(forged.read_bytes()).hexdigest(), "c.json")
    assert torch.equal(fresh.params.depth, ToyMorse().params.depth)


# -- real families ----------------------------------------------------------------------------------


def test_random_mace_fine_tune_changes_the_intended_weights() -> None:
    from mace_models import random_mace
    from softcalc_mace._adapter import MaceAdapter

    base = MaceAdapter(random_mace(), name="random")
    frames = labelled(ToyMorse(), rattled(0, 3, {1: "Ge", 6: "Ge"}))
    base.compute(frames[0].atoms, ["energy", "forces", "stress"])  # a used model copies as well
    before = state(base)
    result = fine_tune(base, frames[:2], frames[2:], FineTuneSettings(epochs=2, freeze="all-but-last:1"))
    after = state(result.adapter)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    trained = ("interactions.1.", "products.1.", "readouts.0.", "readouts.1.", "atomic_energies_fn.")
    assert all(k.startswith(trained) for k in moved)
    assert all(any(k.startswith(prefix) for k in moved) for prefix in trained)
    assert result.loss_curve[-1]["train_loss"] < result.loss_curve[0]["train_loss"]
    assert set(result.reference_shift) == {"Si", "Ge"}


def mlearn_si(data_dir: Path, n: int) -> list[ForceFrame]:
    from softcalc.data.readers import read_dataset

    frames = read_dataset(data_dir / "forces" / "mlearn" / "Si" / "training.json").frames
    return [f for f in frames if f.group == "AIMD-NVT"][:n]


@pytest.mark.parametrize("name", ["chgnet", "m3gnet"])
def test_uMLIP_readout_fine_tune(name: str, data_dir: Path, model_dir: Path) -> None:
    """One step on two 64-atom Si frames: only the readout (and μ_Z) move, the training loss drops.

    Adam's first step moves every parameter by about the learning rate; 1e-4 is small enough to descend.
    """
    pytest.importorskip({"chgnet": "chgnet", "m3gnet": "matgl"}[name])
    from softcalc import load_model

    base = load_model(name).model
    frames = mlearn_si(data_dir, 2)
    settings = FineTuneSettings(epochs=1, lr=1e-4, lr_final=1e-4, freeze="all-but-readout")
    result = fine_tune(base, frames, [], settings)
    parts = result.adapter.tunable_parts()
    fixed = [*(p for block in parts.blocks for p in block), *parts.other]
    original = base.tunable_parts()
    assert all(
        torch.equal(a, b)
        for a, b in zip(fixed, [*(p for block in original.blocks for p in block), *original.other])
    )
    assert not all(torch.equal(a, b) for a, b in zip(parts.readout, original.readout))
    assert result.n_parameters == sum(p.numel() for p in [*parts.readout, parts.references])
    after = float(evaluate_errors(result.adapter, frames, 2).loss(settings))
    assert after < result.loss_curve[0]["train_loss"]
    if name == "m3gnet":  # the aggregation repair travels with the tuned copy
        kinds = [type(m).__name__ for m in result.adapter.module.modules()]
        assert kinds.count("DestinationM3GNetGraphConv") == len(parts.blocks)
