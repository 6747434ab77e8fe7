"""Tuned weights on disk: written next to a correction, loaded into a freshly loaded base model.

The file format only, beside the calculator that loads it (:class:`~softcalc.SoftCorrectedCalc` runs a
fine-tuned correction); the training loop that produces the weights is :mod:`softcalc.finetune`.
Pretrained weight files of the plugins are :mod:`softcalc.weight_files`.

A tuned-weights file is ``torch.save`` of a plain dict (read back with ``weights_only=True``, so
loading it runs no pickled code):

- ``format``: ``"softcalc.tuned-weights/1"``;
- ``base``: the fingerprint (family, name, weights SHA-256) of the model the weights were tuned from;
  they are loaded into that model only;
- ``state_dict``: the ``state_dict`` of the adapter's :attr:`~softcalc.torch_adapter.TorchAdapter.module`
  (all weights, μ_Z included).

A tuned adapter is identified by ``{base name}+tuned`` and the SHA-256 of this file, so a correction
calibrated on it is refused by any other model. The bytes are a function of the weights only, so the
hash is known before the file is written (:func:`tuned_weights_sha256`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from softcalc.errors import CorrectionFileError
from softcalc.fileio import atomic_path
from softcalc.torch_adapter import TorchAdapter
from softcalc.weight_files import weights_sha256

FORMAT = "softcalc.tuned-weights/1"


def _tuned_bytes(adapter: TorchAdapter) -> bytes:
    """The tuned-weights file of ``adapter``, as bytes."""
    payload = {
        "format": FORMAT,
        "base": dict(adapter.tuned_from or adapter.info.fingerprint),
        "state_dict": {k: v.detach().cpu() for k, v in adapter.module.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def tuned_weights_sha256(adapter: TorchAdapter) -> str:
    """SHA-256 (hex) of the file :func:`save_tuned_weights` would write for ``adapter`` now."""
    return hashlib.sha256(_tuned_bytes(adapter)).hexdigest()


def save_tuned_weights(adapter: TorchAdapter, path: Path) -> str:
    """Write ``adapter``'s weights to ``path`` atomically (temporary file, then rename); returns the SHA-256.

    ``adapter.info`` then names the file (``weights``, ``weights_sha256``).
    """
    data = _tuned_bytes(adapter)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    adapter.info = replace(adapter.info, weights=str(path), weights_sha256=sha256)
    return sha256


def load_tuned_weights(adapter: TorchAdapter, path: Path, sha256: str, source: str) -> None:
    """Load tuned weights into a freshly loaded base ``adapter``, in place.

    Args:
        adapter: the model the weights were tuned from, as loaded (not tuned already).
        path: the tuned-weights file.
        sha256: the SHA-256 the file must have (recorded when it was written).
        source: what names the file (a correction file), for messages.

    ``adapter.info`` then reads ``{base}+tuned`` with the file and its hash, and its reference energies
    are those of the tuned weights.

    Raises:
        CorrectionFileError: the file is missing, differs from the one recorded, is not a tuned-weights
            file, was tuned from another model, or holds weights that do not fit the model; the message
            names the file and the fix.
    """
    path = Path(path)
    named = f"tuned weights {path} (named by {source})"
    if not path.is_file():
        raise CorrectionFileError(
            f"{named} not found. Fix: keep the weights file beside the correction that names it (copy both "
            "together), or fine-tune again."
        )
    actual = weights_sha256(path)
    if actual != sha256:
        raise CorrectionFileError(
            f"{named} have SHA-256 {actual[:16]}..., but {source} records {sha256[:16]}...: the file was "
            f"changed or replaced. Fix: restore the file written together with {source}, or fine-tune again."
        )
    payload = _read(path, named)
    base = payload["base"]
    own = adapter.info.fingerprint
    if dict(base) != dict(own):
        raise CorrectionFileError(
            f"{named} were tuned from {_describe(base)}, but the loaded model is {_describe(own)}. "
            f"Fix: load the base model {base.get('name')} (as it was when tuned) and apply {source} to it."
        )
    _check_fits(adapter.module.state_dict(), payload["state_dict"], named, adapter.info.name)
    adapter.module.load_state_dict(payload["state_dict"])
    adapter.weights_changed()
    adapter.tuned_from = dict(base)
    adapter.info = replace(
        adapter.info, name=f"{base['name']}+tuned", weights=str(path), weights_sha256=actual
    )


def _read(path: Path, named: str) -> dict[str, Any]:
    """The payload of a tuned-weights file, checked for its format."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CorrectionFileError(
            f"{named} cannot be read as a tuned-weights file ({type(exc).__name__}: {str(exc)[:120]}). "
            "Fix: fine-tune again to write it anew."
        ) from exc
    if (
        not isinstance(payload, dict)
        or payload.get("format") != FORMAT
        or not isinstance(payload.get("base"), dict)
        or not isinstance(payload.get("state_dict"), dict)
    ):
        raise CorrectionFileError(
            f"{named} is not a softcalc tuned-weights file (format {FORMAT} with base and state_dict). "
            "Fix: fine-tune again to write it anew."
        )
    return payload


def _describe(fingerprint: Mapping[str, Any]) -> str:
    sha = fingerprint.get("weights_sha256")
    return (
        f"{fingerprint.get('name')} ({fingerprint.get('family')}, weights {sha[:12] if sha else 'unhashed'})"
    )


def _check_fits(own: Mapping[str, torch.Tensor], state: Mapping[str, Any], named: str, model: str) -> None:
    """Refuse a state whose entries or shapes differ from the model's before anything is copied."""
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    if missing or extra or shapes:
        what = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("other shape", shapes))
            if keys
        )
        raise CorrectionFileError(
            f"{named} do not fit model {model} ({what}). Fix: load the model the weights were tuned from."
        )
