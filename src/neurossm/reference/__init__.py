"""Neurosynth reference analysis of CPA maps (DESIGN §7): ``neurossm reference`` / ``Analysis/run_cpa_analysis.py``."""

from .analysis import CpaScan, ReferenceOptions, discover_cpa_files, load_cpa_file, run_reference_analysis

__all__ = ["CpaScan", "ReferenceOptions", "discover_cpa_files", "load_cpa_file", "run_reference_analysis"]
