"""Few-shot fine-tuning (softcalc.finetune): a known answer, determinism, freezing, saving and loading,
refusals, and one short run per real family (random-weight MACE, CHGNet, M3GNet).

The known answer: the toy Morse model tuned on frames of the same model with 1.3 times deeper wells
must find the deeper wells (held-out forces at most a third of the bare error; measured 0.052 against
0.282 eV/Å).
"""

from __future__ import annotations

import hashlib
import json
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
from softcalc.finetune.loss import evaluate_errors
from softcalc.torch_adapter import TorchAdapter

#: one torch thread: on a shared 2-core machine, two spinning threads slow the small models down
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: toy fine-tune that recovers 1.3 times deeper Morse wells (about 1 s)
KNOWN = FineTuneSettings(epochs=20, lr=0.05, lr_final=1e-3)
#: a few epochs, for tests of the mechanics
SHORT = FineTuneSettings(epochs=3, lr=0.02)


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


def rattled(seed: int, n: int, symbols: dict[int, str] | None = None) -> list[Atoms]:
    """``n`` rattled 8-atom diamond cells (Si, some sites replaced by ``symbols``)."""
    out = []
    for k in range(n):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        for site, symbol in (symbols or {}).items():
            atoms.symbols[site] = symbol
        atoms.rattle(0.1, seed=seed + k)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def toy_frames() -> dict[str, list[ForceFrame]]:
    ref = stiff_toy()
    return {name: labelled(ref, rattled(seed, n)) for name, seed, n in (("train", 0, 4), ("val", 100, 1))}


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
    assert [row["epoch"] for row in result.loss_curve] == list(range(SHORT.epochs + 1))
    assert all(row["val_loss"] is None for row in result.loss_curve)
    info = toy_result.adapter.info
    assert info.name == "toy-morse+tuned" and info.weights is None and len(info.weights_sha256) == 64
    assert toy_result.adapter.tuned_from == base.info.fingerprint
    assert info.reference_energies["Si"] == pytest.approx(float(toy_result.adapter.params.references[0]))
    assert set(toy_result.reference_shift) == {"Si"}
    assert toy_result.n_parameters == 16  # D, a, r0 and μ of four elements
    row = toy_result.loss_curve[-1]
    assert set(row) == {"epoch", "lr", "train_loss", "val_loss", "val_force_mae", "val_energy_mae"}
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
    validation = labelled(ToyMorse(), rattled(100, 1))
    settings = FineTuneSettings(epochs=10, lr=0.02, patience=2)
    result = fine_tune(ToyMorse(), toy_frames["train"], validation, settings)
    assert result.best_epoch == 0
    assert len(result.loss_curve) == 3  # epoch 0, then two epochs without improvement
    assert torch.equal(result.adapter.params.depth, ToyMorse().params.depth)


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
