"""Neurosynth reference analysis of CPA maps (docs/reference-analysis.md): ``neurossm reference`` / ``Analysis/run_cpa_analysis.py``.

The CPA files it reads are :mod:`neurossm.explain.files`'s.
"""

from .analysis import ReferenceOptions, run_reference_analysis

__all__ = ["ReferenceOptions", "run_reference_analysis"]
