#!/usr/bin/env python
"""Neurosynth reference analysis of CPA maps (same as ``neurossm reference``).

    python Analysis/run_cpa_analysis.py --root ./Analysis/Explainability --out ./Analysis/Explainability_Results
"""

import sys
from pathlib import Path

try:
    import neurossm  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neurossm import cli


def main(argv=None) -> int:
    parser = cli.standalone_parser("reference", prog="run_cpa_analysis.py", description=__doc__.splitlines()[0])
    return cli.main(argv, parser)


if __name__ == "__main__":
    sys.exit(main())
