"""Reference DFT data: frames with forces, read from the formats users have.

Formats: extxyz (and anything ASE reads with forces), ASE databases (``.db``), mlearn/pymatgen JSON
(a list of records with a pymatgen ``structure`` and ``outputs``), and phonopy directories
(``FORCE_SETS`` with ``phonopy_disp.yaml``/``POSCAR-unitcell``). :func:`read_dataset` picks the
reader from the path.
"""

from softcalc.data.dataset import ForceDataset, ForceFrame
from softcalc.data.readers import read_dataset, read_datasets

__all__ = ["ForceDataset", "ForceFrame", "read_dataset", "read_datasets"]
