"""``neurossm summarize RUN_DIR``: the run's tables, summary and report, once every unit is there.

Units of one run can finish in separate jobs (``neurossm train ... --only SEED:FOLD`` per task
of a Slurm array); each writes only its own ``seed_<S>/fold_<k>/`` folder. This gathers them:
``fold_metrics.csv``, ``predictions.csv``, ``summary.json`` and ``report.html``. A unit counts
as there when its ``metrics.json`` (written last) is; the units expected are those of the run's
split files (and, for a seed whose split file is not written yet, the folds its options give).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NeuroSSMError
from ..log import get_logger
from ..report import build_report
from ..training.results import RunDirectory

log = get_logger(__name__)


class UnitsMissing(NeuroSSMError):
    """Some units of the run have not finished yet."""


def expected_units(rd: RunDirectory, options: dict[str, Any]) -> list[tuple[int, int]]:
    """The (seed, fold) units of a run, from its split files and its options."""
    units = []
    for seed in options["seeds"]:
        saved = rd.read_splits(seed)
        if saved is not None:
            units += [(int(s["seed"]), int(s["fold"])) for s in saved]
        else:
            units += [(int(seed), k) for k in range(1 if options["skip_cross_validation"] else options["folds"])]
    return units


def summarize_run(run_dir: str | Path, partial: bool = False) -> dict[str, Any]:
    """Write the run's summary files and report; ``partial=False`` refuses while units are missing.

    Raises
    ------
    UnitsMissing
        Naming the missing units and how to run them.
    """
    rd = RunDirectory(run_dir)
    config = rd.read_config()
    expected = expected_units(rd, config["options"])
    missing = sorted(set(expected) - set(rd.completed_folds()))
    if missing and not partial:
        listed = " ".join(f"{s}:{f}" for s, f in missing)
        raise UnitsMissing(f"{rd.root}: {len(missing)} of {len(expected)} unit(s) not finished: {listed} (SEED:FOLD); "
                           "run them with `neurossm train <the run's arguments> --only SEED:FOLD` or "
                           f"`--resume {rd.root}`, then summarize again")
    header = {"dataset": config["dataset"]["name"], "model": config["model"]["name"], "run_dir": str(rd.root)}
    summary = rd.summarise(header, len(expected))
    build_report(rd.root)
    return summary
