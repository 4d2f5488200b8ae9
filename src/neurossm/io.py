"""Atomic file writes: a reader never sees a half-written file, a killed run leaves none.

Every file neurossm writes goes through these helpers: the bytes go to a temporary file in the
destination folder, which is then renamed over the destination (``os.replace`` is atomic on one
file system).
"""

from __future__ import annotations

import contextlib
import errno
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
        with _disk_full_named(path):
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
        with _disk_full_named(path):
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


# Disk space below which a failed write is taken for a full disk: torch's serializer reports one
# as a RuntimeError ("file write failed"), not as the OSError (ENOSPC) underneath.
_NEARLY_FULL_BYTES = 1 << 20


@contextlib.contextmanager
def _disk_full_named(path: Path) -> Iterator[None]:
    """Turn a write that failed for want of space into :class:`~neurossm.errors.DiskFullError` naming ``path``."""
    from .errors import DiskFullError

    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if not _is_disk_full(exc, path.parent):
            raise
        raise DiskFullError(errno.ENOSPC, f"no space left on device: could not write {path} (the device holding "
                            f"{path.parent} is full); nothing was half-written. Free some space (or pass a "
                            "folder on another disk) and run the command again", str(path)) from exc


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, OSError):
        return False
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be used as one file name inside a folder, or ``None`` when it can.

    Scan ids (and the class names that become folders) are names, never paths: an id such as
    ``../x/evil`` or ``/etc/evil`` would make a loader read, and a writer write, outside the
    folder it was given. Refused: an empty name, ``.`` and ``..``, an absolute path, a path
    separator, control characters (a newline, NUL), and names too long for a file system.
    """
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, which names a folder, not a file in it"
    if os.path.isabs(name) or name.startswith(("/", "\\")):
        return "is an absolute path"
    separators = sorted({c for c in name if c in ("/", "\\", os.sep, os.altsep)})
    if separators:
        return f"holds a path separator ({' '.join(repr(c) for c in separators)})"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character (a newline, tab or NUL)"
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        return f"is {len(name.encode('utf-8', 'surrogateescape'))} bytes long; at most {_MAX_NAME_BYTES} fit in a file name"
    return None


# 255 bytes per file name on common file systems, less room for a prefix and an extension (subj_<id>.npz).
_MAX_NAME_BYTES = 200


def path_in(folder: str | os.PathLike, name: str, what: str = "name") -> Path:
    """``folder / name``, provided that ``name`` is a plain file name (:func:`name_problem`) and the
    path stays inside ``folder``; otherwise :class:`~neurossm.errors.DataFormatError`.

    Every path built from an id that came from a user's file (a scan id, a class name) goes
    through here. ``what`` says what the name is in the message (``scan id``). Symbolic links in
    ``folder`` are followed on purpose (DataLad and git-annex keep scans as links); the check is
    on the name, which is what a hostile ``labels.csv`` controls.
    """
    from .errors import DataFormatError

    problem = name_problem(str(name))
    if problem is None:
        base = Path(os.path.normpath(Path(folder).absolute()))
        if Path(os.path.normpath(base / name)).parent != base:
            problem = f"leads outside {folder}"
    if problem is not None:
        raise DataFormatError(f"{what} {name!r} {problem}; ids are file names, not paths (no folder, no '/', "
                              "no '..')")
    return Path(folder) / name


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
        with _disk_full_named(path):
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
