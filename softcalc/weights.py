"""Locating and fingerprinting model weights.

Lookup order for every plugin: an explicit path, then ``$SOFTCALC_MODEL_DIR``, then the family's
own cache or download (done by the plugin when :func:`locate_weights` finds nothing).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

MODEL_DIR_ENV = "SOFTCALC_MODEL_DIR"


def model_dirs() -> list[Path]:
    """Folders named by ``$SOFTCALC_MODEL_DIR`` (``os.pathsep``-separated), in order."""
    value = os.environ.get(MODEL_DIR_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def locate_weights(relative_candidates: Sequence[str], searched: list[str]) -> Path | None:
    """Find the first of ``relative_candidates`` under ``$SOFTCALC_MODEL_DIR``.

    Every path tried is appended to ``searched`` so a later error can list them. Returns None when
    nothing is found (the plugin then tries the family's own cache or download).
    """
    dirs = model_dirs()
    if not dirs:
        searched.append(f"${MODEL_DIR_ENV} (not set)")
    for base in dirs:
        for rel in relative_candidates:
            path = base / rel
            searched.append(str(path))
            if path.exists():
                return path
    return None


def weights_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file, or of all files in a weights directory (sorted by name)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
