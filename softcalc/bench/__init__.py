"""Benchmarks of softening and its correction on reference DFT data (``softcalc bench ...``)."""

from softcalc.bench.softening import recompute, run_softening

__all__ = ["recompute", "run_softening"]
