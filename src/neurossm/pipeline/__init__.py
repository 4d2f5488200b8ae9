"""Orchestration above the layers: fit one (seed, fold) unit → explain → summarise → report; the demo.

- :mod:`.unit`: :func:`fit_unit`, the unit of work every runner and executor calls;
- :mod:`.runner`: :func:`run_experiment`, a whole run (``neurossm train``, ``tester.py``);
- :mod:`.executors`: who runs the units (inline, or Ray tasks);
- :mod:`.summarize`: the run's summary and report once every unit is there (``neurossm summarize``);
- :mod:`.options`: :class:`ExperimentOptions`, what defines a run;
- :mod:`.demo`: ``neurossm demo``.
"""

from .options import ExperimentOptions
from .runner import RunResult, run_experiment, summary_table
from .unit import UnitContext, UnitResult, explain_unit, fit_unit, load_unit

__all__ = ["ExperimentOptions", "RunResult", "UnitContext", "UnitResult", "explain_unit", "fit_unit", "load_unit",
           "run_experiment", "summary_table"]
