"""Few-shot fine-tuning of uMLIPs on DFT frames, one training loop for every model family.

:func:`fine_tune` trains a copy of a model that supports fine-tuning (a
:class:`~softcalc.torch_adapter.TorchAdapter` whose plugin implements the fine-tuning hooks) with
:class:`FineTuneSettings` and returns a :class:`TuneResult`; :func:`save_tuned_weights` and
:func:`load_tuned_weights` (from :mod:`softcalc.tuned_weights`, the file format, which the calculator
needs without the training loop) store the tuned weights and load them into a freshly loaded base
model. See :mod:`softcalc.finetune.training` for the design.

The names are imported on first use, so that importing :mod:`softcalc.finetune.settings` (the CLI's
defaults) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> module that defines it
_WHERE = {
    "FineTuneSettings": "softcalc.finetune.settings",
    "TuneResult": "softcalc.finetune.training",
    "fine_tune": "softcalc.finetune.training",
    "load_tuned_weights": "softcalc.tuned_weights",
    "save_tuned_weights": "softcalc.tuned_weights",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - the named class or function
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
