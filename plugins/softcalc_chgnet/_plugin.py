"""CHGNet model names, checkpoint lookup and the :class:`ChgnetPlugin` entry point."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from softcalc.errors import UnknownModelError, WeightsNotFoundError
from softcalc.model import ModelAdapter
from softcalc.registry import ModelPlugin
from softcalc.weight_files import locate_weights

#: pretrained checkpoints shipped in the chgnet wheel: name -> (version, path under chgnet/pretrained/)
PRETRAINED = {
    "chgnet-0.3.0": ("0.3.0", "0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar"),
    "chgnet-0.2.0": ("0.2.0", "0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar"),
    "chgnet-r2scan": ("r2scan", "r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar"),
}
ALIASES = {"chgnet": "chgnet-0.3.0"}
DESCRIPTIONS = {
    "chgnet": "CHGNet 0.3.0 (alias of chgnet-0.3.0)",
    "chgnet-0.3.0": "CHGNet 0.3.0, MPtrj (PBE/PBE+U), 6 Å atom graph",
    "chgnet-0.2.0": "CHGNet 0.2.0, MPtrj (PBE/PBE+U), 5 Å atom graph (deprecated upstream)",
    "chgnet-r2scan": "CHGNet 0.3.0 transfer-learned to MP r2SCAN",
}
#: file suffixes of CHGNet checkpoints
CHECKPOINT_SUFFIXES = (".pth.tar", ".pt", ".pth")


def packaged_dir() -> Path | None:
    """``chgnet/pretrained`` inside the installed chgnet wheel (None when chgnet is absent)."""
    spec = importlib.util.find_spec("chgnet")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained"


def find_checkpoint(name: str) -> Path:
    """Checkpoint file of a pretrained model name: ``$SOFTCALC_MODEL_DIR/chgnet/...``, then the wheel.

    Raises :class:`WeightsNotFoundError` listing every path searched.
    """
    _, rel = PRETRAINED[ALIASES.get(name, name)]
    searched: list[str] = []
    found = locate_weights([f"chgnet/{rel}", f"chgnet/{Path(rel).name}"], searched)
    if found is not None:
        return found
    base = packaged_dir()
    if base is None:
        searched.append("chgnet package pretrained/ folder (chgnet not installed)")
    else:
        path = base / rel
        searched.append(str(path))
        if path.is_file():
            return path
    raise WeightsNotFoundError(name, searched)


def how_to_get_again(name: str, path: Path) -> str:
    """The fix for a damaged pretrained checkpoint: where a good copy of it comes from."""
    rel = PRETRAINED[ALIASES.get(name, name)][1]
    base = packaged_dir()
    if base is not None and path.resolve() == (base / rel).resolve():
        version = importlib.metadata.version("chgnet")
        return f"reinstall chgnet, which ships the file (pip install --force-reinstall chgnet=={version})"
    return f"copy {Path(rel).name} again from the chgnet wheel (chgnet/pretrained/{rel}) to {path}"


def is_checkpoint(path: Path) -> bool:
    """True for a file that CHGNet can load: a torch pickle with ``model.state_dict`` and ``model_args``."""
    if not path.is_file() or not path.name.endswith(CHECKPOINT_SUFFIXES):
        return False
    if path.name.endswith(".pth.tar"):
        return True
    try:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return False
    model = state.get("model") if isinstance(state, dict) else None
    return isinstance(model, dict) and {"state_dict", "model_args"} <= model.keys()


class ChgnetPlugin(ModelPlugin):
    """Serves the CHGNet family: pretrained names and checkpoint files."""

    family = "chgnet"
    package = "chgnet"
    extra = "chgnet"

    def names(self) -> dict[str, str]:
        return dict(DESCRIPTIONS)

    def claims_path(self, path: Path) -> bool:
        return is_checkpoint(path)

    def load(self, name_or_path: str, device: str = "cpu", dtype: str | None = None) -> ModelAdapter:
        """Load a pretrained name or checkpoint path; ``dtype``: ``"float32"`` (default) or ``"float64"``."""
        from softcalc_chgnet._adapter import ChgnetAdapter

        key = name_or_path.lower()
        if key in DESCRIPTIONS:
            canonical = ALIASES.get(key, key)
            version = PRETRAINED[canonical][0]
            checkpoint = find_checkpoint(canonical)
            fix = how_to_get_again(canonical, checkpoint)
            return ChgnetAdapter(checkpoint, canonical, version, device, dtype, how_to_get=fix)
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            if "/" in name_or_path or os.sep in name_or_path or path.name.endswith(CHECKPOINT_SUFFIXES):
                raise WeightsNotFoundError(str(path), [str(path.resolve())])
            raise UnknownModelError(
                f"unknown CHGNet model {name_or_path!r}. Known names: {', '.join(DESCRIPTIONS)}. "
                "Fix: use one of them or the path of a CHGNet checkpoint (.pth.tar)."
            )
        return ChgnetAdapter(path, f"chgnet:{path.name}", None, device, dtype)
