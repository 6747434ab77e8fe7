"""Progress bar with MD throughput: atom-steps per second and simulated ns per day."""

from __future__ import annotations

import time

from ase.md.md import MolecularDynamics
from tqdm.auto import tqdm

SECONDS_PER_DAY = 86400.0


def ns_per_day(steps_per_second: float, timestep_fs: float) -> float:
    """Simulated nanoseconds per wall-clock day at ``steps_per_second`` with a ``timestep_fs`` step."""
    return steps_per_second * timestep_fs * 1e-6 * SECONDS_PER_DAY


class MDProgress:
    """A tqdm bar over the steps of an ASE integrator (ETA included) showing atom-steps/s and ns/day.

    An observer: ``dyn.attach(bar, interval=1)`` moves it to ``dyn.nsteps`` after every step. The
    steps ``dyn`` has done when the bar is made count as done before this run (resume). The clock
    starts with the first step: ASE reports a new run's initial state (step 0) before stepping, and
    that call restarts it, so the first force evaluation and frame are not counted as a step.

    Args:
        dyn: the integrator; total: the step the run ends at; n_atoms; timestep_fs in fs.
        enabled: False gives no output but still measures throughput.
    """

    def __init__(
        self, dyn: MolecularDynamics, total: int, n_atoms: int, timestep_fs: float, enabled: bool = True
    ) -> None:
        self.dyn = dyn
        self.done = dyn.nsteps
        self.n_atoms = n_atoms
        self.timestep_fs = timestep_fs
        self.steps = 0
        self._start = time.perf_counter()
        self._last_postfix = self._start
        self._bar = tqdm(total=total, initial=self.done, unit="step", disable=not enabled, dynamic_ncols=True)

    @property
    def elapsed(self) -> float:
        """Wall seconds since the clock started."""
        return time.perf_counter() - self._start

    @property
    def steps_per_second(self) -> float:
        """MD steps per wall second so far in this run."""
        return self.steps / self.elapsed if self.steps else 0.0

    @property
    def atom_steps_per_second(self) -> float:
        """Atom-steps per wall second so far in this run."""
        return self.steps_per_second * self.n_atoms

    def __call__(self) -> None:
        """Show the integrator's step count; refresh the throughput about once a second."""
        steps = self.dyn.nsteps - self.done
        if steps == 0:
            self._start = self._last_postfix = time.perf_counter()
            return
        self._bar.update(steps - self.steps)
        self.steps = steps
        now = time.perf_counter()
        if now - self._last_postfix > 1.0:
            self._last_postfix = now
            self._bar.set_postfix_str(
                f"{self.atom_steps_per_second:.3g} atom-steps/s, "
                f"{ns_per_day(self.steps_per_second, self.timestep_fs):.3g} ns/day",
                refresh=False,
            )

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()

    def __enter__(self) -> MDProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
