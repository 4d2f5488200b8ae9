#!/usr/bin/env python
"""Neurosynth reference analysis of CPA maps (same as ``neurossm reference``).

    python Analysis/run_cpa_analysis.py --root ./Analysis/Explainability --out ./Analysis/Explainability_Results
"""

import argparse
import sys
from pathlib import Path

try:
    import neurossm  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neurossm.reference import cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="run_cpa_analysis.py", description=__doc__.splitlines()[0])
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
