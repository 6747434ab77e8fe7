"""The ``spread`` frame order: K frames spread over the labelled regimes, then over energy and force.

Known answers on hand-made frames (no model needed), and the command line taking ``--order spread``.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from ase import Atoms

from softcalc.calibration.frames import FrameFilter, select_frames, split_frames, spread_order
from softcalc.calibration.pipeline import ORDERS
from softcalc.cli import main
from softcalc.data import ForceDataset, ForceFrame

_counter = itertools.count()


def frame(
    group: str = "",
    rms: float = 1.0,
    energy_per_atom: float | None = None,
    temperature: float | None = None,
    strain: float | None = None,
    label: str = "",
) -> ForceFrame:
    """A two-atom frame whose DFT forces have RMS ``rms`` (eV/Å) and energy 2 × ``energy_per_atom``; each
    frame a distinct structure (held-out copies of calibration frames would be dropped)."""
    x = 1.2 + 0.001 * next(_counter)
    atoms = Atoms("Si2", positions=[[0, 0, 0], [x, x, x]], cell=[5.43] * 3, pbc=True)
    energy = None if energy_per_atom is None else 2 * energy_per_atom
    return ForceFrame(atoms, np.full((2, 3), rms), energy, None, group, label, temperature, strain)


def groups_of(data: ForceDataset, order: str, k: int) -> list[str]:
    return [f.group for f in select_frames(data, order=order).frames[:k]]


def test_spread_is_an_order() -> None:
    assert "spread" in ORDERS


def test_round_robin_over_groups_largest_first() -> None:
    """Groups of 5, 3 and 1 frames: one from each, largest first, then the largest again."""
    names = ["B", "A", "A", "C", "B", "A", "A", "B", "A"]  # A 5, B 3, C 1
    data = ForceDataset([frame(g, rms=1.0 + 0.1 * i) for i, g in enumerate(names)])
    assert groups_of(data, "spread", 4) == ["A", "B", "C", "A"]
    assert groups_of(data, "file", 4) == ["B", "A", "A", "C"]
    order = spread_order(data.frames)
    assert sorted(order) == list(range(len(names)))  # every frame once
    assert [names[i] for i in order] == ["A", "B", "C", "A", "B", "A", "B", "A", "A"]
    assert order == spread_order(data.frames)  # deterministic


def test_groups_of_equal_size_take_turns_in_file_order() -> None:
    data = ForceDataset([frame(g) for g in ["Y", "X", "X", "Y"]])
    assert groups_of(data, "spread", 4) == ["Y", "X", "Y", "X"]


def test_temperature_and_strain_regimes_within_a_group() -> None:
    """Within a group its (temperature, strain) regimes take turns, largest first; groups first."""
    frames = [
        frame("AIMD", 1.0, temperature=300.0),
        frame("AIMD", 1.1, temperature=300.0),
        frame("AIMD", 1.2, temperature=900.0),
        frame("AIMD", 1.3, temperature=300.0),
        frame("Elastic", 0.1, strain=0.02),
        frame("Elastic", 0.2, strain=-0.02),
        frame("Elastic", 0.3, strain=0.02),
    ]
    order = spread_order(frames)
    # AIMD (4) then Elastic (3); AIMD: 300 K (3) then 900 K; Elastic: +0.02 (2) then -0.02
    picked = [(frames[i].group, frames[i].temperature or frames[i].strain) for i in order]
    assert picked == [
        ("AIMD", 300.0),
        ("Elastic", 0.02),
        ("AIMD", 900.0),
        ("Elastic", -0.02),
        ("AIMD", 300.0),
        ("Elastic", 0.02),
        ("AIMD", 300.0),
    ]
    # within a regime the largest RMS force comes first: 300 K frames 1.3 (index 3), then farthest 1.0
    assert order[0] == 3 and order[4] == 0 and order[6] == 1
    assert order[1] == 6  # Elastic +0.02: RMS 0.3 before 0.1


def test_farthest_point_in_energy_and_force() -> None:
    """One unlabelled set: farthest-point order in (energy per atom, RMS force), each axis over its std.

    Points (e, f): 0 (0, 1.0), 1 (0, 3.0), 2 (1, 1.1), 3 (0.1, 2.9), 4 (0.5, 2.0). Start at the largest
    force (1); farthest from it is 2 (opposite corner); then 0 (far in force from 1, in energy from 2);
    then 4 (the middle) before 3, which sits next to 1.
    """
    points = [(0.0, 1.0), (0.0, 3.0), (1.0, 1.1), (0.1, 2.9), (0.5, 2.0)]
    data = ForceDataset([frame(rms=f, energy_per_atom=e, label=str(i)) for i, (e, f) in enumerate(points)])
    assert spread_order(data.frames) == [1, 2, 0, 4, 3]
    assert [f.label for f in select_frames(data, order="spread").frames] == ["1", "2", "0", "4", "3"]
    # the energy axis matters: by force alone 0 (RMS 1.0) is farther from 1 than 2 (RMS 1.1) is
    no_energy = [frame(rms=f) for _, f in points]
    assert spread_order(no_energy)[:2] == [1, 0]


def test_frames_without_energy_use_the_force_alone() -> None:
    data = [frame(rms=r) for r in (1.0, 5.0, 2.2, 4.0, 3.0)]
    assert spread_order(data) == [1, 0, 4, 3, 2]
    # a frame without an energy among frames with one is placed by its force
    mixed = [frame(rms=1.0, energy_per_atom=0.0), frame(rms=3.0), frame(rms=2.0, energy_per_atom=5.0)]
    assert spread_order(mixed)[0] == 1


def test_split_takes_the_first_k_of_the_spread_order() -> None:
    names = ["A", "A", "A", "B", "B", "C"]
    data = ForceDataset([frame(g, rms=1.0 + i) for i, g in enumerate(names)])
    split = split_frames(data, frames=3)
    assert [f.group for f in split.fit[0].frames] == ["A", "A", "A"]  # file order by default
    split = split_frames(data, frames=3, keep=FrameFilter(order="spread"))
    assert sorted(f.group for f in split.fit[0].frames) == ["A", "B", "C"]
    assert sorted(f.group for f in split.heldout[0].frames) == ["A", "A", "B"]


@pytest.mark.parametrize("order", ["spread", "file"])
def test_command_line_takes_order_spread(tmp_path, order: str) -> None:
    """--order spread fits one frame of each group; file order would fit the first three (all AIMD)."""
    from ase.build import bulk
    from ase.io import write

    from softcalc import SoftCorrectedCalc

    calc = SoftCorrectedCalc("toy-morse", scale=1.2)
    images = []
    for k, group in enumerate(["AIMD", "AIMD", "AIMD", "Vacancy", "Vacancy", "Surface"]):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = calc
        forces, energy = atoms.get_forces(), atoms.get_potential_energy()
        atoms.calc = None
        atoms.arrays["forces"] = forces
        atoms.info.update(energy=energy, group=group)
        images.append(atoms)
    write(tmp_path / "d.extxyz", images)
    argv = ["calibrate", "--model", "toy-morse", "--data", str(tmp_path / "d.extxyz"), "--frames", "3",
            "--order", order, "--bootstrap", "20", "--out", str(tmp_path / "c.json"),
            "--json", str(tmp_path / "r.json"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    held_out = set(json.loads((tmp_path / "r.json").read_text())["errors"]["by_group"])
    assert held_out == ({"AIMD", "Vacancy"} if order == "spread" else {"Vacancy", "Surface"})
    assert json.loads((tmp_path / "c.json").read_text())["provenance"]["order"] == order
