"""``neurossm report RUN_DIR``: rebuild the HTML report of a finished (or interrupted) run."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, Results/<DATASET>/<MODEL>/<run>")
    p.add_argument("--cpa-dir", default=None,
                   help="folder of the run's CPA files (subj_*.npz, searched recursively; default: "
                        "<analysis-root>/Explainability/<DATASET> of a run started with --analysis)")
    p.add_argument("--reference-dir", default=None,
                   help="output folder of `neurossm reference` (summary.csv, maps/<DATASET>/<CLASS>/; "
                        "default: <analysis-root>/Explainability_Results when it was written after the run)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN_DIR",
                   help="further run folders on the same dataset to show beside this one")
    p.add_argument("--out", default=None, help="the HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--title", default=None, help="page title (default: '<MODEL> on <DATASET>')")


def run(args: argparse.Namespace) -> int:
    from ..report import build_report

    path = build_report(args.run_dir, cpa_dir=args.cpa_dir, reference_dir=args.reference_dir, out=args.out,
                        extra_runs=tuple(args.compare), title=args.title)
    print(path)
    return 0
