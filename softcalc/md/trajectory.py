"""HDF5 MD trajectories that survive a kill, and their readers.

Layout (schema ``softcalc.md/1``)::

    /                 attrs: schema, metadata (model, correction, versions, command...), n_frames,
                      status (running, complete, interrupted/unstable at step ...; "running" after a kill),
                      fingerprint (JSON: model calculator, family, name, weights_sha256 and the applied
                      correction, compared on resume; absent in files of softcalc before it),
                      resumed (JSON list of {step, command, time}, one per resume)
    /atoms            numbers (N,), masses (N,) amu, pbc (3,)
    /frames/<name>    one row per frame, chunked, gzip-compressed, growing along axis 0:
                      positions (F,N,3) Å, velocities (F,N,3) Å/fs, cell (F,3,3) Å,
                      potential_energy (F,) eV, kinetic_energy (F,) eV, stress (F,6) eV/Å³,
                      temperature (F,) K, step (F,), time (F,) fs, optional forces (F,N,3) eV/Å
    /checkpoint/0, /1 the exact state at a committed frame (positions, momenta, cell, integrator
                      variables, numpy RNG state); written alternately so one is always intact

Frames are buffered in memory and written only by :meth:`TrajectoryWriter.commit`, which writes
the rows, then a checkpoint into the slot not holding the committed one, then the frame counter
``n_frames`` last, then flushes. Rows beyond ``n_frames`` are never complete and are truncated
on resume; the checkpoint whose ``n_frames`` equals the file's is the state to restart from.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from softcalc.fileio import atomic_path
from softcalc.md.errors import TrajectoryFileError

SCHEMA = "softcalc.md/1"
#: Velocities are stored in Å/fs (ASE's internal unit is Å/(Å·sqrt(amu/eV))).
VELOCITY_UNIT = units.fs

_SCALARS = ("potential_energy", "kinetic_energy", "temperature", "time")


def frame_shapes(n_atoms: int, forces: bool) -> dict[str, tuple[tuple[int, ...], str]]:
    """Per-frame shape and dtype of every frame dataset."""
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "positions": ((n_atoms, 3), "f8"),
        "velocities": ((n_atoms, 3), "f8"),
        "cell": ((3, 3), "f8"),
        "stress": ((6,), "f8"),
        "step": ((), "i8"),
        **{name: ((), "f8") for name in _SCALARS},
    }
    if forces:
        shapes["forces"] = ((n_atoms, 3), "f8")
    return shapes


def estimate_bytes(n_frames: int, n_atoms: int, forces: bool) -> int:
    """Upper estimate of the file size (uncompressed frames plus 1 MiB of overhead) in bytes."""
    per_frame = sum(8 * int(np.prod(shape)) for shape, _ in frame_shapes(n_atoms, forces).values())
    return n_frames * per_frame + 4 * 8 * 3 * n_atoms + (1 << 20)


def check_output(path: str | Path, n_frames: int, n_atoms: int, forces: bool) -> None:
    """Fail before a run when ``path`` cannot be written or its disk lacks room for the estimate."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TrajectoryFileError(
            f"cannot write the trajectory {path}: {exc.strerror or exc}. "
            "Fix: choose a folder you can write to (--traj)."
        ) from exc
    need = estimate_bytes(n_frames, n_atoms, forces)
    free = shutil.disk_usage(path.parent).free
    if need > free:
        raise TrajectoryFileError(
            f"the trajectory needs up to {need / 2**20:.1f} MiB but only {free / 2**20:.1f} MiB are free "
            f"on the disk holding {path.parent}. Fix: free space, write elsewhere, or save fewer frames "
            "(larger --every, no --forces)."
        )


@dataclass
class Checkpoint:
    """The full dynamical state at one frame: enough to continue the run bit for bit.

    Attributes: step (MD steps done), positions Å, momenta (ASE units amu·Å/internal time), cell Å,
    integrator variables (see :func:`softcalc.md.ensembles.integrator_state`), numpy bit-generator
    state (None for deterministic integrators).
    """

    step: int
    positions: np.ndarray
    momenta: np.ndarray
    cell: np.ndarray
    integrator: dict[str, np.ndarray] = field(default_factory=dict)
    rng_state: dict[str, Any] | None = None


def _attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value


def _decoded(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """Root attributes as Python values (JSON strings decoded where they hold JSON objects or lists)."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def _locked(exc: OSError) -> bool:
    """True when HDF5 could not open a file because another process holds its lock (``unable to lock
    file, errno = 11``): a run writing it, or, for a write, any process that has it open."""
    return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock file" in str(exc)


def _open_error(exc: OSError, path: Path, mode: str, action: str) -> TrajectoryFileError:
    """The error for a failed ``h5py.File(path, mode)``: a file locked by another process is named as such."""
    if not _locked(exc):
        return TrajectoryFileError(f"cannot {action} {path}: {exc}")
    who = (
        "it is being written by another process (an MD run still going)"
        if mode == "r"
        else "it is being written by another process, or another process has it open (an MD run still "
        "going, or a reader such as `softcalc md-analyze`)"
    )
    return TrajectoryFileError(
        f"cannot {action} {path}: {who}; HDF5 refused to lock it (errno {exc.errno or errno.EAGAIN}). "
        "Fix: wait for that process to finish, or stop it (an interrupted run stays resumable), and try "
        f"again; or copy the file (cp {path} copy.h5) and use the copy."
    )


def _open_softcalc(path: Path, mode: str, action: str) -> h5py.File:
    try:
        h5 = h5py.File(path, mode)
    except OSError as exc:
        raise _open_error(exc, path, mode, action) from exc
    if h5.attrs.get("schema") != SCHEMA:
        h5.close()
        raise TrajectoryFileError(f"{path} is not a softcalc MD trajectory (schema {SCHEMA}).")
    return h5


def _last_checkpoint(h5: h5py.File, path: Path) -> Checkpoint:
    n = int(h5.attrs["n_frames"])
    checkpoint = _read_checkpoint(h5, n)
    if checkpoint is None:
        raise TrajectoryFileError(
            f"{path} holds no checkpoint for its {n} committed frames, so it cannot be resumed. "
            "Fix: start it again with --overwrite, or write a new file."
        )
    return checkpoint


@dataclass
class StoredRun:
    """What a trajectory file records about the run that wrote it, read without changing the file.

    Attributes:
        metadata: root attributes, decoded (settings, model, fingerprint, command...).
        numbers: atomic numbers (N,). masses: amu (N,). pbc: (3,).
        checkpoint: the state to restart from (last committed frame).
        has_forces: True when frames store forces.
    """

    metadata: dict[str, Any]
    numbers: np.ndarray
    masses: np.ndarray
    pbc: np.ndarray
    checkpoint: Checkpoint
    has_forces: bool


def read_run(path: str | Path) -> StoredRun:
    """The run recorded in ``path`` (opened read-only: a refused resume leaves the file as it was)."""
    path = Path(path)
    h5 = _open_softcalc(path, "r", "read the trajectory")
    try:
        checkpoint = _last_checkpoint(h5, path)
        return StoredRun(_decoded(h5.attrs), h5["atoms/numbers"][()], h5["atoms/masses"][()],
                         h5["atoms/pbc"][()], checkpoint, "forces" in h5["frames"])
    finally:
        h5.close()


class TrajectoryWriter:
    """Appends frames to a softcalc HDF5 trajectory and commits them with a restart checkpoint."""

    def __init__(self, h5: h5py.File) -> None:
        self._h5 = h5
        self.path = Path(h5.filename)
        self.n_committed = int(h5.attrs["n_frames"])
        self._pending: list[tuple[Mapping[str, np.ndarray], Checkpoint]] = []

    @classmethod
    def create(
        cls,
        path: str | Path,
        atoms: Atoms,
        metadata: Mapping[str, Any],
        *,
        forces: bool = False,
        chunk_frames: int = 16,
    ) -> TrajectoryWriter:
        """Create (overwrite) ``path`` for ``atoms``; metadata values become root attributes.

        An existing file another process has open is refused (TrajectoryFileError) and left as it was:
        HDF5's ``"w"`` truncates a file before it finds the lock held, so the lock is probed first.
        """
        if Path(path).is_file():
            try:
                h5py.File(path, "r+").close()
            except OSError as exc:
                if _locked(exc):
                    raise _open_error(exc, Path(path), "w", "create the trajectory") from exc
        try:
            h5 = h5py.File(path, "w")
        except OSError as exc:
            raise _open_error(exc, Path(path), "w", "create the trajectory") from exc
        h5.attrs["schema"] = SCHEMA
        for key, value in metadata.items():
            if value is not None:
                h5.attrs[key] = _attr(value)
        group = h5.create_group("atoms")
        group["numbers"] = atoms.numbers
        group["masses"] = atoms.get_masses()
        group["pbc"] = atoms.pbc
        frames = h5.create_group("frames")
        n = len(atoms)
        rows = max(1, min(chunk_frames, (1 << 20) // (24 * n)))
        for name, (shape, dtype) in frame_shapes(n, forces).items():
            frames.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(rows, *shape),
                compression="gzip", compression_opts=1, shuffle=True,
            )
        h5.create_group("checkpoint")
        h5.attrs["n_frames"] = 0
        h5.attrs["status"] = "running"
        h5.flush()
        return cls(h5)

    @classmethod
    def resume(cls, path: str | Path) -> tuple[TrajectoryWriter, Checkpoint]:
        """Reopen ``path``, drop incomplete rows, and return the writer and the last checkpoint."""
        path = Path(path)
        if not path.is_file():
            raise TrajectoryFileError(
                f"cannot resume {path}: no such trajectory. Fix: drop --resume to start a new run."
            )
        h5 = _open_softcalc(path, "r+", "resume")
        try:
            checkpoint = _last_checkpoint(h5, path)
        except TrajectoryFileError:
            h5.close()
            raise
        n = int(h5.attrs["n_frames"])
        for ds in h5["frames"].values():
            if ds.shape[0] != n:
                ds.resize(n, axis=0)
        h5.attrs["status"] = "running"
        h5.flush()
        return cls(h5), checkpoint

    @property
    def attrs(self) -> h5py.AttributeManager:
        """Root attributes (metadata)."""
        return self._h5.attrs

    @property
    def has_forces(self) -> bool:
        """True when frames store forces."""
        return "forces" in self._h5["frames"]

    @property
    def n_pending(self) -> int:
        """Frames appended but not yet committed."""
        return len(self._pending)

    def append(self, row: Mapping[str, np.ndarray], checkpoint: Checkpoint) -> None:
        """Buffer one frame and the state it was taken in (nothing touches the file)."""
        self._pending.append((row, checkpoint))

    def commit(self) -> None:
        """Write buffered frames and the last one's checkpoint, then the frame counter, then flush."""
        if not self._pending:
            return
        rows = [row for row, _ in self._pending]
        checkpoint = self._pending[-1][1]
        frames = self._h5["frames"]
        start, count = self.n_committed, len(rows)
        total = start + count
        try:
            for name, ds in frames.items():
                ds.resize(total, axis=0)
                ds[start:] = np.stack([np.asarray(row[name]) for row in rows])
            _write_checkpoint(self._h5, checkpoint, total)
            self._h5.attrs["n_frames"] = total
            self._h5.flush()
        except OSError as exc:
            raise TrajectoryFileError(
                f"writing {self.path} failed ({exc}); it keeps its {start} committed frames. "
                "Fix: free disk space, then rerun with --resume."
            ) from exc
        self.n_committed = total
        self._pending.clear()

    def close(self, status: str | None = None) -> None:
        """Commit what is buffered, record ``status`` (e.g. ``"complete"``) and close the file."""
        if not self._h5.id.valid:
            return
        try:
            self.commit()
            if status is not None:
                self._h5.attrs["status"] = status
                self._h5.flush()
        finally:
            self._h5.close()


def _write_checkpoint(h5: h5py.File, cp: Checkpoint, n_frames: int) -> None:
    committed = int(h5.attrs["n_frames"])
    slots = h5["checkpoint"]
    stale = [name for name in ("0", "1") if name not in slots or slots[name].attrs["n_frames"] != committed]
    slot = slots.require_group(stale[0])
    arrays = {"positions": cp.positions, "momenta": cp.momenta, "cell": cp.cell}
    arrays.update({f"integrator/{key}": value for key, value in cp.integrator.items()})
    for name, value in arrays.items():
        value = np.asarray(value, dtype=float)
        if name in slot and slot[name].shape == value.shape:
            slot[name][...] = value
        else:
            if name in slot:
                del slot[name]
            slot.create_dataset(name, data=value)
    slot.attrs["step"] = cp.step
    slot.attrs["rng_state"] = json.dumps(cp.rng_state)
    slot.attrs["n_frames"] = n_frames


def _read_checkpoint(h5: h5py.File, n_frames: int) -> Checkpoint | None:
    for slot in h5["checkpoint"].values():
        if slot.attrs.get("n_frames") != n_frames:
            continue
        integrator = {name: ds[()] for name, ds in slot.get("integrator", {}).items()}
        return Checkpoint(
            step=int(slot.attrs["step"]),
            positions=slot["positions"][()],
            momenta=slot["momenta"][()],
            cell=slot["cell"][()],
            integrator=integrator,
            rng_state=json.loads(slot.attrs["rng_state"]),
        )
    return None


class Trajectory:
    """Read-only view of the committed frames of a softcalc MD trajectory.

    ``traj[i]`` is an :class:`ase.Atoms` with velocities and a single-point calculator holding the
    potential energy, stress and (when stored) forces. Arrays: ``traj.array("temperature")``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._h5 = _open_softcalc(self.path, "r", "read the trajectory")
        self.n_frames = int(self._h5.attrs["n_frames"])
        self.numbers = self._h5["atoms/numbers"][()]
        self.masses = self._h5["atoms/masses"][()]
        self.pbc = self._h5["atoms/pbc"][()]

    @property
    def metadata(self) -> dict[str, Any]:
        """Root attributes (JSON strings decoded where they hold JSON objects)."""
        return _decoded(self._h5.attrs)

    @property
    def fields(self) -> list[str]:
        """Names of the per-frame datasets."""
        return sorted(self._h5["frames"])

    def array(self, name: str, frames: slice | None = None) -> np.ndarray:
        """Committed rows of frame dataset ``name`` (e.g. ``"positions"``, ``"time"``)."""
        sl = frames or slice(None)
        return self._h5["frames"][name][: self.n_frames][sl]

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, index: int) -> Atoms:
        if not -self.n_frames <= index < self.n_frames:
            raise IndexError(f"frame {index} out of range ({self.n_frames} frames)")
        index %= self.n_frames
        frames = self._h5["frames"]
        atoms = Atoms(numbers=self.numbers, positions=frames["positions"][index], cell=frames["cell"][index],
                      pbc=self.pbc, masses=self.masses)
        atoms.set_velocities(frames["velocities"][index] / VELOCITY_UNIT)
        results: dict[str, Any] = {"energy": float(frames["potential_energy"][index])}
        if "forces" in frames:
            results["forces"] = frames["forces"][index]
        stress = frames["stress"][index]
        if np.isfinite(stress).all():
            results["stress"] = stress
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update(step=int(frames["step"][index]), time_fs=float(frames["time"][index]))
        return atoms

    def __iter__(self) -> Iterator[Atoms]:
        return (self[i] for i in range(self.n_frames))

    def to_atoms(self, every: int = 1) -> list[Atoms]:
        """Every ``every``-th committed frame as ASE Atoms."""
        return [self[i] for i in range(0, self.n_frames, every)]

    def close(self) -> None:
        """Close the file."""
        self._h5.close()

    def __enter__(self) -> Trajectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_extxyz(traj_path: str | Path, out_path: str | Path, every: int = 1) -> int:
    """Write the committed frames of ``traj_path`` as extended XYZ; returns the number of frames."""
    with Trajectory(traj_path) as traj:
        images = traj.to_atoms(every)
    with atomic_path(out_path) as tmp:
        write(tmp, images, format="extxyz")
    return len(images)
