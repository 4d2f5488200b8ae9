"""Executors: who runs a run's (seed, fold) units — this process, one after another, or Ray tasks.

A unit is a function call ``work(shared, task, device)``: ``shared`` is what every unit of the run
reads (the dataset, the model, the training settings, the run folder), ``task`` names the unit,
and the call writes only inside the unit's own folders and returns its metrics. Executors only
decide where that call happens; the scheduling, placement and retries are the engine's (Ray's),
never ours.

- :class:`InlineExecutor` (``--executor inline``, the default): in this process, in order; an
  error stops the run, as it always did (finished units stay on disk for ``--resume``).
- :class:`RayExecutor` (``--executor ray``): one Ray task per unit with ``--cpus-per-fold`` CPUs
  and ``--gpus-per-fold`` GPUs, on a local Ray instance or the cluster at ``--ray-address``. A
  unit whose worker process dies is retried once by Ray (``max_retries=1``); a unit that fails
  otherwise, or dies twice, is reported with its log file while the others go on.

Whatever runs them, each unit logs into its own file (``<run>/logs/seed_<S>_fold_<k>.log``) and
the executor yields one :class:`UnitOutcome` per unit as it finishes, from which the run prints
one progress line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import ConfigError, DiskFullError
from ..log import get_logger

log = get_logger(__name__)

EXECUTORS = ("inline", "ray")
Work = Callable[[Any, "UnitTask", "str | None"], dict[str, Any]]


@dataclass(frozen=True)
class UnitTask:
    """One (seed, fold) of a run, its split (scan ids per side) and the file its log goes to."""

    seed: int
    fold: int
    split: Any
    log_path: Path | None  # None: no log file (the ranks > 0 of a torchrun job)

    @property
    def name(self) -> str:
        return f"seed {self.seed} fold {self.fold}"


@dataclass
class UnitOutcome:
    """How a unit ended: its metrics, or the error and where its log is."""

    task: UnitTask
    metrics: dict[str, Any] | None
    seconds: float
    error: str | None = None
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def _run_logged(work: Work, shared: Any, task: UnitTask, device: str | None) -> tuple[dict[str, Any], float]:
    """``work`` with the package's log records also written to the unit's own log file."""
    if task.log_path is None:
        t0 = time.perf_counter()
        return work(shared, task, device), time.perf_counter() - t0
    task.log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(task.log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("neurossm")
    level = logger.level
    # The file keeps the epochs' debug lines; the console handlers keep their own levels.
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    t0 = time.perf_counter()
    try:
        metrics = work(shared, task, device)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: a line, not a traceback (the command says what is kept).
        logger.warning("%s interrupted", task.name)
        raise
    except DiskFullError as exc:
        logger.error("%s failed: %s", task.name, exc)
        raise
    except BaseException:
        logger.exception("%s failed", task.name)
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    return metrics, time.perf_counter() - t0


class InlineExecutor:
    """Every unit in this process, one after another (errors propagate)."""

    name = "inline"

    def run(self, work: Work, shared: Any, tasks: Sequence[UnitTask]) -> Iterator[UnitOutcome]:
        for task in tasks:
            metrics, seconds = _run_logged(work, shared, task, None)
            yield UnitOutcome(task, metrics, seconds)


def _ray_unit(work: Work, shared: Any, task: UnitTask, threads: int, gpus: float) -> tuple[dict[str, Any], float]:
    """The body of a Ray task: one unit in a Ray worker process."""
    from ..training.threads import apply_threads

    # Ray sets OMP_NUM_THREADS for the task, but a reused worker may have imported torch already.
    apply_threads(threads, "--cpus-per-fold")
    # Ray gives the task its GPUs as CUDA_VISIBLE_DEVICES, so they count from cuda:0 inside it.
    device = "cuda:0" if gpus > 0 else "cpu"
    return _run_logged(work, shared, task, device)


def import_ray():
    """``ray``, or an error that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--executor ray needs Ray, which is not installed here; install the extra: "
                          "pip install 'neurossm[ray]' (or use --executor inline)") from exc
    return ray


class RayExecutor:
    """Each unit as a Ray task, on a local instance or an existing cluster.

    Parameters
    ----------
    address : str, optional
        A running cluster's address (``ray start --head`` prints it; ``auto`` finds the local
        one). Default: start a private local instance for this run and stop it afterwards.
    cpus_per_fold : int
        CPUs Ray reserves for a unit, and its threads (:mod:`neurossm.training.threads`; the
        driver's ``--threads`` does not reach the tasks).
    gpus_per_fold : float
        GPUs Ray reserves for a unit (0: CPU training).
    num_cpus : int, optional
        CPUs of the local instance (default: all of this machine's); ignored with ``address``.
    max_retries : int
        Times Ray reruns a unit whose worker process died (1: a unit writes only its own folder, so a
        rerun is safe; docs/architecture.md).
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_fold: int = 1, gpus_per_fold: float = 0,
                 num_cpus: int | None = None, max_retries: int = 1) -> None:
        if cpus_per_fold < 1 or gpus_per_fold < 0:
            raise ConfigError(f"--cpus-per-fold {cpus_per_fold} / --gpus-per-fold {gpus_per_fold}: "
                              "need at least one CPU and no negative GPU count per fold")
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_fold, self.gpus_per_fold, self.max_retries = int(cpus_per_fold), float(gpus_per_fold), max_retries
        self._ray = import_ray()

    def _connect(self) -> bool:
        """Join or start Ray; ``True`` when this call started it (and must stop it)."""
        ray = self._ray
        if ray.is_initialized():
            return False
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
            log.info("joined the Ray cluster at %s: %s", self.address, ray.cluster_resources())
        else:
            # Workers log into each unit's file; their consoles would interleave with the progress lines.
            ray.init(num_cpus=self.num_cpus, log_to_driver=False, include_dashboard=False)
            log.info("started a local Ray instance: %s", ray.cluster_resources())
        return True

    def check_resources(self) -> None:
        """Refuse a request no node of the cluster can meet: Ray would wait for it forever, silently.

        A unit is one task, so it must fit on one node: the request is compared with the largest
        node's CPUs and GPUs (``ray.nodes()``; the cluster's totals when nodes are not listed).
        """
        ray = self._ray
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)]
        largest = {k: max((float(n.get(k, 0)) for n in nodes), default=0.0) for k in ("CPU", "GPU")}
        if not nodes:
            totals = ray.cluster_resources()
            largest = {k: float(totals.get(k, 0)) for k in ("CPU", "GPU")}
        where = f"the Ray cluster at {self.address}" if self.address else "the local Ray instance"
        for flag, wanted, kind in (("--cpus-per-fold", self.cpus_per_fold, "CPU"),
                                   ("--gpus-per-fold", self.gpus_per_fold, "GPU")):
            have = largest[kind]
            if wanted > have:
                fix = f"pass {flag} {have:g} or less" if have else f"leave {flag} out (no {kind} there)"
                raise ConfigError(f"{flag} {wanted:g}: {where} has at most {have:g} {kind}(s) on a node, so no unit "
                                  f"could ever start (Ray would wait for them without a word); {fix}, or join a "
                                  "cluster with larger nodes (--ray-address)")

    def run(self, work: Work, shared: Any, tasks: Sequence[UnitTask]) -> Iterator[UnitOutcome]:
        ray = self._ray
        started = self._connect()
        try:
            self.check_resources()
            remote = ray.remote(num_cpus=self.cpus_per_fold, num_gpus=self.gpus_per_fold,
                                max_retries=self.max_retries)(_ray_unit)
            shared_ref = ray.put(shared)  # sent once, read by every unit
            pending = {remote.remote(work, shared_ref, task, self.cpus_per_fold, self.gpus_per_fold): task
                       for task in tasks}
            t0 = {ref: time.perf_counter() for ref in pending}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                task = pending.pop(ref)
                try:
                    metrics, seconds = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    # The unit's own Python error: not retried (it would fail again the same way).
                    yield UnitOutcome(task, None, time.perf_counter() - t0[ref], error=_first_line(exc.cause))
                except ray.exceptions.RayError as exc:
                    # The worker died (killed, out of memory, node lost) on every attempt.
                    yield UnitOutcome(task, None, time.perf_counter() - t0[ref], attempts=1 + self.max_retries,
                                      error=f"{type(exc).__name__}: {_first_line(exc)}")
                else:
                    yield UnitOutcome(task, metrics, seconds)
        finally:
            if started:
                ray.shutdown()


def _first_line(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def make_executor(name: str, *, ray_address: str | None = None, cpus_per_fold: int = 1,
                  gpus_per_fold: float = 0, ray_num_cpus: int | None = None):
    """The executor ``--executor NAME`` asks for."""
    if name == "inline":
        if ray_address or gpus_per_fold:
            raise ConfigError("--ray-address and --gpus-per-fold need --executor ray")
        return InlineExecutor()
    if name == "ray":
        return RayExecutor(ray_address, cpus_per_fold, gpus_per_fold, ray_num_cpus)
    raise ConfigError(f"--executor {name!r}: choose one of {', '.join(EXECUTORS)}")
