"""softcalc plugin for CHGNet (Deng et al. 2023): names, weight lookup and the model adapter.

Registered under the ``softcalc.models`` entry point as ``chgnet``. Serves ``chgnet`` (= 0.3.0),
``chgnet-0.3.0``, ``chgnet-0.2.0``, ``chgnet-r2scan`` and CHGNet checkpoint files by path.
Importing this package does not import torch or chgnet; :class:`ChgnetAdapter` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from softcalc_chgnet._plugin import ChgnetPlugin

__all__ = ["ChgnetAdapter", "ChgnetPlugin"]


def __getattr__(name: str) -> Any:
    if name == "ChgnetAdapter":
        from softcalc_chgnet._adapter import ChgnetAdapter

        return ChgnetAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
