"""Where reference data lives and how it is identified: ``$SOFTCALC_DATA_DIR`` look-up and content hashes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from softcalc.errors import DataError

#: environment variable naming the folder that relative data paths are looked up in
DATA_DIR_ENV = "SOFTCALC_DATA_DIR"


def file_sha256(paths: Sequence[Path]) -> str:
    """SHA-256 over the contents of ``paths`` (in the given order)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def resolve_data_path(path: str | Path) -> Path:
    """``path`` as given, or relative to ``$SOFTCALC_DATA_DIR`` when it does not exist as given."""
    path = Path(path).expanduser()
    if path.exists():
        return path
    base = os.environ.get(DATA_DIR_ENV)
    if base and (Path(base) / path).exists():
        return Path(base) / path
    where = f" or under ${DATA_DIR_ENV}={base}" if base else f" (${DATA_DIR_ENV} is not set)"
    raise DataError(f"data path {path} does not exist{where}. Fix: give an existing file or folder.")


#: the shared unit cells of several chemistries (phonopy's example sets), relative to ``$SOFTCALC_DATA_DIR``
REFERENCE_STRUCTURES = "phonons/phonopy-examples"


def reference_structures() -> dict[str, Path]:
    """The shared unit cells of other chemistries, by name: ``{name: POSCAR file}`` (VASP format, sorted by
    name), {} when the shared data is not there. The one place that knows where they lie."""
    try:
        folder = resolve_data_path(REFERENCE_STRUCTURES)
    except DataError:
        return {}
    return {path.parent.name: path for path in sorted(folder.glob("*/POSCAR-unitcell"))}
