"""softcalc's version, read from the installed package metadata (the one version lives in pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("softcalc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
