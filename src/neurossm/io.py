"""Atomic file writes: a reader never sees a half-written file, a killed run leaves none.

Every file neurossm writes goes through these helpers: the bytes go to a temporary file in the
destination folder, which is then renamed over the destination (``os.replace`` is atomic on one
file system).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` keeps an extension on the temporary name for writers that infer the format
    from it (nibabel's ``.nii.gz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file private (0600); give it the permissions a plain open() would.
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; if the block succeeds it replaces ``path``.

    The folder then holds only what the block wrote: files of an earlier run into the same
    place do not linger beside the new ones. On failure the old folder stays as it was. (The
    swap is two renames; a crash between them leaves the old folder under a ``.old`` name.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def check_writable(path: str | os.PathLike, option: str) -> Path:
    """Raise :class:`~neurossm.errors.ConfigError` unless ``path`` can be created and written.

    Nothing is created: the nearest existing folder on the way to ``path`` must be a folder (not
    a file) in which a file can be made. ``option`` names what the user passed (``--results-root
    Results``), so that the message says what to change.
    """
    from .errors import ConfigError

    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir():
        raise ConfigError(f"{option}: {existing} is a file, not a folder, so {path} cannot be made there; "
                          "pass a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot write in {existing} ({exc.strerror or exc}), so {path} cannot be "
                          "made; pass a folder you can write to") from exc
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def to_json(obj: Any) -> str:
    """JSON text with sorted keys, so equal content gives byte-identical files."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, to_json(obj))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Compressed ``.npz`` written atomically (never a pickle: object arrays are refused)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return write_bytes(path, buf.getvalue())


def write_dataframe(path: str | os.PathLike, frame: Any, sep: str = ",") -> Path:
    """A pandas DataFrame as CSV (or TSV with ``sep='\\t'``), written atomically."""
    return write_text(path, frame.to_csv(index=False, sep=sep, lineterminator="\n"))


def read_csv_or_none(path: str | os.PathLike, **kwargs: Any):
    """A CSV as a DataFrame, or ``None`` when it is missing, empty or has no columns (readers of
    partial outputs: a run stopped mid-way, a model without epochs)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        return None
    return frame if len(frame.columns) else None


def write_once(path: str | os.PathLike, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists; ``True`` when this call created it.

    For files that several processes of one run may try to write at the same moment (the
    shared files of a run whose units run as separate jobs): the bytes go to a temporary file,
    which is then hard-linked to ``path``. The link appears whole or not at all, and it never
    replaces a file another process put there first.
    """
    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)
