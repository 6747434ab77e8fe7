"""Crash-safe file writing: write to a temporary file in the same folder, then rename.

Before any model is loaded, every command passes its outputs to :func:`check_outputs`
(:func:`check_writable` for each, no output named twice, none over an input), so an unwritable
``--out`` fails in a second rather than after minutes of work, as an :class:`OutputPathError`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from softcalc.errors import SoftcalcError


class OutputPathError(SoftcalcError, OSError):
    """An output path cannot be written: its folder is missing and cannot be made, is not writable,
    or the path names a folder where a file is expected (or a file where a folder is)."""


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    inputs: Iterable[str | Path] = (),
    folders: Collection[str] = (),
) -> None:
    """:func:`check_writable` for each output of a command, and no output twice or over an input.

    Args:
        outputs: option -> path (``{"--out": args.out, "--plot": args.plot}``); None: not asked for.
        inputs: files the command reads; an output naming one of them would destroy it.
        folders: the options in ``outputs`` that name folders.

    Raises:
        OutputPathError: the first problem found, with its fix.
    """
    seen: dict[Path, str] = {}
    read = {Path(p).expanduser().resolve(): str(p) for p in inputs if p is not None}
    for option, path in outputs.items():
        if path is None:
            continue
        check_writable(path, option, folder=option in folders)
        resolved = Path(path).expanduser().resolve()
        if resolved in seen:
            raise OutputPathError(
                f"{seen[resolved]} and {option} both name {path}: one would overwrite the other. "
                "Fix: give them different paths."
            )
        if resolved in read:
            raise OutputPathError(
                f"{option} {path} is also an input of this command and would be overwritten. "
                "Fix: write the output to another path."
            )
        seen[resolved] = option


def check_writable(path: str | Path, option: str = "", folder: bool = False) -> Path:
    """Fail now, not after the work, when ``path`` cannot be written; returns it as a Path.

    The nearest existing folder on the way to ``path`` must be a folder that a file can be created
    in (tested by creating and removing an empty file, which honours permissions, read-only file
    systems and ACLs alike; no folder is created). A ``path`` that exists must be a file (a folder
    when ``folder``).

    Args:
        path: the output file (or, with ``folder``, the output folder).
        option: the option that named it (``"--out"``), quoted in the message.
        folder: ``path`` is a folder to write files into.

    Raises:
        OutputPathError: what is wrong with the path and how to fix it.
    """
    path = Path(path).expanduser()
    named = f"{option} {path}" if option else str(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputPathError(f"{named} is a file, but a folder is expected. Fix: give a folder path.")
    if not folder and path.is_dir():
        raise OutputPathError(f"{named} is a folder, but a file is expected. Fix: give a file path.")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(
            f"cannot write {named}: {existing} is a file, not a folder. Fix: check the path."
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".softcalc-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(
            f"cannot write {named}: {existing} is not writable ({exc.strerror or exc}). "
            "Fix: choose a folder you can write to."
        ) from exc
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    A crash or kill before the end leaves any previous ``path`` untouched (never half-written).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should be readable as usual
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    """``json.dumps`` default: numpy scalars and arrays, paths."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (numpy scalars and arrays allowed)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=json_default, allow_nan=True) + "\n")
