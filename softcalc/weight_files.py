"""Pretrained model weight files: locating, fingerprinting and reading them (for plugins).

Weights that softcalc's own fine-tuning writes are :mod:`softcalc.tuned_weights`.

Lookup order for every plugin: an explicit path, then ``$SOFTCALC_MODEL_DIR``, then the family's
own cache or download (done by the plugin when :func:`locate_weights` finds nothing).

Every plugin reads its weights inside :func:`loading_weights`, which turns what torch, pickle,
zipfile, json or the model package raise on a damaged file (``PytorchStreamReader failed ...``,
``UnpicklingError``, ``EOFError``, matgl's ``Unknown error occurred``) into one
:class:`~softcalc.errors.CorruptWeightsError` that names the file, what is wrong with it
(:func:`weights_damage`) and how to get it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from softcalc.errors import CorruptWeightsError, SoftcalcError

MODEL_DIR_ENV = "SOFTCALC_MODEL_DIR"
#: file endings of torch-serialised weights: a zip archive (torch >= 1.6) or a legacy pickle
TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt", ".model", ".pkl")
#: exceptions that say a file's bytes are bad, whatever else the loader reports around them
_DAMAGE_SIGNS = ("PytorchStreamReader", "invalid load key", "Ran out of input", "central directory",
                 "unpickling stack", "truncated", "corrupt")


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


def weights_damage(path: str | Path) -> tuple[Path, str] | None:
    """The first visibly damaged file of a weights file or folder, and what is wrong with it.

    Checks only what can be told without the model package: empty files, JSON that does not parse,
    torch files that are neither a complete zip archive (a truncated one lacks its central
    directory) nor a pickle, zip members whose checksum fails. Returns None when nothing is found
    (the file may still be damaged in a way only its loader sees).
    """
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        problem = _file_damage(file)
        if problem:
            return file, problem
    return None


def _file_damage(file: Path) -> str | None:
    suffix = file.suffix.lower()
    if suffix not in (*TORCH_SUFFIXES, ".json"):
        return None
    try:
        size = file.stat().st_size
        if size == 0:
            return "empty (0 bytes)"
        if suffix == ".json":
            json.loads(file.read_text(encoding="utf-8"))
            return None
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                bad = archive.testzip()
            return f"zip member {bad} fails its checksum (bytes overwritten)" if bad else None
        with open(file, "rb") as handle:
            head = handle.read(1)
    except UnicodeDecodeError:
        return "not a text file (JSON expected)"
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}: truncated?)"
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"broken zip archive ({exc})"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if head != b"\x80":  # torch's legacy format is a pickle (protocol 2+ starts with 0x80)
        return f"truncated or not a torch file ({size} bytes: no complete zip archive, no pickle)"
    return None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (matgl wraps torch's error in 'Unknown error occurred')."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def _first_sentence(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    cut = text.find(". ")
    text = text[: cut + 1] if 0 < cut < limit else text
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def default_how_to_get(path: str | Path) -> str:
    """The generic fix for a damaged weights file: get it again from where it came from."""
    path = Path(path)
    under = next((d for d in model_dirs() if path.resolve().is_relative_to(d.resolve())), None)
    where = f" into {under} (${MODEL_DIR_ENV})" if under is not None else ""
    return (
        f"get {path.name} again (download it or copy it anew{where} from its source; compare its size "
        "and SHA-256 with the original) and load it again"
    )


def corrupt_weights_error(
    path: str | Path, family: str, exc: BaseException | None = None, how_to_get: str | None = None
) -> CorruptWeightsError:
    """The error for weights at ``path`` that failed to load with ``exc``: file, problem, fix (one line)."""
    path = Path(path)
    found = weights_damage(path) if path.exists() else None
    if found is not None:
        file, problem = found
        what = f"the {family} weights file {file} is damaged: {problem}"
    else:
        file = path
        cause = _root_cause(exc) if exc is not None else None
        reason = _first_sentence(cause) if cause is not None else "unknown reason"
        if isinstance(cause, FileNotFoundError) and cause.filename:
            what = f"the {family} weights {path} are incomplete: {cause.filename} is missing"
        elif cause is not None and any(sign in str(cause) for sign in _DAMAGE_SIGNS):
            what = f"the {family} weights {path} are damaged ({reason})"
        else:
            what = (
                f"the {family} weights {path} could not be loaded ({reason}): the file is damaged, not a "
                f"{family} model, or was written by another version of the {family} package"
            )
    fix = how_to_get or default_how_to_get(file)
    return CorruptWeightsError(f"{what}. Fix: {fix}.", path=str(file))


@contextmanager
def loading_weights(path: str | Path, family: str, how_to_get: str | None = None) -> Iterator[None]:
    """Context for reading the weights at ``path``: what a damaged file raises becomes CorruptWeightsError.

    Use it around the read only (``torch.load``, the model package's loader, building the module from
    the state dict), not around moving the model to a device or evaluating it. The file (or folder)
    is checked first with :func:`weights_damage`: torch does not verify the checksums of its zip
    archives, so overwritten bytes inside a tensor would otherwise load as wrong weights, silently.

    Args:
        path: the weights file or folder being read.
        family: model family as users know it (``"MACE"``, ``"matgl"``, ``"CHGNet"``).
        how_to_get: the fix, e.g. "reinstall chgnet (pip install --force-reinstall chgnet)";
            default :func:`default_how_to_get`.

    Raises:
        CorruptWeightsError: the file is visibly damaged, or the read failed. softcalc's own errors, a
            missing package (ImportError) and running out of memory pass through unchanged.
    """
    if Path(path).exists() and weights_damage(path) is not None:
        raise corrupt_weights_error(path, family, None, how_to_get)
    try:
        yield
    except (SoftcalcError, ImportError, MemoryError):
        raise
    except Exception as exc:
        if "out of memory" in str(exc).lower():
            raise
        raise corrupt_weights_error(path, family, exc, how_to_get) from exc
