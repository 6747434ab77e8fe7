"""MatglPlugin: serves matgl's M3GNet and TensorNet universal potentials to softcalc."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from softcalc.errors import WeightsNotFoundError
from softcalc.model import ModelAdapter
from softcalc.registry import ModelPlugin
from softcalc.weight_files import loading_weights, locate_weights, weights_sha256

#: canonical model name -> (matgl directory name, description)
MODELS = {
    "m3gnet-mp-2021.2.8-pes": (
        "M3GNet-MP-2021.2.8-PES",
        "M3GNet universal potential trained on MP relaxations (the softening paper's model)",
    ),
    "m3gnet-matpes-pbe-v2025.1-pes": (
        "M3GNet-MatPES-PBE-v2025.1-PES",
        "M3GNet trained on MatPES PBE v2025.1",
    ),
    "tensornet-matpes-pbe-v2025.1-pes": (
        "TensorNet-MatPES-PBE-v2025.1-PES",
        "TensorNet trained on MatPES PBE v2025.1",
    ),
}
ALIASES = {"m3gnet": "m3gnet-mp-2021.2.8-pes"}
#: files of a matgl model directory
MODEL_FILES = ("model.json", "model.pt")


def _load_potential(matgl: Any, source: str) -> Any:
    """``matgl.load_model(source)`` without its warning about the model version."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Incompatible model version")
        return matgl.load_model(source)


class MatglPlugin(ModelPlugin):
    """M3GNet / TensorNet potentials by name, or any matgl model directory (model.json + model.pt).

    Weights lookup: an explicit directory, then ``$SOFTCALC_MODEL_DIR/matgl/<Dir-Name>``, then
    ``matgl.load_model(<Dir-Name>)`` (matgl's cache or download). Every loaded model gets its
    message aggregation checked and, where needed, repaired (see :mod:`softcalc_matgl._aggregation`).
    """

    family = "matgl"
    package = "matgl"
    extra = "matgl"

    def names(self) -> dict[str, str]:
        out = {name: desc for name, (_, desc) in MODELS.items()}
        out.update({alias: f"alias of {target}" for alias, target in ALIASES.items()})
        return out

    def claims_path(self, path: Path) -> bool:
        return path.is_dir() and all((path / f).is_file() for f in MODEL_FILES)

    def load(self, name_or_path: str, device: str = "cpu", dtype: str | None = None) -> ModelAdapter:
        import matgl

        from softcalc_matgl._adapter import MatglAdapter
        from softcalc_matgl._aggregation import fix_message_aggregation

        key = ALIASES.get(name_or_path.lower(), name_or_path.lower())
        searched: list[str] = []
        if key in MODELS:
            dirname = MODELS[key][0]
            path = locate_weights([f"matgl/{dirname}"], searched)
            if path is not None and not self.claims_path(path):
                path = None
            source = str(path) if path is not None else dirname
        else:
            path = Path(name_or_path).expanduser()
            searched.append(str(path))
            if not self.claims_path(path):
                raise WeightsNotFoundError(
                    f"matgl model {name_or_path!r}",
                    searched,
                    f"Fix: pass a matgl model directory holding {' and '.join(MODEL_FILES)}, or one of: "
                    f"{', '.join(self.names())}.",
                )
            key = path.name.lower()
            source = str(path)
        if path is not None:
            fix = f"replace {path} by a good copy of the folder (matgl's pretrained_models or its source)"
            with loading_weights(path, "matgl", fix):
                potential = _load_potential(matgl, source)
        else:
            try:
                potential = _load_potential(matgl, source)
            except Exception as exc:
                searched.append(f"matgl.load_model({dirname!r}) (matgl cache / download): {exc}")
                raise WeightsNotFoundError(f"matgl model {name_or_path!r}", searched) from exc
        fix_message_aggregation(potential.model)
        return MatglAdapter(
            potential,
            name=key,
            weights=str(path) if path is not None else f"matgl.load_model({dirname!r})",
            weights_sha256=weights_sha256(path) if path is not None else None,
            device=device,
            dtype=dtype or "float32",
        )
