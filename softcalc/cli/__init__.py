"""The ``softcalc`` command line. Each subcommand lives in its own module with a ``register`` (COMMANDS).

Exit codes (:func:`main`):

- 0: done;
- 2: a user mistake, reported as one ``softcalc COMMAND: error: ...`` message that says what is wrong
  and how to fix it, never a traceback: argparse's own errors, every :class:`~softcalc.errors.SoftcalcError`
  and operating-system errors on a path the user gave (missing, not allowed, a folder, disk full);
- 130: interrupted (Ctrl-C), one line;
- 1: anything else is a bug in softcalc: the traceback, the command line and a request to report both.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import shlex
import sys
import traceback

from softcalc.errors import SoftcalcError

#: Subcommand modules, each defining ``register(subparsers)``: the commands of softcalc.cli, and
#: ``softcalc bench``, which lives with the benchmarks it runs (so nothing outside softcalc/bench imports it)
COMMANDS = (
    *(f"softcalc.cli.{name}" for name in ("models", "evaluate", "calibrate", "demo", "md", "phonons")),
    "softcalc.bench.command",
    *(f"softcalc.cli.{name}" for name in ("lammps_plugin", "hessian")),
)
#: exit codes of :func:`main`
EXIT_BUG, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130
#: what to do about an OSError on a user's path, by errno
OS_FIXES = {
    errno.ENOENT: "check the path",
    errno.EACCES: "choose a path you are allowed to use, or change its permissions",
    errno.EPERM: "choose a path you are allowed to use, or change its permissions",
    errno.EROFS: "write to a folder on a writable file system",
    errno.EISDIR: "give the path of a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ENOSPC: "free disk space or write elsewhere",
    errno.EDQUOT: "free disk space (quota exceeded) or write elsewhere",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EEXIST: "remove it or choose another path",
}
BUG_REPORT = "this is a bug in softcalc: please report it with the command line above and the traceback"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="softcalc",
        description="Measure and correct PES softening of universal machine-learning potentials.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def error_message(exc: BaseException) -> str:
    """The text after ``error:``: the first line of the message, further lines (lists) indented."""
    if isinstance(exc, OSError) and not isinstance(exc, SoftcalcError):
        where = f": {exc.filename}" if exc.filename is not None else ""
        where += f" -> {exc.filename2}" if exc.filename2 is not None else ""
        return f"{exc.strerror or exc}{where}. Fix: {OS_FIXES.get(exc.errno, 'check the path and the disk')}."
    lines = [line.rstrip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    return "\n".join([lines[0], *(line if line.startswith(" ") else f"  {line}" for line in lines[1:])])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``softcalc`` command; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    prefix = " ".join(["softcalc", args.command, *filter(None, [getattr(args, "benchmark", None)])])
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\n{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into a program that stopped reading (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if isinstance(exc, SoftcalcError) or (isinstance(exc, OSError) and exc.errno is not None):
            print(f"{prefix}: error: {error_message(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR
        traceback.print_exc()
        command = shlex.join(["softcalc", *(sys.argv[1:] if argv is None else argv)])
        print(f"{prefix}: command line: {command}\n{prefix}: {BUG_REPORT}", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
