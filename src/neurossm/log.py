"""Logging and progress bars: one logger tree under ``neurossm``; ``--quiet`` keeps warnings only."""

from __future__ import annotations

import logging
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_state = {"quiet": False}


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("neurossm") else f"neurossm.{name}")


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Console logging for the command-line tools (library use leaves logging to the caller)."""
    _state["quiet"] = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger("neurossm")
    root.setLevel(level)
    # NiMARE configures the root logger on import; keep our messages from printing twice.
    root.propagate = False
    if not any(getattr(h, "_neurossm", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
        handler._neurossm = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for h in root.handlers:
        h.setLevel(level)


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterable[T]:
    """A tqdm progress bar on stderr, silent with ``--quiet`` or when stderr is not a terminal."""
    disable = _state["quiet"] or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=disable, dynamic_ncols=True)
