"""Calibration on energies (``target="energy"``) and on forces and energies together, with known answers.

"DFT" is the toy model corrected with different scales for energies and forces, plus a constant energy
per atom (a DFT code's references differ from the model's): the energy target must recover the
energy scale, the force target the force scale, and the joint target a λ between them.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from labelled_frames import write_extxyz

from softcalc import SoftCorrectedCalc
from softcalc.calibration.pipeline import calibrate
from softcalc.cli import main
from softcalc.data import ForceDataset, ForceFrame
from softcalc.energies import EnergyComparison, energy_deviations
from softcalc.errors import DataError, SettingsError

#: DFT energy per atom minus the model's (eV/atom): any constant must drop out of energy differences
OFFSET = -0.37


def frames(
    n: int, energy_scale: float, force_scale: float, seed: int = 0, strain: bool = True
) -> ForceDataset:
    """Strained and rattled SiGe cells labelled by the toy model scaled by ``energy_scale`` (anchored
    energies) and ``force_scale`` (forces)."""
    e_calc = SoftCorrectedCalc("toy-morse", scale=energy_scale)
    f_calc = SoftCorrectedCalc("toy-morse", scale=force_scale)
    out = []
    for k in range(n):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        atoms.symbols[[0, 5]] = "Ge"
        atoms.set_cell(atoms.cell * (1 + 0.015 * (k - n / 2)), scale_atoms=True)
        atoms.rattle(0.05, seed=seed * 100 + k)
        energy = e_calc.get_potential_energy(atoms) + OFFSET * len(atoms)
        forces = f_calc.get_forces(atoms)
        out.append(ForceFrame(atoms.copy(), forces, energy=energy, group="Elastic", label=f"f{k}"))
    return ForceDataset(out, source="synthetic", material="SiGe")


def test_energy_target_recovers_the_energy_scale_and_forces_target_the_force_scale() -> None:
    data = frames(8, energy_scale=1.6, force_scale=1.2)
    by_energy = calibrate("toy-morse", data, frames=5, target="energy", n_bootstrap=200)
    by_forces = calibrate("toy-morse", data, frames=5, target="forces", n_bootstrap=200)
    joint = calibrate("toy-morse", data, frames=5, target="forces+energy", n_bootstrap=200)
    assert by_energy.correction.scale == pytest.approx(1.6, rel=1e-9)
    assert by_forces.correction.scale == pytest.approx(1.2, rel=1e-9)
    assert 1.2 < joint.correction.scale < 1.6
    r = by_energy.report
    assert r.target == "energy" and by_energy.correction.statistics["target"] == "energy"
    assert by_energy.correction.provenance["target"] == "energy"
    energy = r.errors["energy"]
    assert energy["n_frames"] == 3 and energy["mae_after"] < 1e-9 < energy["mae_before"]
    assert r.recommended
    # the energy-fitted λ over-corrects these forces: a warning naming the regime, not a block
    codes = {x["code"]: x["blocking"] for x in r.reasons}
    assert codes == {"forces-worse": False}
    assert by_forces.report.reasons == []
    # energies the bare model gets right and forces it softens: the force λ makes energies worse
    hot = frames(8, energy_scale=1.0, force_scale=1.3, seed=2)
    r = calibrate("toy-morse", hot, frames=5, n_bootstrap=200).report
    assert r.errors["energy"]["mae_after"] > r.errors["energy"]["mae_before"]
    assert r.recommended and {x["code"]: x["blocking"] for x in r.reasons} == {"energy-worse": False}


def test_energy_differences_are_taken_within_a_composition_with_atom_weights() -> None:
    comp = EnergyComparison(
        model=np.array([-8.0, -10.0, -6.0, -20.0, -7.0]),
        dft=np.array([-9.0, -11.5, -7.0, -21.0, np.nan]),
        n_atoms=np.array([2, 2, 2, 4, 2]),
        composition=["Si", "Si", "Si", "SiO2", "Si"],
        reference=np.zeros(5),
        groups=[""] * 5,
    )
    dev = energy_deviations(comp)
    # SiO2 has one frame (no difference), the last Si frame no DFT energy
    assert dev.n_skipped == 2 and list(dev.index) == [0, 1, 2]
    np.testing.assert_allclose(dev.model, [0.0, -1.0, 1.0])
    np.testing.assert_allclose(dev.dft, np.array([-4.5, -5.75, -3.5]) - np.mean([-4.5, -5.75, -3.5]))
    # held-out frames refer to the calibration means of their composition
    held = energy_deviations(comp, {"SiO2": (-4.0, -5.0)})
    assert list(held.index) == [0, 1, 2, 3]
    assert held.model[3] == pytest.approx(-1.0) and held.dft[3] == pytest.approx(-0.25)


def test_energy_target_errors_name_the_problem() -> None:
    data = frames(4, 1.3, 1.3)
    no_energy = ForceDataset(
        [ForceFrame(f.atoms, f.forces, group=f.group) for f in data.frames], source="x", material="SiGe"
    )
    with pytest.raises(DataError, match="needs DFT energies"):
        calibrate("toy-morse", no_energy, frames=2, target="energy", n_bootstrap=50)
    # every calibration frame a different composition: no energy difference exists
    mixed = []
    for k, f in enumerate(data.frames[:3]):
        atoms = f.atoms.copy()
        atoms.symbols[1 : 1 + k] = "Ge"
        mixed.append(ForceFrame(atoms, f.forces, energy=f.energy, group="Elastic"))
    with pytest.raises(DataError, match="no composition .* has two calibration frames"):
        calibrate("toy-morse", ForceDataset(mixed, source="m"), target="energy", n_bootstrap=50)
    flipped = ForceDataset(
        [ForceFrame(f.atoms, f.forces, energy=-f.energy, group=f.group) for f in data.frames], source="f"
    )
    with pytest.raises(DataError, match="energy differences between the calibration frames anti-correlate"):
        calibrate("toy-morse", flipped, frames=3, target="energy", n_bootstrap=50)
    with pytest.raises(SettingsError, match="method 'per-species' fits on forces only"):
        calibrate("toy-morse", data, frames=2, target="energy", per_species=True)
    with pytest.raises(SettingsError, match="target must be one of"):
        calibrate("toy-morse", data, frames=2, target="stress")


def test_energy_target_without_held_out_energies_is_not_recommended() -> None:
    data = frames(6, 1.5, 1.5)
    test = ForceDataset([ForceFrame(f.atoms, f.forces, group=f.group) for f in frames(3, 1.5, 1.5, 1).frames])
    r = calibrate("toy-morse", data, test=test, target="energy", n_bootstrap=100).report
    assert r.scale == pytest.approx(1.5, rel=1e-9)
    assert not r.recommended and r.reasons[0]["code"] == "no-energy-check"


def test_cli_target_energy(tmp_path, capsys) -> None:  # noqa: ANN001
    write_extxyz(tmp_path / "d.extxyz", frames(6, 1.4, 1.1), "Elastic")
    out = tmp_path / "c.json"
    args = ["calibrate", "--model", "toy-morse", "--data", str(tmp_path / "d.extxyz"), "--frames", "4"]
    assert main([*args, "--target", "energy", "--bootstrap", "50", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "λ = 1.4000" in text and "energy differences within a composition" in text
    assert "recommended: held-out energy MAE" in text


def test_a_calculator_without_energies_still_calibrates_on_forces() -> None:
    """A foreign ASE calculator that gives forces only: forces are fitted, energies are not asked for."""
    from ase.calculators.calculator import Calculator, all_changes

    toy = SoftCorrectedCalc("toy-morse")

    class ForcesOnly(Calculator):
        implemented_properties = ["forces"]
        calls: list[tuple[str, ...]] = []

        def calculate(self, atoms=None, properties=("forces",), system_changes=all_changes) -> None:  # noqa: ANN001
            super().calculate(atoms, properties, system_changes)
            self.calls.append(tuple(properties))
            self.results = {"forces": toy.get_forces(self.atoms)}

    data = frames(6, energy_scale=1.2, force_scale=1.2)
    r = calibrate(ForcesOnly(), data, frames=4, n_bootstrap=50).report
    assert r.scale == pytest.approx(1.2, rel=1e-9) and r.errors["energy"] is None
    assert all(c == ("forces",) for c in ForcesOnly.calls)
    with pytest.raises(DataError, match="needs DFT energies and model energies"):
        calibrate(ForcesOnly(), data, frames=4, target="energy", n_bootstrap=50)
