"""The one place that decides how many CPU threads a process computes with (``--threads``).

Every computing command (``train``/``tester.py``, ``explain``, ``predict``, ``demo``) calls
:func:`apply_threads` once after parsing its flags; a Ray task calls it with its
``--cpus-per-fold``. It sets PyTorch's intra-op threads (which the ``cpu`` scan backend's
compiled kernels follow too, :mod:`neurossm.ssm.cpu`), the BLAS pools NumPy and scikit-learn
use, and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` for any process started
from here.

Why one place: several processes that each start one thread per core (PyTorch's default) on the
same cores make every parallel op wait at a barrier for a descheduled thread: each of two
trainings at once on two cores, two threads each, ran 24x slower than one alone (docs/scaling.md,
"Threads"). The command line also asks OpenMP to let waiting threads sleep
(:func:`prefer_passive_waiting`), which took that case to the speed of two one-thread runs.

The count, first rule that applies:

1. ``--threads N`` (per process; under ``torchrun`` per rank);
2. a Ray task: its ``--cpus-per-fold``, the CPUs Ray reserved for it;
3. under ``torchrun`` with several ranks on this node: the usable CPUs divided by the ranks on
   the node (``LOCAL_WORLD_SIZE``). torchrun exports ``OMP_NUM_THREADS=1`` to every rank unless
   it was set; that guard is replaced by the actual share;
4. ``OMP_NUM_THREADS`` when set (a scheduler's or the user's choice for this process);
5. the CPUs this process may use: ``os.sched_getaffinity(0)`` (what ``taskset``, cgroups
   cpusets and Slurm's task binding leave), else ``os.cpu_count()``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from ..errors import ConfigError
from ..log import get_logger

log = get_logger(__name__)

_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Threads:
    """How many threads this process computes with, and which rule chose the number."""

    n: int
    source: str

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


_state: dict[str, Threads | None] = {"threads": None}


def prefer_passive_waiting() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it: OpenMP threads sleep while they wait.

    OpenMP's default lets a thread that reaches a barrier spin on its core for a while; when the
    cores are shared with other processes, the spinning takes the core from the thread everyone
    waits for. Measured on a 2-core machine under load (benchmarks/predict_speed.py, 8 scans
    400 x 600, 2 threads): 1.9-2.5 s spinning, 0.9 s passive; one thread unchanged (0.7-0.8 s).
    OpenMP reads the variable once, when PyTorch loads it: call this before ``import torch``
    (:func:`neurossm.cli.main` does, and every process it starts inherits it).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the OS has one, else all CPUs."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def check_threads(n: int, flag: str = "--threads") -> int:
    """``n`` as a thread count, or a :class:`ConfigError` saying what is accepted."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{flag} {n}: expected a whole number of threads, at least 1 (e.g. {flag} "
                          f"{max(1, usable_cpus() // 2)}); leave it out to use the {usable_cpus()} CPU(s) this "
                          "process may use")
    return n


def default_threads() -> Threads:
    """The count without ``--threads``: rules 3-5 of the module docstring."""
    cpus = usable_cpus()
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if "RANK" in os.environ and local_ranks > 1:
        return Threads(max(1, cpus // local_ranks), f"{cpus} usable CPUs / {local_ranks} torchrun ranks on this node")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            return Threads(check_threads(int(env), "OMP_NUM_THREADS="), "OMP_NUM_THREADS")
        except (ValueError, ConfigError):
            log.warning("OMP_NUM_THREADS=%r is not a whole number ≥ 1; ignored (using the %d usable CPUs)", env, cpus)
    return Threads(cpus, "usable CPUs")


def apply_threads(n: int | None = None, source: str = "--threads") -> Threads:
    """Set this process's thread count: ``n`` (from ``source``), or :func:`default_threads` when ``None``.

    Returns
    -------
    Threads
        What was set; :func:`current` returns it from now on.
    """
    import torch

    chosen = default_threads() if n is None else Threads(check_threads(n, source), source)
    torch.set_num_threads(chosen.n)
    for name in _ENV:
        os.environ[name] = str(chosen.n)
    try:
        from threadpoolctl import threadpool_limits

        # NumPy's and scikit-learn's BLAS (loaded already): the limit stays until changed.
        threadpool_limits(limits=chosen.n, user_api="blas")
    except ImportError:
        pass
    _state["threads"] = chosen
    log.debug("computing with %d thread(s) (%s)", chosen.n, chosen.source)
    return chosen


def current() -> Threads:
    """The count PyTorch computes with now, and the rule that set it.

    ``"torch default"`` when :func:`apply_threads` was never called (a library user's process);
    ``"set outside neurossm"`` when ``torch.set_num_threads`` changed it since.
    """
    import torch

    n, chosen = torch.get_num_threads(), _state["threads"]
    if chosen is None:
        return Threads(n, "torch default")
    return chosen if chosen.n == n else Threads(n, "set outside neurossm")
