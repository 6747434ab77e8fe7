"""`softcalc phonons`: phonon softening of a (corrected) model against a DFT phonopy force set."""

from __future__ import annotations

import argparse
from typing import Any

from softcalc.calculator import SoftCorrectedCalc
from softcalc.cli.common import add_command, add_model_options, build_calculator
from softcalc.fileio import check_outputs, write_json
from softcalc.phonons.comparison import (
    band_structure_plot,
    compare_phonons,
    load_phonon_reference,
    nac_note,
    residual_handling,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "phonons", run)
    add_model_options(p)
    p.add_argument(
        "--phonopy-dir",
        required=True,
        help="phonopy data set: folder with FORCE_SETS and phonopy_disp.yaml, or a phonopy.yaml / "
        "phonopy_params.yaml with forces (or its folder)",
    )
    p.add_argument(
        "--nac",
        action="store_true",
        help="apply the DFT Born charges and dielectric tensor (BORN, or those in the phonopy yaml) to DFT "
        "and model force constants alike (default: no non-analytic correction; the model has none)",
    )
    p.add_argument("--json", required=True, help="output JSON")
    p.add_argument("--plot", help="band structure PNG: DFT, bare and (if given) corrected model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """force-set slope, frequency slope and MAE, max-frequency ratio vs a DFT phonopy force set

    Evaluate the model on the displaced supercells of a phonopy data set (FORCE_SETS, or a phonopy.yaml
    with forces), build model and DFT force constants from the same displacements and compare
    frequencies on an 8x8x8 mesh, without non-analytic correction unless --nac.
    """
    check_outputs({"--json": args.json, "--plot": args.plot}, inputs=[args.phonopy_dir])
    calc = build_calculator(args)
    pset = load_phonon_reference(args.phonopy_dir, nac=args.nac)
    result = compare_phonons(calc, pset, model=args.model, progress=not args.quiet)
    settings = {"nac": pset.nac, "nac_note": nac_note(pset), "residual": residual_handling(pset)}
    out: dict[str, Any] = {**result.metrics.as_dict(), **settings}
    curves = [(args.model, result.model_phonon)]
    if isinstance(calc, SoftCorrectedCalc):
        bare = compare_phonons(calc.base, pset, model=args.model, progress=not args.quiet)
        out.update(calc.correction.parameters())
        out["bare"] = {**bare.metrics.as_dict(), **settings}
        curves = [(f"{args.model} bare", bare.model_phonon), (f"{args.model} corrected", result.model_phonon)]
    out["data"] = {
        "source": pset.dataset.source,
        "sha256": pset.dataset.sha256,
        "born": pset.nac_source or None,  # DFT Born charges in the data (applied only with --nac)
    }
    write_json(args.json, out)
    if args.plot:
        band_structure_plot(args.plot, pset, curves, title=f"{pset.material}: {args.model} vs DFT")
    m = result.metrics
    slope = "not available" if m.force_set_slope is None else f"{m.force_set_slope:.4f}"
    print(
        f"{args.model} on {m.material} ({m.n_displacements} displacements): force-set slope "
        f"{slope}, frequency slope {m.freq_slope:.4f}, MAE {m.freq_mae_thz:.4f} THz, "
        f"max ω ratio {m.max_freq_ratio:.4f}"
    )
    return 0
