"""``neurossm compare``: finished runs side by side, paired tests over shared folds (:mod:`neurossm.compare`)."""

from __future__ import annotations

import argparse

from ..log import get_logger

log = get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (with summary.json), or results roots to search for them")
    parser.add_argument("--reference", default=None, metavar="NAME",
                        help="run to compare against, per dataset: a model name (NeuroSSM), a label such as "
                             "NeuroSSM[single_pathway], or a run folder name (default: NeuroSSM if present, "
                             "else the first run)")
    parser.add_argument("--out", default=None, metavar="FILE.csv",
                        help="also write the table as CSV (one row per dataset, run and metric)")


def run(args: argparse.Namespace) -> int:
    from ..compare import compare_runs, format_table
    from ..io import write_dataframe

    table = compare_runs(args.runs, args.reference)
    print(format_table(table), end="")
    if args.out:
        write_dataframe(args.out, table)
        log.info("comparison written to %s", args.out)
    return 0
