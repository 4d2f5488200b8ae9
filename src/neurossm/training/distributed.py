"""Data-parallel training of one unit with PyTorch DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc-per-node N -m neurossm train ...`` starts N copies of the command; each finds
its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and :func:`init_from_environment` joins the process group: gloo
on the CPU, NCCL on GPUs (one GPU per rank, ``cuda:LOCAL_RANK``). Without those variables
everything here is the single process it always was, and no ``torch.distributed`` call is made.

How a step is shared (:class:`Replicas`): every rank draws the same permutation and the same
random crops from the same seeded generator, so all ranks agree on the global batch without
sending data; each rank then trains on its contiguous share of that batch. Its loss is weighted by
``n_rank * world_size / n_batch`` so that DDP's gradient average equals the gradient of the
global batch's mean loss, also when the shares differ in size. A rank whose share is empty (a last
batch smaller than the number of ranks) runs a zero-weighted step so that the gradient all-reduce
still meets. Rank 0 alone validates, keeps the best epoch, tests and writes; decisions that
steer the loop (stop early, skip a finished unit) are rank 0's, broadcast with :func:`agree`.

What is not identical to one process: dropout masks are drawn per rank (each from the same
seeded generator, for its own share), and a loss with a batch-level term (BolT's cross-window
consistency) is computed per share. With dropout off and a per-scan loss, a DDP run equals the
single-process run up to float rounding in the gradient sums (tests/training/test_distributed.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..log import get_logger, setup_logging

log = get_logger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group (``world_size == 1``: no group at all)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


_SINGLE = Ranks()
_state: dict[str, Ranks] = {"ranks": _SINGLE}


def current() -> Ranks:
    """The process group joined by :func:`init_from_environment`, or the single process."""
    return _state["ranks"]


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_environment(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, once per process.

    Parameters
    ----------
    device : torch.device
        The device the user asked for. On CUDA each rank takes ``cuda:LOCAL_RANK`` instead, so
        that N ranks on a node use its N GPUs.

    Returns
    -------
    ranks, device
        This process's ranks, and the device it trains on.
    """
    if not launched_by_torchrun():
        return current(), device
    import torch.distributed as dist

    ranks = Ranks(rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                  backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device(f"cuda:{ranks.local_rank}")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=ranks.backend)
        log.info("rank %d of %d joined the %s process group (device %s)", ranks.rank, ranks.world_size,
                 ranks.backend, device)
    _state["ranks"] = ranks
    if not ranks.is_main:
        # One voice on the console: the other ranks print warnings only, and no progress bars.
        setup_logging(quiet=True)
    return ranks, device


def shutdown() -> None:
    """Leave the process group (a no-op in a single process)."""
    if current().distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    _state["ranks"] = _SINGLE


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable value; the single process gets ``obj`` back)."""
    if not current().distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(flag: bool) -> bool:
    """Rank 0's decision on every rank, so that all ranks stop, skip or go on together."""
    return bool(broadcast(bool(flag)))


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (in float64, so that counts stay exact)."""
    if not current().distributed:
        return tuple(float(v) for v in values)
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return tuple(float(v) for v in t)


class _LossModule(nn.Module):
    """The estimator's loss as a module, so that DDP sees a forward pass that yields it."""

    def __init__(self, module: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.module = module
        self._loss_fn = loss_fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss_fn(x, y)


class Replicas:
    """One training step's loss, on this rank's share of the global batch.

    In a single process :meth:`loss` is ``loss_fn`` on the whole batch; under ``torchrun`` the
    module is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` and each rank sees
    its share.

    Parameters
    ----------
    module : nn.Module
        The model being trained (already on its device).
    loss_fn : callable
        ``loss_fn(x, y) -> (mean loss, logits)`` for a batch.
    ranks : Ranks, optional
        Default: the process group this process joined.
    """

    def __init__(self, module: nn.Module, loss_fn: LossFn, ranks: Ranks | None = None) -> None:
        self.ranks = ranks or current()
        self._loss_fn = loss_fn
        self._ddp: nn.Module | None = None
        if self.ranks.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [module_device(module)] if module_device(module).type == "cuda" else None
            # DDP broadcasts rank 0's parameters here; every rank built the same ones from the seed anyway.
            self._ddp = DistributedDataParallel(_LossModule(module, loss_fn), device_ids=device_ids)

    @property
    def is_main(self) -> bool:
        return self.ranks.is_main

    @property
    def world_size(self) -> int:
        return self.ranks.world_size

    def share(self, n: int) -> slice:
        """This rank's contiguous share of a global batch of ``n`` scans (sizes differ by ≤ 1)."""
        bounds = np.linspace(0, n, self.world_size + 1).round().astype(int)
        return slice(int(bounds[self.ranks.rank]), int(bounds[self.ranks.rank + 1]))

    def loss(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss to backpropagate, and the logits and labels of this rank's scans.

        ``xb`` and ``yb`` are the whole global batch, ``(B, R, T)`` and ``(B,)``. The returned
        loss is this rank's share of the global mean times ``world_size`` (DDP divides by it),
        so ``loss * B / world_size`` is the sum of this rank's per-scan losses.
        """
        if self._ddp is None:
            loss, logits = self._loss_fn(xb, yb)
            return loss, logits, yb
        n = len(yb)
        part = self.share(n)
        x_part, y_part = xb[part], yb[part]  # (b, R, T), (b,)
        if len(y_part) == 0:
            # Nothing to train on here this step: a zero-weighted pass keeps the all-reduce in step.
            loss, logits = self._ddp(xb[:1], yb[:1])
            return loss * 0.0, logits[:0], yb[:0]
        loss, logits = self._ddp(x_part, y_part)
        return loss * (len(y_part) * self.world_size / n), logits, y_part


def module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
