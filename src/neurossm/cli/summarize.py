"""``neurossm summarize RUN_DIR``: a run's summary and report once all its units have finished."""

from __future__ import annotations

import argparse

DESCRIPTION = ("Write summary.json, fold_metrics.csv, predictions.csv and report.html of a run whose units ran "
               "as separate jobs (train --only SEED:FOLD); exit 2 naming the units still missing.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (Results/<DATASET>/<MODEL>/<run>)")


def run(args: argparse.Namespace) -> int:
    from ..pipeline import summary_table
    from ..pipeline.summarize import summarize_run

    print(summary_table(summarize_run(args.run_dir)))
    return 0
