"""ASE integrators for NVE, NVT and NPT, and their internal state for exact restarts.

Units at this interface: time in fs, temperature in K, pressure in GPa, friction in 1/fs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ase
import numpy as np
from ase import Atoms, units
from ase.md.bussi import Bussi
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.nose_hoover_chain import MTKNPT, NoseHooverChainNVT
from ase.md.nptberendsen import NPTBerendsen
from ase.md.nvtberendsen import NVTBerendsen
from ase.md.verlet import VelocityVerlet

from softcalc.md.errors import MDSettingsError

#: Thermostats (and barostats) available per ensemble; the first one is the default.
THERMOSTATS: dict[str, tuple[str, ...]] = {
    "nve": ("none",),
    "nvt": ("langevin", "nose-hoover", "bussi", "berendsen"),
    "npt": ("nose-hoover", "berendsen"),
}
#: Thermostats that draw random numbers (their numpy Generator state is checkpointed).
STOCHASTIC = frozenset({"langevin", "bussi"})

#: Internal variables of each ASE integrator that a resume restores (attribute paths): Nosé-Hoover chain
#: positions/momenta, MTK barostat chain and cell momenta, Bussi's energy ledger; the other integrators
#: keep no state beyond the atoms (and the checkpointed random generator). ASE offers no public API for
#: them: these are its private internals as of ASE 3.29.0 (tested there); tests/test_md.py::
#: test_ase_integrator_internals fails when an ASE release renames, drops or adds one, and
#: :func:`integrator_state` refuses an integrator that lacks one.
INTEGRATOR_STATE: dict[type[MolecularDynamics], tuple[str, ...]] = {
    NoseHooverChainNVT: ("_thermostat._eta", "_thermostat._p_eta"),
    MTKNPT: ("_thermostat._eta", "_thermostat._p_eta", "_barostat._xi", "_barostat._p_xi", "_p_g"),
    Bussi: ("transferred_energy",),
}


@dataclass(frozen=True)
class EnsembleSettings:
    """How atoms are propagated.

    Attributes:
        ensemble: ``"nve"``, ``"nvt"`` or ``"npt"``.
        thermostat: one of :data:`THERMOSTATS` for the ensemble (``None``: the default).
        timestep_fs: time step in fs.
        temperature_K: target temperature in K (NVT/NPT) and of the initial velocities.
        pressure_GPa: external pressure in GPa (NPT).
        tdamp_fs: thermostat time constant in fs (default 100 time steps).
        pdamp_fs: barostat time constant in fs (default 1000 time steps).
        friction_per_fs: Langevin friction in 1/fs.
        bulk_modulus_GPa: compressibility guess for the Berendsen barostat, in GPa.
    """

    ensemble: str = "nve"
    thermostat: str | None = None
    timestep_fs: float = 1.0
    temperature_K: float = 300.0
    pressure_GPa: float = 0.0
    tdamp_fs: float | None = None
    pdamp_fs: float | None = None
    friction_per_fs: float = 0.01
    bulk_modulus_GPa: float = 100.0

    def __post_init__(self) -> None:
        if self.ensemble not in THERMOSTATS:
            raise MDSettingsError(f"ensemble must be one of {sorted(THERMOSTATS)}, got {self.ensemble!r}")
        choices = THERMOSTATS[self.ensemble]
        if self.thermostat is None:
            object.__setattr__(self, "thermostat", choices[0])
        if self.thermostat not in choices:
            raise MDSettingsError(
                f"thermostat {self.thermostat!r} is not available for {self.ensemble.upper()}; "
                f"choose one of {', '.join(choices)}"
            )
        if not self.timestep_fs > 0:
            raise MDSettingsError(f"the time step must be positive, got {self.timestep_fs} fs")
        if self.ensemble != "nve" and not self.temperature_K > 0:
            raise MDSettingsError(
                f"{self.ensemble.upper()} needs a positive temperature, got {self.temperature_K} K"
            )

    @property
    def stochastic(self) -> bool:
        """True when the integrator consumes random numbers."""
        return self.thermostat in STOCHASTIC

    def as_attributes(self) -> dict[str, Any]:
        """Flat metadata (None becomes the resolved default) for the trajectory file."""
        return {
            "ensemble": self.ensemble,
            "thermostat": self.thermostat,
            "timestep_fs": self.timestep_fs,
            "temperature_K": self.temperature_K,
            "pressure_GPa": self.pressure_GPa,
            "tdamp_fs": self.effective_tdamp_fs,
            "pdamp_fs": self.effective_pdamp_fs,
            "friction_per_fs": self.friction_per_fs,
            "bulk_modulus_GPa": self.bulk_modulus_GPa,
        }

    def used_attributes(self) -> tuple[str, ...]:
        """Keys of :meth:`as_attributes` that this ensemble and thermostat depend on (a resume must keep
        them): the ensemble, thermostat, time step, temperature and pressure always, and the damping
        times, Langevin friction and Berendsen compressibility where :func:`make_dynamics` uses them."""
        keys = ["ensemble", "thermostat", "timestep_fs", "temperature_K", "pressure_GPa"]
        if self.thermostat in ("nose-hoover", "bussi", "berendsen"):
            keys.append("tdamp_fs")
        if self.thermostat == "langevin":
            keys.append("friction_per_fs")
        if self.ensemble == "npt":
            keys.append("pdamp_fs")
        if (self.ensemble, self.thermostat) == ("npt", "berendsen"):
            keys.append("bulk_modulus_GPa")
        return tuple(keys)

    @property
    def effective_tdamp_fs(self) -> float:
        """Thermostat time constant in fs: ``tdamp_fs``, or 100 time steps when it is None."""
        return self.tdamp_fs if self.tdamp_fs is not None else 100.0 * self.timestep_fs

    @property
    def effective_pdamp_fs(self) -> float:
        """Barostat time constant in fs: ``pdamp_fs``, or 1000 time steps when it is None."""
        return self.pdamp_fs if self.pdamp_fs is not None else 1000.0 * self.timestep_fs


def make_dynamics(atoms: Atoms, settings: EnsembleSettings, rng: np.random.Generator) -> MolecularDynamics:
    """The ASE integrator for ``settings`` acting on ``atoms`` (random numbers from ``rng``)."""
    dt = settings.timestep_fs * units.fs
    temp = settings.temperature_K
    tdamp = settings.effective_tdamp_fs * units.fs
    pdamp = settings.effective_pdamp_fs * units.fs
    kind = (settings.ensemble, settings.thermostat)
    if kind == ("nve", "none"):
        return VelocityVerlet(atoms, timestep=dt)
    if kind == ("nvt", "langevin"):
        return Langevin(atoms, timestep=dt, temperature_K=temp, friction=settings.friction_per_fs / units.fs,
                        fixcm=False, rng=rng)
    if kind == ("nvt", "nose-hoover"):
        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=temp, tdamp=tdamp)
    if kind == ("nvt", "bussi"):
        return Bussi(atoms, timestep=dt, temperature_K=temp, taut=tdamp, rng=rng)
    if kind == ("nvt", "berendsen"):
        return NVTBerendsen(atoms, timestep=dt, temperature_K=temp, taut=tdamp)
    pressure_au = settings.pressure_GPa * units.GPa
    if kind == ("npt", "nose-hoover"):
        return MTKNPT(atoms, timestep=dt, temperature_K=temp, pressure_au=pressure_au, tdamp=tdamp,
                      pdamp=pdamp)
    if kind == ("npt", "berendsen"):
        return NPTBerendsen(atoms, timestep=dt, temperature_K=temp, pressure_au=pressure_au, taut=tdamp,
                            taup=pdamp, compressibility_au=1.0 / (settings.bulk_modulus_GPa * units.GPa))
    raise AssertionError(f"unhandled ensemble {kind}")  # pragma: no cover - guarded by EnsembleSettings


def _resolve(obj: object, path: str) -> tuple[object, str] | None:
    *parents, leaf = path.split(".")
    for name in parents:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return (obj, leaf) if hasattr(obj, leaf) else None


def state_attributes(dyn: MolecularDynamics) -> tuple[str, ...]:
    """The internal variables of ``dyn`` that a resume restores (:data:`INTEGRATOR_STATE`; () for none)."""
    return next((paths for cls, paths in INTEGRATOR_STATE.items() if isinstance(dyn, cls)), ())


def integrator_state(dyn: MolecularDynamics) -> dict[str, np.ndarray]:
    """Copies of the integrator's internal variables (see :data:`INTEGRATOR_STATE`).

    Raises:
        MDSettingsError: the integrator lacks one of them (an ASE release that changed its internals):
            without it a resume would not continue the run exactly.
    """
    state = {}
    for path in state_attributes(dyn):
        found = _resolve(dyn, path)
        if found is None:
            raise MDSettingsError(
                f"the ASE {ase.__version__} integrator {type(dyn).__name__} has no state variable {path}, "
                "which softcalc checkpoints for exact resumes (tested with ASE 3.29.0). Fix: install an ASE "
                "release softcalc was tested with, or report this ASE version."
            )
        state[path] = np.array(getattr(*found), dtype=float)
    return state


def restore_integrator_state(dyn: MolecularDynamics, state: dict[str, np.ndarray]) -> None:
    """Put variables saved by :func:`integrator_state` back into a freshly built integrator."""
    for path, value in state.items():
        found = _resolve(dyn, path)
        if found is None:
            raise MDSettingsError(f"the integrator {type(dyn).__name__} has no state variable {path}")
        obj, leaf = found
        setattr(obj, leaf, float(value) if np.ndim(value) == 0 else np.array(value, dtype=float))
