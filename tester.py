#!/usr/bin/env python
"""Train and test with cross-validation: ``python tester.py --dataset HCP_REST --model NeuroSSM --device 0``.

A thin shell over ``neurossm train`` (all logic lives in the ``neurossm`` package).
"""

import sys
from pathlib import Path

try:
    from neurossm.cli import tester_main
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from neurossm.cli import tester_main

if __name__ == "__main__":
    sys.exit(tester_main())
