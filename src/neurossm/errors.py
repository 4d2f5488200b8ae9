"""Exceptions that speak to a researcher: each names the file, the scan and the fix."""


class NeuroSSMError(Exception):
    """Base class of every error neurossm raises on purpose."""


class DataFormatError(NeuroSSMError, ValueError):
    """Input data that cannot be used as it is (wrong shape, missing labels, NaN, ...)."""


class DataNotFoundError(NeuroSSMError, FileNotFoundError):
    """An expected file or folder is missing."""


class ConfigError(NeuroSSMError, ValueError):
    """An option or configuration value that makes no sense."""
