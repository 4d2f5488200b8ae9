"""What every subcommand shares: the logging and device flags, and the exit-code policy.

Exit codes (the same for ``neurossm``, ``tester.py`` and ``Analysis/run_cpa_analysis.py``):

==== ==========================================================================================
0    done
1    failure: the command ran but produced nothing usable (e.g. every scan of ``prep`` failed),
     or an unexpected error (Python's own exit status, with its traceback)
2    user error: a bad option, a missing or malformed input file, a dataset or a cache that is
     not where it should be (any :class:`neurossm.errors.NeuroSSMError`; the message names the
     file or option and the fix). argparse's own usage errors are 2 as well
     A full disk is a failure too: one line (``no space left on device: could not write FILE``),
     no traceback, and no half-written file
130  interrupted (Ctrl-C); a training run keeps its finished folds (``--resume RUN_DIR``), or
     removes its folder when no fold had finished
143  stopped by SIGTERM (what Slurm, Kubernetes and ``kill`` send): the same as Ctrl-C, 128 + 15
==== ==========================================================================================
"""

from __future__ import annotations

import argparse

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def logging_parent() -> argparse.ArgumentParser:
    """``--quiet`` / ``--verbose``: one definition for every subcommand (read by :func:`main`)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("logging")
    g.add_argument("--quiet", action="store_true", help="warnings, errors and the final result only")
    g.add_argument("--verbose", action="store_true", help="debug logging")
    return p


def device_parent(default: str = "auto") -> argparse.ArgumentParser:
    """``--device``, resolved by :func:`neurossm.training.device.resolve_device`."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--device", default=default,
                   help="GPU index (0), cuda:N, cpu, or auto (GPU 0 when CUDA is available). "
                        f"Without CUDA a GPU request warns and uses the CPU (default: {default})")
    return p


def threads_parent() -> argparse.ArgumentParser:
    """``--threads``, applied by :func:`neurossm.training.threads.apply_threads` before the command runs."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads this process computes with (under torchrun: per rank). Default: "
                        "OMP_NUM_THREADS when set, else the CPUs this process may use (divided among the "
                        "torchrun ranks on the node; a Ray unit uses its --cpus-per-fold). Running several "
                        "commands at once on one machine: give each CPUs/commands (docs/scaling.md, Threads)")
    return p
