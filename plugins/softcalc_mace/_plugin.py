"""MacePlugin: serves MACE foundation models by name and any MACE ``.model`` file by path.

Weight lookup for a name: ``$SOFTCALC_MODEL_DIR/mace/<checkpoint file>``, then mace-torch's own
cache (``$XDG_CACHE_HOME/mace`` or ``~/.cache/mace``), then mace-torch's download, which is only
attempted when ``$SOFTCALC_MODEL_DIR`` is unset (a user who points softcalc at a model folder is
never sent to the network).
"""

from __future__ import annotations

import os
from pathlib import Path

from softcalc.errors import WeightsNotFoundError
from softcalc.registry import ModelPlugin
from softcalc.weight_files import MODEL_DIR_ENV, locate_weights, model_dirs
from softcalc_mace._adapter import MaceAdapter
from softcalc_mace._names import ALIASES, FOUNDATION_MODELS, FoundationModel, canonical_name

#: sub-folder of ``$SOFTCALC_MODEL_DIR`` holding MACE checkpoints
SUBDIR = "mace"


def _mace_cache_candidates(model: FoundationModel) -> list[Path]:
    """Where mace-torch itself keeps (or ships) this checkpoint."""
    import mace
    from mace.tools.utils import get_cache_dir

    shipped = Path(mace.__file__).parent / "calculators" / "foundations_models" / model.file
    return [Path(get_cache_dir()) / model.cache_file, shipped]


def _download(model: FoundationModel) -> Path:
    """Fetch the checkpoint with mace-torch's own downloader (into its cache)."""
    from mace.calculators.foundations_models import download_mace_mp_checkpoint

    return Path(download_mace_mp_checkpoint(model.key))


def find_weights(name: str) -> Path:
    """Path of the checkpoint for a foundation-model name; raises WeightsNotFoundError listing paths."""
    model = FOUNDATION_MODELS[canonical_name(name)]
    searched: list[str] = []
    found = locate_weights([f"{SUBDIR}/{model.file}", f"{SUBDIR}/{model.cache_file}"], searched)
    if found is not None:
        return found
    for path in _mace_cache_candidates(model):
        searched.append(str(path))
        if path.is_file():
            return path
    if model_dirs():
        raise WeightsNotFoundError(
            name,
            searched,
            f"Fix: put {model.file} into {model_dirs()[0] / SUBDIR}, pass its path, or unset "
            f"{MODEL_DIR_ENV} to let mace-torch download it (needs network).",
        )
    searched.append(f"download of mace_mp(model={model.key!r}) by mace-torch")
    try:
        return _download(model)
    except OSError as exc:
        raise WeightsNotFoundError(
            name,
            searched,
            f"The download failed ({exc}). Fix: download {model.file} from the mace-mp releases, put it "
            f"into a folder <DIR>/{SUBDIR}/ and set {MODEL_DIR_ENV}=<DIR>, or pass its path.",
        ) from exc


def how_to_get_again(name: str, path: Path) -> str:
    """The fix for a damaged foundation-model checkpoint: where a good copy of it comes from."""
    import mace

    model = FOUNDATION_MODELS[canonical_name(name)]
    if any(path.resolve().is_relative_to(d.resolve()) for d in model_dirs()):
        return f"copy {model.file} again into {path.parent} (from the mace-mp releases or a good copy)"
    if path.resolve().is_relative_to(Path(mace.__file__).parent.resolve()):
        return "reinstall mace-torch, which ships the file (pip install --force-reinstall mace-torch)"
    return (
        f"delete {path} and load {name!r} again with {MODEL_DIR_ENV} unset, so that mace-torch downloads "
        f"it (needs network), or put a good copy of {model.file} into <DIR>/{SUBDIR}, {MODEL_DIR_ENV}=<DIR>"
    )


class MacePlugin(ModelPlugin):
    """The ``mace`` family: MACE-MP foundation models and any MACE ``.model`` file."""

    family = "mace"
    package = "mace"
    extra = "mace"

    def names(self) -> dict[str, str]:
        out = {name: m.description for name, m in FOUNDATION_MODELS.items()}
        out.update({alias: f"alias of {target}" for alias, target in ALIASES.items()})
        return out

    def claims_path(self, path: Path) -> bool:
        return path.is_file() and path.suffix == ".model"

    def load(self, name_or_path: str, device: str = "cpu", dtype: str | None = None) -> MaceAdapter:
        """Load by name (see :meth:`names`) or by ``.model`` path; ``dtype`` None keeps the file's."""
        if canonical_name(name_or_path) in FOUNDATION_MODELS:
            name = canonical_name(name_or_path)
            path = find_weights(name)
            fix = how_to_get_again(name, path)
            return MaceAdapter.from_file(path, name=name, device=device, dtype=dtype, how_to_get=fix)
        path = Path(os.path.expanduser(name_or_path))
        if not path.is_file():
            raise WeightsNotFoundError(
                name_or_path, [str(path)], "Fix: pass the path of an existing MACE .model file."
            )
        return MaceAdapter.from_file(path, name=path.stem, device=device, dtype=dtype)
