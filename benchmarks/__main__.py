"""``python -m benchmarks <name> [args]``: run one benchmark script with its own arguments.

``python -m benchmarks`` (or ``--help``) lists the names. Each name is a script in this folder,
run as if it had been started directly (``python benchmarks/<name>.py [args]``), so its
``--help`` and output are unchanged.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> what it measures; the script is benchmarks/<name>.py
SCRIPTS = {
    "signal_kinds": "the signal-kind suite: cross-validated accuracy (and CPA recovery) of every model per kind",
    "reversal": "the reversal diagnostic: how far outputs move when a scan is played backwards",
    "models": "training-step throughput and peak memory at the HCP shapes (NeuroSSM, BolT, GRU, presets)",
    "baselines_speed": "wall time of one outer fold of the closed-form baselines at connectome scale",
    "cpa": "CPA: recovery of planted ROIs and the cost of one extraction",
    "scan": "time and memory of the selective-scan backends on the CPU",
    "scaling": "DDP ranks on one unit, and units inline against Ray",
    "concurrency": "two neurossm train runs on one machine at once, against one alone (--threads)",
    "predict_speed": "neurossm predict throughput on HCP-Rest-shaped scans",
}


def usage() -> str:
    width = max(map(len, SCRIPTS))
    lines = ["usage: python -m benchmarks NAME [ARGS ...]   (NAME --help: that script's options)", "", "names:"]
    lines += [f"  {name:<{width}}  {what}" for name, what in SCRIPTS.items()]
    lines += ["", "benchmarks/README.md: which docs table each one made, and its stored record."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, args = argv[0].removesuffix(".py"), argv[1:]
    if name not in SCRIPTS:
        print(f"unknown benchmark {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    script = HERE / f"{name}.py"
    sys.argv = [str(script), *args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:  # the script's own exit status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
