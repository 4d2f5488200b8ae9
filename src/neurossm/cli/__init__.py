"""The ``neurossm`` command: train, summarize, explain, predict, reference, prep, demo, report, compare, models.

One module per subcommand in this package, each with ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`neurossm.cli.common` holds the shared flags and the exit-code policy.
``python tester.py ...`` is ``neurossm train ...`` with the original tool's flags, and
``Analysis/run_cpa_analysis.py`` is ``neurossm reference``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import threading
from typing import Iterator, Sequence

from ..errors import DiskFullError, NeuroSSMError, Terminated
from ..log import get_logger, setup_logging
from .common import (EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USER_ERROR, device_parent,
                     logging_parent, threads_parent)

log = get_logger(__name__)

SUBCOMMANDS = {
    # name: (module in neurossm.cli, help, computes: takes --device and --threads)
    "train": ("train", "cross-validated training and testing (what tester.py runs)", True),
    "summarize": ("summarize", "gather a run's finished units (--only jobs) into its summary and report", False),
    "models": ("models", "list registered models", False),
    "explain": ("explain", "recompute CPA maps from a finished run's saved models and splits", True),
    "predict": ("predict", "predict new scans with a saved model or a run's fold models", True),
    "reference": ("reference", "score CPA maps against Neurosynth reference maps; write NIfTI maps", False),
    "prep": ("prep", "extract ROI time series from 4D NIfTI files into the CUSTOM layout", False),
    "demo": ("demo", "the offline end-to-end demo on synthetic data in a real atlas", True),
    "report": ("report", "rebuild report.html of a run folder", False),
    "compare": ("compare", "compare finished runs: metrics and paired tests over shared folds", False),
}


def _module(name: str):
    # No try/except: a subcommand whose module does not import is a bug to see, not to hide.
    return importlib.import_module(f"{__name__}.{SUBCOMMANDS[name][0]}")


def _parents(name: str) -> list[argparse.ArgumentParser]:
    parents = [logging_parent()]
    if SUBCOMMANDS[name][2]:
        mod = _module(name)
        parents += [device_parent(getattr(mod, "DEVICE_DEFAULT", "auto")), threads_parent()]
    return parents


def _fill(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    mod = _module(name)
    mod.add_arguments(parser)
    parser.set_defaults(func=mod.run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``neurossm`` parser with every subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="neurossm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neurossm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text, _) in SUBCOMMANDS.items():
        description = getattr(_module(name), "DESCRIPTION", help_text)
        _fill(sub.add_parser(name, help=help_text, description=description, parents=_parents(name)), name)
    return parser


def standalone_parser(name: str, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """The parser of one subcommand on its own (``tester.py``, ``Analysis/run_cpa_analysis.py``, tests)."""
    parser = argparse.ArgumentParser(prog=prog or f"neurossm {name}", parents=_parents(name),
                                     description=description or SUBCOMMANDS[name][1])
    return _fill(parser, name)


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse ``argv``, run the subcommand, and map what happened to an exit code (:mod:`.common`)."""
    from ..training.threads import prefer_passive_waiting

    prefer_passive_waiting()  # before the parser's imports load torch and its OpenMP runtime
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    setup_logging(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    try:
        if hasattr(args, "threads"):
            from ..training.threads import apply_threads

            apply_threads(args.threads)
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except NeuroSSMError as exc:
        log.error("%s", exc)
        return EXIT_USER_ERROR
    except DiskFullError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except Terminated:
        log.error("stopped by SIGTERM (exit code %d); a training run keeps its finished folds", EXIT_TERMINATED)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        log.error("interrupted (exit code %d); a training run keeps its finished folds", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM (Slurm's and Kubernetes' stop signal) raises
    :class:`~neurossm.errors.Terminated`, which a run handles as Ctrl-C: finished folds are kept.

    Only the main thread can install a signal handler; elsewhere (a command run from a worker
    thread) SIGTERM keeps its default action.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def tester_main(argv: Sequence[str] | None = None) -> int:
    """``python tester.py``: the original tool's command line, same flags as ``neurossm train``."""
    parser = standalone_parser(
        "train", prog="tester.py",
        description="Train and test a model with subject-grouped cross-validation over seeds "
                    "(same as `neurossm train`).")
    return main(argv, parser)
