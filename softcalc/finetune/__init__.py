"""Few-shot fine-tuning of uMLIPs on DFT frames, one training loop for every model family.

:func:`fine_tune` trains a copy of a :class:`~softcalc.torch_adapter.TorchAdapter` with
:class:`FineTuneSettings` and returns a :class:`TuneResult`; :func:`save_tuned_weights` and
:func:`load_tuned_weights` store the tuned weights and load them into a freshly loaded base model.
See :mod:`softcalc.finetune.training` for the design.

The names are imported on first use, so that :mod:`softcalc.calculator` can load tuned weights
(:mod:`softcalc.finetune.weights`, which needs only the adapter interface) without importing the
training loop and everything above it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> submodule that defines it
_WHERE = {
    "FineTuneSettings": "settings",
    "TuneResult": "training",
    "fine_tune": "training",
    "load_tuned_weights": "weights",
    "save_tuned_weights": "weights",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - the named class or function
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
