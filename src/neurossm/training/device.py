"""The one device resolver: what ``--device`` means everywhere (train, explain, demo, the pipeline)."""

from __future__ import annotations

import warnings

import torch

from ..log import get_logger

log = get_logger(__name__)


def resolve_device(device: str | int | torch.device | None) -> torch.device:
    """The torch device that ``--device`` names.

    Parameters
    ----------
    device : str, int, torch.device or None
        ``"auto"`` (GPU 0 when CUDA is available, else the CPU), ``"cpu"`` (also ``None``), a GPU
        index (``0`` or ``"0"``) or ``"cuda:N"``.

    Returns
    -------
    torch.device
        Without CUDA, a GPU request warns and gives the CPU, so a command written for a GPU
        machine still runs on a laptop.
    """
    if isinstance(device, torch.device):
        return device
    text = str(device if device is not None else "cpu").strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    index = text.split(":", 1)[1] if text.startswith("cuda") and ":" in text else text.replace("cuda", "") or "0"
    if not torch.cuda.is_available():
        warnings.warn(f"--device {device}: CUDA is not available here; training on the CPU", stacklevel=2)
        log.warning("--device %s: CUDA is not available; using the CPU", device)
        return torch.device("cpu")
    return torch.device(f"cuda:{int(index)}")
