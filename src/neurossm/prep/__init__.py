"""Extract ROI time series from 4D NIfTI BOLD files (``neurossm prep``); see ``docs/prep.md``."""

from .extract import CONFOUND_STRATEGIES, ExtractOptions, Extraction, extract_file, extract_timeseries
from .run import PrepResult, discover, read_labels, run_prep, scan_identity

__all__ = [
    "CONFOUND_STRATEGIES", "ExtractOptions", "Extraction", "extract_file", "extract_timeseries",
    "PrepResult", "discover", "read_labels", "run_prep", "scan_identity",
]
