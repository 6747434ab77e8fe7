"""`softcalc md`: molecular dynamics with a (corrected) uMLIP into a resumable HDF5 trajectory;
`softcalc md-export`: trajectory to extended XYZ; `softcalc md-analyze`: energy conservation, VDOS
(against a harmonic DOS), MSD and RDF of trajectories."""

from __future__ import annotations

import argparse

from softcalc.cli.common import add_command, add_model_options, build_calculator, command_line, read_structure
from softcalc.cli.values import non_negative_float, non_negative_int, positive_float, positive_int
from softcalc.fileio import check_outputs
from softcalc.md import THERMOSTATS, StabilityLimits, export_extxyz, run_md
from softcalc.md.report import analyze

_ALL_THERMOSTATS = sorted({t for names in THERMOSTATS.values() for t in names} - {"none"})


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "md", run)
    add_model_options(p)
    p.add_argument("--structure", required=True, help="structure file readable by ASE")
    p.add_argument("--repeat", type=positive_int, nargs=3, metavar=("NA", "NB", "NC"),
                   help="build a supercell first")
    p.add_argument("--ensemble", choices=sorted(THERMOSTATS), default="nve")
    p.add_argument("--thermostat", choices=_ALL_THERMOSTATS,
                   help="nvt: langevin (default), nose-hoover, bussi, berendsen; "
                   "npt: nose-hoover (MTK, default), berendsen")
    p.add_argument("--temperature", type=non_negative_float, default=300.0,
                   help="target and initial temperature in K")
    p.add_argument("--pressure", type=float, default=0.0, help="external pressure in GPa (npt)")
    p.add_argument("--timestep", type=positive_float, default=1.0, help="time step in fs")
    p.add_argument("--steps", type=non_negative_int, required=True,
                   help="total MD steps (a resumed run continues to it)")
    p.add_argument("--traj", required=True, help="output HDF5 trajectory")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true",
                          help="continue --traj from its last committed frame (it must exist, and the model, "
                          "correction, structure and settings must be those it records)")
    existing.add_argument("--resume-or-new", action="store_true",
                          help="like --resume when --traj exists, else start it (for jobs that restart "
                          "themselves)")
    existing.add_argument("--overwrite", action="store_true", help="replace an existing --traj")
    p.add_argument("--every", type=positive_int, default=10, help="save a frame every K steps (default 10)")
    p.add_argument("--flush-every", type=positive_int, default=10,
                   help="commit to disk every K frames (default 10)")
    p.add_argument("--forces", action="store_true", help="also store forces")
    p.add_argument("--no-stress", action="store_true",
                   help="do not store the stress (NaN in the file)")
    p.add_argument("--seed", type=non_negative_int,
                   help="random seed (initial velocities, stochastic thermostats)")
    p.add_argument("--tdamp", type=positive_float,
                   help="thermostat time constant in fs (default 100 time steps)")
    p.add_argument("--pdamp", type=positive_float,
                   help="barostat time constant in fs (default 1000 time steps)")
    p.add_argument("--friction", type=non_negative_float, default=0.01,
                   help="Langevin friction in 1/fs (default 0.01)")
    p.add_argument("--max-force", type=positive_float, default=StabilityLimits.max_force,
                   help="stop when a force exceeds this, eV/Å")
    p.add_argument("--min-distance", type=non_negative_float, default=StabilityLimits.min_distance,
                   help="stop when two atoms come closer than this, Å")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    e = add_command(sub, "md-export", export)
    e.add_argument("traj", help="HDF5 trajectory from `softcalc md`")
    e.add_argument("out", help="output .xyz (extended XYZ)")
    e.add_argument("--every", type=positive_int, default=1, help="export every K-th frame")

    a = add_command(sub, "md-analyze", analyze_trajectories)
    a.add_argument("traj", nargs="+", help="HDF5 trajectories from `softcalc md` (e.g. bare and corrected)")
    a.add_argument("--labels", nargs="+", help="one name per trajectory (default: file names)")
    a.add_argument("--phonons", help="phonopy data set (folder with phonopy_disp.yaml + FORCE_SETS, or a "
                   "phonopy.yaml with forces), e.g. DFT, whose harmonic DOS the MD VDOS are compared with")
    a.add_argument("--skip", type=non_negative_float, default=0.0,
                   help="equilibration to drop from each run, ps")
    a.add_argument("--rdf-rmax", type=positive_float, default=6.0, help="RDF range, Å (default 6)")
    a.add_argument("--out", required=True, help="output folder: md_analysis.json, vdos.png, structure.png, "
                   "energy.png (NVE runs)")


def run(args: argparse.Namespace) -> int:
    """molecular dynamics (NVE/NVT/NPT) into a resumable HDF5 trajectory"""
    atoms = read_structure(args.structure)
    if args.repeat:
        atoms = atoms.repeat(args.repeat)
    calc = build_calculator(args)
    res = run_md(
        atoms, calc, ensemble=args.ensemble, thermostat=args.thermostat, temperature_K=args.temperature,
        pressure_GPa=args.pressure, timestep_fs=args.timestep, steps=args.steps, traj=args.traj,
        resume="if-exists" if args.resume_or_new else args.resume, overwrite=args.overwrite,
        every=args.every, flush_every=args.flush_every,
        forces=args.forces, stress=not args.no_stress, seed=args.seed,
        tdamp_fs=args.tdamp, pdamp_fs=args.pdamp, friction_per_fs=args.friction,
        limits=StabilityLimits(args.max_force, args.min_distance), progress=not args.quiet,
        command=command_line(),
    )
    print(
        f"{res.steps_run} steps ({res.step} in total), {res.frames} frames in {res.traj}; "
        f"{res.atom_steps_per_s:.4g} atom-steps/s, {res.ns_per_day:.4g} ns/day"
    )
    return 0


def analyze_trajectories(args: argparse.Namespace) -> int:
    """energy conservation, vibrational DOS (vs a harmonic phonon DOS), MSD and RDF of MD trajectories:
    JSON + PNG"""
    check_outputs({"--out": args.out}, inputs=args.traj, folders=["--out"])
    report = analyze(args.traj, args.out, args.labels, args.phonons, args.skip, args.rdf_rmax)
    ratios = report["vdos"].get("mean_frequency_ratio", {})
    for label, summary in report["trajectories"].items():
        line = (f"{label}: {summary['analysed_ps']:.3g} ps, T = {summary['temperature_K']['mean']:.1f} K, "
                f"mean VDOS frequency {report['vdos']['mean_frequency_THz'][label]:.3f} THz")
        if label in ratios:
            line += f" ({ratios[label]:.3f} of the harmonic DOS)"
        conservation = summary.get("energy_conservation")
        if conservation:
            total, shadow = conservation["total"], conservation["shadow"]
            line += (f"; drift {total['drift_meV_per_atom_per_ps']:+.2g} ± "
                     f"{total['stderr_meV_per_atom_per_ps']:.1g} meV/atom/ps")
            if shadow:
                line += (f" (shadow energy {shadow['drift_meV_per_atom_per_ps']:+.2g} ± "
                         f"{shadow['stderr_meV_per_atom_per_ps']:.1g})")
        print(line)
    print(f"wrote {args.out}/md_analysis.json and figures")
    return 0


def export(args: argparse.Namespace) -> int:
    """export a softcalc MD trajectory to extended XYZ"""
    check_outputs({"out": args.out}, inputs=[args.traj])
    n = export_extxyz(args.traj, args.out, every=args.every)
    print(f"wrote {n} frames to {args.out}")
    return 0
