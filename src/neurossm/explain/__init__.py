"""Calibrated Pathway Attribution (CPA); see :mod:`neurossm.explain.cpa`."""

from .cpa import CPAResult, explain_scan_batch, explain_to_files

__all__ = ["CPAResult", "explain_scan_batch", "explain_to_files"]
