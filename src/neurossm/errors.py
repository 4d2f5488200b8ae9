"""Exceptions that speak to a researcher: each names the file, the scan and the fix."""


class NeuroSSMError(Exception):
    """Base class of every error neurossm raises on purpose."""


class DataFormatError(NeuroSSMError, ValueError):
    """Input data that cannot be used as it is (wrong shape, missing labels, NaN, ...)."""


class DataNotFoundError(NeuroSSMError, FileNotFoundError):
    """An expected file or folder is missing."""


class ConfigError(NeuroSSMError, ValueError):
    """An option or configuration value that makes no sense."""


class DiskFullError(OSError):
    """A write failed because the device holding the file has no space left (``ENOSPC``).

    Not a user error (exit code 1, not 2), but it names the file and the fix instead of a traceback;
    the atomic writers of :mod:`neurossm.io` leave no half-written file behind.
    """

    def __str__(self) -> str:
        return str(self.strerror)


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (what Slurm and Kubernetes send before they kill a job).

    A subclass of :class:`KeyboardInterrupt`, so that a run treats it as Ctrl-C: finished folds are
    kept and the command exits with 143 (128 + SIGTERM) instead of Ctrl-C's 130.
    """
