"""Progress bar with MD throughput: atom-steps per second and simulated ns per day."""

from __future__ import annotations

import time

from tqdm.auto import tqdm

SECONDS_PER_DAY = 86400.0


def ns_per_day(steps_per_second: float, timestep_fs: float) -> float:
    """Simulated nanoseconds per wall-clock day at ``steps_per_second`` with a ``timestep_fs`` step."""
    return steps_per_second * timestep_fs * 1e-6 * SECONDS_PER_DAY


class MDProgress:
    """A tqdm bar over MD steps (ETA included) showing atom-steps/s and ns/day.

    Args:
        total: steps this run will do; done: steps already done (resume); n_atoms; timestep_fs.
        enabled: False gives no output but still measures throughput.
    """

    def __init__(self, total: int, done: int, n_atoms: int, timestep_fs: float, enabled: bool = True) -> None:
        self.n_atoms = n_atoms
        self.timestep_fs = timestep_fs
        self.steps = 0
        self._start = time.perf_counter()
        self._last_postfix = self._start
        self._bar = tqdm(total=total, initial=done, unit="step", disable=not enabled, dynamic_ncols=True)

    @property
    def elapsed(self) -> float:
        """Wall seconds since the bar started."""
        return time.perf_counter() - self._start

    @property
    def steps_per_second(self) -> float:
        """MD steps per wall second so far in this run."""
        return self.steps / self.elapsed if self.steps else 0.0

    @property
    def atom_steps_per_second(self) -> float:
        """Atom-steps per wall second so far in this run."""
        return self.steps_per_second * self.n_atoms

    def update(self, steps: int = 1) -> None:
        """Record ``steps`` more steps; refresh the throughput about once a second."""
        self.steps += steps
        self._bar.update(steps)
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
