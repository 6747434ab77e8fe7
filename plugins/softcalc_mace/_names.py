"""MACE foundation-model names softcalc serves, and where their weights are looked up.

The table is static so that listing names never imports mace-torch (seconds); a test checks it
against mace-torch's own ``mace_mp_urls``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FoundationModel:
    """A released MACE checkpoint.

    Attributes:
        key: the ``model`` argument of mace-torch's ``mace_mp()`` for it.
        file: the file name of the released checkpoint (the last part of its download URL).
        description: one line for ``softcalc models``.
    """

    key: str
    file: str
    description: str

    @property
    def cache_file(self) -> str:
        """File name under mace-torch's cache folder (it keeps only letters, digits and '_')."""
        return "".join(c for c in self.file if c.isalnum() or c == "_")


FOUNDATION_MODELS: dict[str, FoundationModel] = {
    "mace-mp-0-small": FoundationModel(
        "small", "2023-12-10-mace-128-L0_energy_epoch-249.model", "MACE-MP-0 small (MPtrj, PBE/PBE+U)"
    ),
    "mace-mp-0-medium": FoundationModel(
        "medium", "2023-12-03-mace-128-L1_epoch-199.model", "MACE-MP-0 medium (MPtrj, PBE/PBE+U)"
    ),
    "mace-mp-0-large": FoundationModel(
        "large", "MACE_MPtrj_2022.9.model", "MACE-MP-0 large (MPtrj, PBE/PBE+U)"
    ),
    "mace-mp-0b3-medium": FoundationModel(
        "medium-0b3", "mace-mp-0b3-medium.model", "MACE-MP-0b3 medium (MPtrj, fixes high-pressure phonons)"
    ),
    "mace-mpa-0-medium": FoundationModel(
        "medium-mpa-0", "mace-mpa-0-medium.model", "MACE-MPA-0 medium (MPtrj + sAlex)"
    ),
    "mace-omat-0-medium": FoundationModel(
        "medium-omat-0", "mace-omat-0-medium.model", "MACE-OMAT-0 medium (OMat24; ASL licence)"
    ),
}

#: names that stand for another one
ALIASES: dict[str, str] = {"mace-mp-0": "mace-mp-0-medium"}


def canonical_name(name: str) -> str:
    """The table name for ``name`` (aliases resolved, lower case)."""
    key = name.lower()
    return ALIASES.get(key, key)
