"""The run report: one self-contained ``report.html`` per run folder.

Written after every run (``tester.py``, ``neurossm train``, ``neurossm demo``) and rebuilt with
``neurossm report RUN_DIR``. Images are embedded as PNG data URIs and the CSS is inline, so the
file can be mailed or archived on its own.
"""

from .build import build_report

__all__ = ["build_report"]
