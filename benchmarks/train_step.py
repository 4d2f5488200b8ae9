"""NeuroSSM training-step throughput (scans/s) and peak memory at the HCP shapes; prints JSON.

Usage::

    python benchmarks/train_step.py            # HCP-Rest (400 × 600) and HCP-Task (400 × 150), batch 16
    python benchmarks/train_step.py --quick    # 1 warm-up + 2 timed steps per shape
    python benchmarks/train_step.py --shapes hcp_task --config NeuroSSM:d_model=32 --threads 2
    python benchmarks/train_step.py --encoders hybrid time roi --config NeuroSSM:roi:roi_patch=4

A thin entry over ``benchmarks/models.py`` restricted to NeuroSSM, one run per encoder
(``--encoders``, default ``hybrid``: the default model; ``time`` is the ``time`` preset, ``roi``
the ``roi`` preset, reported as ``NeuroSSM:time`` and ``NeuroSSM:roi`` with their ratios to each
other when several run): the method (one fresh process
per shape, what a step is, how memory is read) and every option except ``--models`` are that
script's; see its docstring.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _models_benchmark():
    """``benchmarks/models.py`` as a module (``benchmarks`` is not a package)."""
    path = Path(__file__).resolve().with_name("models.py")
    spec = importlib.util.spec_from_file_location("neurossm_benchmark_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--models" or a.startswith("--models=") for a in argv):
        print("train_step.py measures NeuroSSM only; use benchmarks/models.py --models ... for others",
              file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
    encoders = ["hybrid"]
    if "--encoders" in argv:
        at = argv.index("--encoders")
        end = next((i for i in range(at + 1, len(argv)) if argv[i].startswith("--")), len(argv))
        encoders, argv = argv[at + 1 : end], argv[:at] + argv[end:]
    if not encoders or set(encoders) - {"hybrid", "time", "roi"}:
        print(f"--encoders takes 'hybrid', 'time' and/or 'roi', got {encoders}", file=sys.stderr)
        return 2
    models = ["NeuroSSM" if e == "hybrid" else f"NeuroSSM:{e}" for e in encoders]
    return _models_benchmark().main(["--models", *models, *argv])


if __name__ == "__main__":
    sys.exit(main())
