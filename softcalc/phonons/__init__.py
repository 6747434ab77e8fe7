"""Periodic phonons from finite-difference force constants, with phonopy as reference and interop."""
