"""Plugin discovery through the ``softcalc.models`` entry-point group, and :func:`load_model`.

A third party adds a uMLIP family by shipping a package that declares, in its ``pyproject.toml``::

    [project.entry-points."softcalc.models"]
    myfamily = "my_package:MyPlugin"

where ``MyPlugin`` subclasses :class:`ModelPlugin`. softcalc itself is never edited.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from abc import ABC, abstractmethod
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

from softcalc.errors import DeviceError, MissingDependencyError, UnknownModelError, WeightsNotFoundError
from softcalc.model import ModelAdapter, ModelCalculator
from softcalc.weight_files import corrupt_weights_error, model_dirs, weights_damage

ENTRY_POINT_GROUP = "softcalc.models"
#: file endings that mark a model name as a path to weights (for the missing-weights error)
WEIGHT_SUFFIXES = frozenset({".model", ".pt", ".pth", ".tar", ".ckpt", ".json", ".toy"})


class ModelPlugin(ABC):
    """Serves one uMLIP family: knows its model names and how to load them.

    Class attributes:
        family: short family name (``"chgnet"``), also usable as a ``family:`` prefix.
        package: importable module the family needs (``"chgnet"``), checked before loading.
        extra: the softcalc extra that installs it (``pip install 'softcalc[<extra>]'``).
    """

    family: ClassVar[str]
    package: ClassVar[str | None] = None
    extra: ClassVar[str] = ""

    @abstractmethod
    def names(self) -> dict[str, str]:
        """Model names this plugin serves (lower case), each with a one-line description."""

    def claims_path(self, path: Path) -> bool:
        """True when ``path`` (an existing file or directory) is a model file of this family."""
        return False

    @abstractmethod
    def load(self, name_or_path: str, device: str = "cpu", dtype: str | None = None) -> ModelAdapter:
        """Load a model by one of :meth:`names` or by path."""

    def require_package(self) -> None:
        """Raise :class:`MissingDependencyError` when the family's package is not installed."""
        if self.package and importlib.util.find_spec(self.package) is None:
            raise MissingDependencyError(self.package, self.extra or self.family, f"the {self.family} plugin")


#: entry points that failed to import, with the reason (reported when a model is not found)
_BROKEN: dict[str, str] = {}


@cache
def plugins() -> dict[str, ModelPlugin]:
    """All installed plugins, keyed by family, discovered from entry points (cached).

    A plugin that fails to import is skipped with a warning (a broken third-party package must not
    break the others); :func:`load_model` names it when the requested model is not found.
    """
    found: dict[str, ModelPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            _BROKEN[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
            warnings.warn(f"softcalc plugin {ep.name!r} failed to import ({exc}); skipped", stacklevel=2)
            continue
        plugin = cls() if isinstance(cls, type) else cls
        found[plugin.family] = plugin
    return found


def available_models() -> dict[str, dict[str, str]]:
    """Model names by family, with descriptions: ``{family: {name: description}}``."""
    return {family: p.names() for family, p in sorted(plugins().items())}


def _resolve(name_or_path: str) -> tuple[ModelPlugin, str]:
    registry = plugins()
    family, sep, rest = name_or_path.partition(":")
    if sep and family.lower() in registry and not Path(name_or_path).exists():
        return registry[family.lower()], rest
    key = name_or_path.lower()
    for plugin in registry.values():
        if key in plugin.names():
            return plugin, name_or_path
    path = _model_path(name_or_path)
    if path.exists():
        for plugin in registry.values():
            if plugin.claims_path(path):
                return plugin, str(path)
        if weights_damage(path) is not None:  # e.g. a truncated .pt no plugin can open to recognise
            raise corrupt_weights_error(path, "model")
        raise UnknownModelError(
            f"no installed plugin recognises the model {'folder' if path.is_dir() else 'file'} {path}. "
            f"Fix: prefix the family, e.g. 'mace:{path}' (families: {', '.join(registry) or 'none'})."
        )
    if path.suffix in WEIGHT_SUFFIXES or os.sep in name_or_path:
        searched = [str(Path(name_or_path).expanduser())]
        if not path.is_absolute():
            searched += [str(d / name_or_path) for d in model_dirs()]
        raise WeightsNotFoundError(f"model file {name_or_path!r}", searched)
    known = ", ".join(n for p in registry.values() for n in p.names()) or "none"
    broken = "".join(f" Plugin {name!r} failed to import ({why})." for name, why in _BROKEN.items())
    raise UnknownModelError(
        f"unknown model {name_or_path!r}: it is neither a model name nor an existing path. "
        f"Known names: {known}.{broken} Fix: use one of them, a path to weights, or 'family:path'."
    )


def _model_path(name_or_path: str) -> Path:
    """The path as given, or relative to a ``$SOFTCALC_MODEL_DIR`` folder when only it exists there."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.is_absolute():
        return path
    for base in model_dirs():
        if (base / path).exists():
            return base / path
    return path


def load_adapter(name_or_path: str | Path, device: str = "cpu", dtype: str | None = None) -> ModelAdapter:
    """Load a model and return its :class:`ModelAdapter` (batch and per-atom interfaces)."""
    plugin, name = _resolve(str(name_or_path))
    plugin.require_package()
    return plugin.load(name, device=check_device(device), dtype=dtype)


def check_device(device: str) -> str:
    """Validate a torch device string (``"cpu"``, ``"cuda"``, ``"cuda:N"``) before a model is moved there.

    Raises :class:`DeviceError` naming the problem and the fix instead of torch's own error from
    deep inside model loading.
    """
    if device == "cpu":
        return device
    try:
        import torch  # the shipped families run on torch; a plugin without it checks its own devices
    except ImportError:
        return device
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(
            f"device {device!r} is not a torch device. Fix: use 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if parsed.type == "cpu":
        return str(device)
    if parsed.type != "cuda":
        raise DeviceError(f"device {device!r}: softcalc runs models on 'cpu' or 'cuda' only.")
    if not torch.cuda.is_available():
        why = "no CUDA device is visible" if torch.version.cuda else "this torch build has no CUDA support"
        raise DeviceError(
            f"device {device!r} requested but {why} (torch {torch.__version__}). "
            "Fix: use device 'cpu', or install a CUDA build of torch on a machine with a GPU."
        )
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise DeviceError(
            f"device {device!r}: only {count} CUDA device(s) visible (cuda:0 to cuda:{count - 1}). "
            "Fix: pick one of them or set CUDA_VISIBLE_DEVICES."
        )
    return str(device)


def load_model(name_or_path: str | Path, device: str = "cpu", dtype: str | None = None) -> ModelCalculator:
    """Load a uMLIP by name (``"chgnet"``, ``"m3gnet"``, ``"mace-mp-0"``...) or weights path.

    Weights are looked up in this order: the explicit path, ``$SOFTCALC_MODEL_DIR``, then the
    family's own cache or download. Returns the base ASE calculator; its ``.model`` attribute is the
    :class:`ModelAdapter` and ``.info`` the :class:`~softcalc.model.ModelInfo`.
    """
    return ModelCalculator(load_adapter(name_or_path, device=device, dtype=dtype))
