"""Scale-out: units as Ray tasks or as separate --only jobs give the inline run's results."""

import faulthandler
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from neurossm.cli import main as cli_main
from neurossm.errors import ConfigError
from neurossm.io import write_once
from neurossm.pipeline import ExperimentOptions, executors, run_experiment, runner
from neurossm.pipeline.executors import RayExecutor, UnitTask
from neurossm.pipeline.summarize import UnitsMissing, summarize_run

SRC = Path(__file__).resolve().parents[2] / "src"
# A tiny GRU, one epoch, no dropout: a torch model, so the comparison covers CPU training.
TINY_GRU = {"hidden_size": 8, "drop_prob": 0.0}
ALL_UNITS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _opts(root, name, **kw):
    base = dict(dataset="CUSTOM", model="FC_LR", results_root=str(root), run_name=name, seeds=(0, 1), folds=2,
                epochs=1, batch_size=8)
    base.update(kw)
    return ExperimentOptions(**base)


@pytest.fixture(scope="module")
def ray_cluster():
    """A 2-CPU local Ray instance shared by this module's tests; never left running or hanging."""
    ray = pytest.importorskip("ray")
    # A wedged Ray must fail the suite, not stall it: dump the stacks and exit after 10 minutes.
    faulthandler.dump_traceback_later(600, exit=True)
    with pytest.MonkeyPatch.context() as mp:
        # Workers import neurossm from this checkout, installed or not.
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        # Test functions travel to the workers by value (this module is not importable there).
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            yield ray
        finally:
            ray.shutdown()
            faulthandler.cancel_dump_traceback_later()


def _unit_results(run: Path) -> pd.DataFrame:
    rows = []
    for s, k in ALL_UNITS:
        d = run / f"seed_{s}" / f"fold_{k}"
        m = json.loads((d / "metrics.json").read_text())
        p = pd.read_csv(d / "predictions.csv").assign(seed=s, fold=k)
        rows.append(p.assign(**{f"test_{name}": v for name, v in m["test"].items()}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.slow
def test_ray_gives_the_inline_results(tmp_path, tiny_dataset, ray_cluster):
    # --only every unit: all of the run's units, without its summary and report (seconds here).
    opts = dict(model="GRU", model_config=TINY_GRU, only=ALL_UNITS)
    inline = run_experiment(_opts(tmp_path, "inline", **opts), dataset=tiny_dataset)
    ray_run = run_experiment(_opts(tmp_path, "ray", **opts), dataset=tiny_dataset, executor=RayExecutor(cpus_per_fold=1))
    assert not ray_run.failed
    for seed in (0, 1):
        name = f"splits/seed_{seed}.json"
        assert (inline.run_dir / name).read_bytes() == (ray_run.run_dir / name).read_bytes()
    # Same seeds, one thread per unit: CPU training repeats itself exactly (docs/scaling.md measured
    # identical fold metrics inline and on Ray); 1e-9 leaves room for a BLAS that sums differently.
    pd.testing.assert_frame_equal(_unit_results(inline.run_dir), _unit_results(ray_run.run_dir), rtol=1e-9, atol=1e-12)
    assert {p.name for p in (ray_run.run_dir / "logs").iterdir()} == {f"seed_{s}_fold_{k}.log" for s, k in ALL_UNITS}


def _dies_once(marker_dir):
    """A unit body that kills its own worker process the first time it runs unit (0, 1)."""
    real = runner.fit_unit_task

    def work(job, task, device=None):
        marker = Path(marker_dir) / f"attempt_{task.seed}_{task.fold}"
        if (task.seed, task.fold) == (0, 1) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job, task, device)

    return work


def _always_dies(job, task, device=None):
    if (task.seed, task.fold) == (0, 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return runner.fit_unit_task(job, task, device)


@pytest.mark.slow
def test_a_killed_worker_is_retried_once(tmp_path, tiny_dataset, ray_cluster, monkeypatch):
    monkeypatch.setattr(runner, "fit_unit_task", _dies_once(tmp_path))
    res = run_experiment(_opts(tmp_path, "r", seeds=(0,)), dataset=tiny_dataset, executor=RayExecutor())
    assert (tmp_path / "attempt_0_1").is_file(), "the worker was not killed"
    assert not res.failed and res.summary["complete"] and res.summary["n_folds_done"] == 2


@pytest.mark.slow
def test_a_unit_that_dies_twice_is_reported_and_resume_finishes_the_run(tmp_path, tiny_dataset, ray_cluster,
                                                                        monkeypatch):
    opts = _opts(tmp_path, "r")
    monkeypatch.setattr(runner, "fit_unit_task", _always_dies)
    res = run_experiment(opts, dataset=tiny_dataset, executor=RayExecutor())
    assert [(o.task.seed, o.task.fold, o.attempts) for o in res.failed] == [(0, 1, 2)]
    assert res.failed[0].task.log_path == res.run_dir / "logs" / "seed_0_fold_1.log"
    assert "Worker" in res.failed[0].error or "died" in res.failed[0].error
    assert res.summary["n_folds_done"] == 3 and not res.summary["complete"]
    kept = {p: p.stat().st_mtime_ns for p in res.run_dir.glob("seed_*/fold_*/metrics.json")}
    monkeypatch.undo()
    done = run_experiment(_opts(tmp_path, "r", resume=str(res.run_dir)), dataset=tiny_dataset)
    assert done.summary["complete"] and done.summary["n_folds_done"] == 4
    assert {p: p.stat().st_mtime_ns for p in kept} == kept


DATA = ["n_scans=24", "n_rois=6", "n_times=40", "n_signal_rois=2"]
TRAIN = ["--dataset", "SYNTHETIC", "--data-option", *DATA, "--model", "FC_LR", "--seeds", "0", "1", "--folds", "2",
         "--device", "cpu", "--quiet"]


@pytest.mark.slow
def test_only_jobs_in_parallel_then_summarize_equal_the_inline_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}
    array = [sys.executable, "-m", "neurossm", "train", *TRAIN, "--results-root", str(tmp_path), "--run-name", "array"]
    # Two jobs of one run at once, as a Slurm array starts them: they race for the run's shared files.
    jobs = [subprocess.Popen(array + ["--only", *units], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for units in (["0:0", "0:1"], ["1:0"])]
    assert cli_main(["train", *TRAIN, "--results-root", str(tmp_path), "--run-name", "inline"]) == 0
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
    run = tmp_path / "SYNTHETIC" / "FC_LR" / "array"
    assert not (run / "summary.json").exists()
    with pytest.raises(UnitsMissing, match=r"1 of 4 unit\(s\) not finished: 1:1"):
        summarize_run(run)
    assert cli_main(["summarize", str(run), "--quiet"]) == 2

    assert cli_main(["train", *TRAIN, "--results-root", str(tmp_path), "--run-name", "array", "--only", "1:1"]) == 0
    assert cli_main(["summarize", str(run), "--quiet"]) == 0
    ref = tmp_path / "SYNTHETIC" / "FC_LR" / "inline"
    for name in ("splits/seed_0.json", "splits/seed_1.json", "fold_metrics.csv", "predictions.csv"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
    # Each run has its own id; the jobs of one run share the first job's.
    config, ref_config = json.loads((run / "config.json").read_text()), json.loads((ref / "config.json").read_text())
    assert config.pop("run_id") != ref_config.pop("run_id")
    assert config == ref_config
    a, b = json.loads((run / "summary.json").read_text()), json.loads((ref / "summary.json").read_text())
    assert {k: v for k, v in a.items() if k != "run_dir"} == {k: v for k, v in b.items() if k != "run_dir"}
    assert (run / "report.html").is_file()
    assert not list(run.rglob("*.tmp*"))


def test_only_needs_a_named_run_and_a_unit_of_it(tmp_path, tiny_dataset):
    with pytest.raises(ConfigError, match="--run-name"):
        run_experiment(_opts(tmp_path, None, only=((0, 0),)), dataset=tiny_dataset)
    with pytest.raises(ConfigError, match=r"--only 3:0: not a unit of this run.*0:0, 0:1, 1:0, 1:1"):
        run_experiment(_opts(tmp_path, "x", only=((3, 0),)), dataset=tiny_dataset)


def test_only_with_other_arguments_than_the_run_is_refused(tmp_path, tiny_dataset):
    run_experiment(_opts(tmp_path, "x", only=((0, 0),)), dataset=tiny_dataset)
    with pytest.raises(ConfigError, match="arguments differ.*folds"):
        run_experiment(_opts(tmp_path, "x", only=((0, 1),), folds=3), dataset=tiny_dataset)


def test_write_once_keeps_the_first_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "config.json"
    assert write_once(target, "first") is True
    assert write_once(target, "second") is False
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_inline_prints_one_progress_line_per_unit(tmp_path, tiny_dataset, caplog):
    # A handler on the runner's own logger: independent of how earlier tests configured logging.
    caplog.set_level("INFO", logger="neurossm.pipeline.runner")
    handler = _Lines()
    logging.getLogger("neurossm.pipeline.runner").addHandler(handler)
    try:
        # --only all four units: the same units and lines, without the summary's report (seconds).
        run_experiment(_opts(tmp_path, "p", only=ALL_UNITS), dataset=tiny_dataset)
    finally:
        logging.getLogger("neurossm.pipeline.runner").removeHandler(handler)
    lines = [line for line in handler.lines if " done [" in line]
    assert [line.split(":")[0] for line in lines] == [f"seed {s} fold {k} done [{i}/4]" for i, (s, k) in
                                                      enumerate(ALL_UNITS, 1)]
    assert all("accuracy" in line and "ROC-AUC" in line and " s)" in line for line in lines)


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"neurossm\[ray\]"):
        executors.make_executor("ray")


def test_inline_executor_logs_each_unit_to_its_file(tmp_path):
    task = UnitTask(0, 2, None, tmp_path / "logs" / "seed_0_fold_2.log")

    def work(shared, t, device):
        executors.log.info("unit body ran with %s", shared)
        return {"ok": 1}

    [outcome] = list(executors.InlineExecutor().run(work, "shared", [task]))
    assert outcome.ok and outcome.metrics == {"ok": 1}
    assert "unit body ran with shared" in task.log_path.read_text()


def test_only_flag_takes_seed_fold_pairs_and_names_the_format():
    from neurossm.cli.train import _units

    assert _units(["0:3", "1:0"]) == ((0, 3), (1, 0))
    with pytest.raises(ConfigError, match="--only 0-1: expected SEED:FOLD"):
        _units(["0-1"])
