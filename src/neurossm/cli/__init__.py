"""The ``neurossm`` command: train, summarize, explain, reference, prep, demo, report, compare, models.

One module per subcommand in this package, each with ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`neurossm.cli.common` holds the shared flags and the exit-code policy.
``python tester.py ...`` is ``neurossm train ...`` with the original tool's flags, and
``Analysis/run_cpa_analysis.py`` is ``neurossm reference``.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Sequence

from ..errors import NeuroSSMError
from ..log import get_logger, setup_logging
from .common import EXIT_INTERRUPTED, EXIT_USER_ERROR, device_parent, logging_parent

log = get_logger(__name__)

SUBCOMMANDS = {
    # name: (module in neurossm.cli, help, takes --device)
    "train": ("train", "cross-validated training and testing (what tester.py runs)", True),
    "summarize": ("summarize", "gather a run's finished units (--only jobs) into its summary and report", False),
    "models": ("models", "list registered models", False),
    "explain": ("explain", "recompute CPA maps from a finished run's checkpoints and splits", True),
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
        parents.append(device_parent(getattr(mod, "DEVICE_DEFAULT", "auto")))
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
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    setup_logging(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    try:
        return int(args.func(args) or 0)
    except NeuroSSMError as exc:
        log.error("%s", exc)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        log.error("interrupted; finished folds are kept (continue with --resume RUN_DIR)")
        return EXIT_INTERRUPTED


def tester_main(argv: Sequence[str] | None = None) -> int:
    """``python tester.py``: the original tool's command line, same flags as ``neurossm train``."""
    parser = standalone_parser(
        "train", prog="tester.py",
        description="Train and test a model with subject-grouped cross-validation over seeds "
                    "(same as `neurossm train`).")
    return main(argv, parser)
