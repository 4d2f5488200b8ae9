"""Bad input and faults fed through the real commands: each gets a clear message and exit code 2
(docs/reliability.md lists every case and its answer), and nothing mixed or stale is left."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurossm.cli import main
from neurossm.cli import tester_main as run_tester
from neurossm.io import read_json

SYNTH = ["--dataset", "SYNTHETIC", "--data-option", "n_scans=12", "n_rois=8", "n_times=30"]


@pytest.fixture
def messages(caplog):
    """Records of the ``neurossm`` logger (the command line stops it from propagating to the root)."""
    logger = logging.getLogger("neurossm")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)


def _errors(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def _warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def custom_folder(root: Path, labels: list[str], subjects: list[str], n_rois: int = 6, n_times: int = 30,
                  shapes: dict[int, tuple[int, ...]] | None = None) -> Path:
    """A CUSTOM folder: one ``.npy`` per scan and labels.csv."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(len(labels)):
        shape = (shapes or {}).get(i, (n_rois, n_times + i))
        np.save(root / f"s{i:02d}.npy", rng.standard_normal(shape))
    pd.DataFrame({"scan": [f"s{i:02d}" for i in range(len(labels))], "subject": subjects,
                  "label": labels}).to_csv(root / "labels.csv", index=False)
    return root


def train(tmp_path, *args: str, runner=main) -> int:
    return runner(["train", *args, "--results-root", str(tmp_path / "Results"), "--run-name", "r"]
                  if runner is main else [*args, "--results-root", str(tmp_path / "Results"), "--run-name", "r"])


# Options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("folds", ["1", "0"])
def test_fewer_than_two_folds(tmp_path, messages, folds):
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", folds) == 2
    assert f"--folds {folds}: cross-validation needs at least 2 folds" in _errors(messages)
    assert "holdout" in _errors(messages)
    assert not (tmp_path / "Results").exists()


@pytest.mark.parametrize("option, expected", [
    ("d_model=-3", "model NeuroSSM: option d_model=-3 is out of range; must be ≥ 1"),
    ("d_model=abc", "model NeuroSSM: option d_model='abc' is not a valid int"),
    ("scales=1,0", "option scales=(1, 0) is out of range; each value must be ≥ 1"),
])
def test_model_options_are_checked_before_anything_is_built(tmp_path, messages, option, expected):
    assert train(tmp_path, *SYNTH, "--epochs", "1", "--config", option) == 2
    assert expected in _errors(messages)
    assert not (tmp_path / "Results").exists()


def test_unknown_model_option_lists_the_known_ones(tmp_path, messages):
    assert train(tmp_path, *SYNTH, "--config", "no_such_option=1") == 2
    assert "model NeuroSSM has no option 'no_such_option'; options: " in _errors(messages)


def test_analysis_with_a_model_cpa_cannot_explain(tmp_path, messages):
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--analysis") == 2
    assert "FC_LR" in _errors(messages) and "CPA" in _errors(messages)
    assert not (tmp_path / "Results").exists()


@pytest.mark.parametrize("flag, value, expected", [
    ("--batch-size", "0", "--batch-size 0: expected a whole number ≥ 1"),
    ("--epochs", "0", "--epochs 0: expected a whole number ≥ 1 (0 epochs would report an untrained"),
    ("--lr", "-1", "--lr -1.0: expected a number > 0"),
    ("--weight-decay", "-0.5", "--weight-decay -0.5: expected a number ≥ 0"),
    ("--patience", "-1", "--patience -1: expected a whole number ≥ 0"),
])
def test_training_options_are_checked_before_anything_is_built(tmp_path, messages, flag, value, expected):
    assert train(tmp_path, *SYNTH, flag, value, runner=run_tester) == 2
    assert expected in _errors(messages)
    assert not (tmp_path / "Results").exists()


# Classes and folds ------------------------------------------------------------------------------

def test_a_class_with_a_single_subject(tmp_path, messages):
    labels = ["a", "b"] * 4 + ["c", "c"]
    subjects = [f"p{i}" for i in range(8)] + ["only", "only"]
    root = custom_folder(tmp_path / "data", labels, subjects)
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR", "--folds", "2") == 2
    err = _errors(messages)
    assert "class 'c' has 1 subject (only)" in err and "at least 2 subjects" in err
    assert "Subjects per class: 'a' 4, 'b' 4, 'c' 1" in err
    assert not (tmp_path / "Results").exists()  # refused before the run folder was made


@pytest.mark.slow  # trains (a few seconds)
def test_tiny_dataset_trains_every_fold_on_every_class(tmp_path, messages):
    # 6 scans, 2 folds: a training fold holds 3 scans; the validation split must leave both classes to fit.
    assert train(tmp_path, *SYNTH[:3], "n_scans=6", "n_rois=8", "n_times=30", "--model", "FC_LR",
                 "--folds", "2") == 0
    run = tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r"
    labels = {s["scan_id"]: s["label"] for s in
              pd.read_csv(run / "predictions.csv", dtype={"scan_id": str}).to_dict("records")}
    for split in read_json(run / "splits" / "seed_0.json"):
        assert {labels[i] for i in split["train"]} == {0, 1}


@pytest.mark.slow  # trains (a few seconds)
def test_undefined_roc_auc_is_warned_and_counted(tmp_path, messages, capsys):
    # One subject per test fold: every test fold holds a single class, so ROC-AUC is defined on none.
    labels = ["a", "a", "b", "b"] * 2
    subjects = ["p0", "p0", "p1", "p1", "p2", "p2", "p3", "p3"]
    root = custom_folder(tmp_path / "data", labels, subjects)
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR", "--folds", "4") == 0
    assert "ROC-AUC is undefined: the test fold holds only class" in _warnings(messages)
    summary = read_json(tmp_path / "Results" / "CUSTOM" / "FC_LR" / "r" / "summary.json")
    assert summary["n_folds_defined"]["roc_auc"] == 0 and summary["n_folds_defined"]["accuracy"] == 4
    out = capsys.readouterr().out
    assert "over the 0 of 4 folds where it is defined (undefined on a test fold holding one class)" in out
    assert "precision (macro)" in out and "recall (macro)" in out


# Data files -------------------------------------------------------------------------------------

def test_one_dimensional_scan_names_its_file(tmp_path, messages):
    labels, subjects = ["a", "b"] * 4, [f"p{i}" for i in range(8)]
    root = custom_folder(tmp_path / "data", labels, subjects, shapes={3: (30,)})
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR") == 2
    err = _errors(messages)
    assert f"{root / 's03.npy'}: shape (30,)" in err and "2-D" in err


def test_mixed_orientation_is_named(tmp_path, messages):
    labels, subjects = ["a", "b"] * 4, [f"p{i}" for i in range(8)]
    root = custom_folder(tmp_path / "data", labels, subjects, shapes={2: (35, 6), 5: (40, 6)})
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR") == 2
    err = _errors(messages)
    assert "orientation is mixed" in err and "s02.npy" in err and "s05.npy" in err and "ROI count 6" in err


# The run folder -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_results_root_that_cannot_be_written(tmp_path, messages, kind):
    root = tmp_path / "Results"
    if kind == "file":
        root.write_text("not a folder")
        expected = f"{root} is a file, not a folder"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        root.mkdir()
        root.chmod(0o555)
        expected = f"cannot write in {root}"
    try:
        assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == 2
    finally:
        if kind != "file":
            root.chmod(0o755)
    assert f"--results-root {root}: " in _errors(messages) and expected in _errors(messages)


@pytest.mark.slow  # trains (a few seconds)
def test_a_failed_run_leaves_no_folder_that_blocks_its_name(tmp_path, messages, monkeypatch):
    from neurossm.training import estimators

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(estimators.FeatureEstimator, "fit", broken_fit)
        with pytest.raises(RuntimeError, match="disk full"):
            train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2")
    run = tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r"
    assert not run.exists()
    assert f"the run failed before any fold finished; removed {run}" in _errors(messages)
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == 0  # the same name is free
    assert read_json(run / "summary.json")["complete"]


# Command line ---------------------------------------------------------------------------------------

def test_skip_cross_validation_help_says_the_holdout_is_fold_0(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "the holdout is fold 0 of --folds" in help_text


@pytest.mark.slow  # trains (a few seconds)
def test_cpu_fallback_for_a_gpu_request_is_said_once(tmp_path, messages, monkeypatch, recwarn):
    import torch

    from neurossm.training import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_CPU_FALLBACK_SAID", set())
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2", "--device", "0") == 0
    records = {id(r): r for r in messages.records}.values()  # a record reaching the handler twice is one
    said = [r for r in records if "CUDA is not available" in r.getMessage()]
    said += [w for w in recwarn if "CUDA is not available" in str(w.message)]
    assert len(said) == 1


# Hostile input and faults (issue 25) ------------------------------------------------------------

def _custom(tmp_path, labels=None, subjects=None, **kw) -> Path:
    labels = labels or ["a", "b"] * 4
    subjects = subjects or [f"p{i}" for i in range(len(labels))]
    return custom_folder(tmp_path / "data", labels, subjects, **kw)


def _train_custom(tmp_path, root, *args: str, runner=main) -> int:
    return train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR", "--folds", "2",
                 *args, runner=runner)


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("scan_id", ["../x/evil", "ABSOLUTE", "../../x/evil", "..", "sub/evil"])
def test_scan_ids_that_are_paths_are_refused_naming_the_line(tmp_path, messages, scan_id):
    root = _custom(tmp_path)
    outside = tmp_path / "x"
    outside.mkdir()
    np.save(outside / "evil.npy", np.ones((6, 30)))
    scan_id = str(outside / "evil") if scan_id == "ABSOLUTE" else scan_id
    table = pd.read_csv(root / "labels.csv", dtype=str)
    table.loc[2, "scan"] = scan_id
    table.to_csv(root / "labels.csv", index=False)
    before = _files_under(tmp_path)
    assert _train_custom(tmp_path, root, "--analysis-root", str(tmp_path / "A")) == 2
    err = _errors(messages)
    assert f"{root / 'labels.csv'}, line 4: scan id {scan_id!r}" in err and "never a path" in err
    assert _files_under(tmp_path) == before  # nothing written anywhere, no run folder


def test_every_path_built_from_an_id_stays_in_its_folder(tmp_path):
    from neurossm.data.scans import Scan, assemble
    from neurossm.errors import DataFormatError
    from neurossm.explain.files import file_path
    from neurossm.reference.analysis import _safe

    assert file_path(tmp_path, "sub-01") == tmp_path / "subj_sub-01.npz"
    for bad in ("../evil", "/tmp/evil", "a/b", "x\nnewline"):
        with pytest.raises(DataFormatError, match="ids are file names, not paths"):
            file_path(tmp_path, bad)
    # a seed-file loader (subject id -> array) hands assemble() its ids: they are checked there too
    scans = [Scan("../../evil" if i == 0 else f"s{i}", f"p{i}", i % 2, np.zeros((3, 10), np.float32))
             for i in range(4)]
    with pytest.raises(DataFormatError, match=r"scan id '\.\./\.\./evil' holds a path separator"):
        assemble("HCP_REST", scans, ("a", "b"), atlas="x", n_rois=3, crop_length=None)
    assert _safe("..") == "__" and _safe("../evil") == ".._evil"  # class names become folder names


def test_a_run_folder_is_claimed_by_one_process_only(tmp_path):
    import threading

    from neurossm.errors import ConfigError
    from neurossm.pipeline.runner import _claim_run_dir

    path = tmp_path / "Results" / "D" / "M" / "r"
    barrier, won, refused = threading.Barrier(8), [], []

    def claim():
        barrier.wait()
        try:
            won.append(_claim_run_dir(path, numbered=False))
        except ConfigError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won == [path] and len(refused) == 7 and "exists but holds no run" in refused[0]
    # the default (timestamp) name is numbered instead of refused
    assert _claim_run_dir(path, numbered=True) == path.with_name("r-2")


@pytest.mark.slow  # trains (a few seconds)
def test_a_failed_run_never_removes_a_folder_it_did_not_make(tmp_path, messages, monkeypatch):
    from neurossm.training import estimators

    run = tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r"
    run.mkdir(parents=True)  # another process claimed the name a moment ago
    (run / "theirs.txt").write_text("another run's file")
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == 2
    assert "exists but holds no run" in _errors(messages) and (run / "theirs.txt").is_file()
    # an --only job that fails in a shared folder leaves it to the other jobs
    (run / "theirs.txt").unlink()

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("fault")

    monkeypatch.setattr(estimators.FeatureEstimator, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="fault"):
        train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2", "--only", "0:0")
    assert (run / "config.json").is_file()


def test_a_refused_only_leaves_nothing_that_blocks_the_retry(tmp_path, messages):
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2", "--only", "0:99") == 2
    assert "--only 0:99: not a unit of this run" in _errors(messages)
    assert not (tmp_path / "Results").exists()
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2", "--only", "0:1") == 0


def test_extreme_values_are_standardised_not_zeroed():
    from neurossm.data.records import prepare_timeseries

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 50))
    spike = x.copy()
    spike[1, 7] = 1e30
    z = prepare_timeseries(spike, 4, "s")
    assert np.isfinite(z).all() and z[1].std() > 0.99 and z[1].argmax() == 7
    tiny = prepare_timeseries(x * 1e-25, 4, "s")
    np.testing.assert_allclose(tiny, prepare_timeseries(x, 4, "s"), atol=1e-5)  # not zeros


def test_a_value_float32_cannot_hold_is_named_as_such(tmp_path, messages):
    root = _custom(tmp_path)
    x = np.load(root / "s05.npy")
    x[2, 3] = 1e39
    np.save(root / "s05.npy", x)
    assert _train_custom(tmp_path, root) == 2
    err = _errors(messages)
    assert "s05.npy: scan s05 has 1 value(s) too large for float32 (largest magnitude 1e+39" in err
    assert "ROI(s) [2]" in err and "NaN/Inf" not in err


def test_one_and_one_point_zero_are_one_class(tmp_path):
    from neurossm.data import load_dataset

    root = _custom(tmp_path, labels=["1", "0", "1.0", "0.0", "1", "0", "+1", "0"])
    ds = load_dataset("CUSTOM", root)
    assert ds.class_names == ("0", "1") and ds.labels.tolist() == [1, 0, 1, 0, 1, 0, 1, 0]


def test_one_subject_written_two_ways_is_refused_naming_both(tmp_path, messages):
    root = _custom(tmp_path, subjects=["007", "p1", "p2", "p3", "7", "p5", "p6", "p7"])
    assert _train_custom(tmp_path, root) == 2
    err = _errors(messages)
    assert "'007' (scan s00" in err and "'7' (scan s04" in err and "leading zeros" in err
    assert not (tmp_path / "Results").exists()


def test_a_scan_too_short_is_named_with_the_choices(tmp_path, messages):
    root = _custom(tmp_path, shapes={3: (6, 3)})
    assert _train_custom(tmp_path, root) == 2
    err = _errors(messages)
    assert "s03 (3 time points" in err and "s03.npy" in err and "--crop-length N" in err
    assert "remove their rows from labels.csv" in err


@pytest.mark.slow  # trains (a few seconds)
def test_a_crop_length_leaves_out_the_short_scan_by_name(tmp_path, messages):
    root = _custom(tmp_path, labels=["a", "b"] * 5, shapes={3: (6, 3)})
    assert _train_custom(tmp_path, root, "--crop-length", "20") == 0
    assert "1 scan(s) shorter than the crop length 20 are left out: s03 (3 time points" in _warnings(messages)


def test_the_model_refusing_the_default_crop_names_the_scans(tmp_path, messages):
    root = _custom(tmp_path, n_times=3, shapes={i: (6, 3) for i in range(8)})
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--folds", "2") == 2
    err = _errors(messages)
    assert "crop length 3 is the shortest scan's: s00" in err and "--crop-length" in err


def test_complex_values_are_refused(tmp_path, messages):
    root = _custom(tmp_path)
    np.save(root / "s04.npy", np.load(root / "s04.npy") * (1 + 1j))
    assert _train_custom(tmp_path, root) == 2
    assert "s04.npy: scan s04: holds complex values" in _errors(messages)


def _huge_header_npy(path: Path) -> None:
    """A .npy whose header claims 10^12 float64 values while holding 80 bytes."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (1_000_000, 1_000_000)})
        fh.write(np.zeros(10).tobytes())


@pytest.mark.parametrize("fault, expected", [
    ("latin-1 labels", "labels.csv: is not UTF-8 text"),
    ("empty labels", "labels.csv: is empty; expected a header row scan,subject,label"),
    ("0-byte npy", "s02.npy: is empty (0 bytes)"),
    ("huge header", "s02.npy: its header says shape (1000000, 1000000) of float64 (8.0 TB), but the file holds 80 bytes"),
    ("truncated npz", "s02.npz: cannot be read"),
])
def test_damaged_input_files_are_user_errors_naming_the_file(tmp_path, messages, fault, expected):
    root = _custom(tmp_path)
    if fault == "latin-1 labels":
        text = (root / "labels.csv").read_text().replace("p1", "Müller")
        (root / "labels.csv").write_bytes(text.encode("latin-1"))
    elif fault == "empty labels":
        (root / "labels.csv").write_bytes(b"")
    elif fault == "0-byte npy":
        (root / "s02.npy").write_bytes(b"")
    elif fault == "huge header":
        _huge_header_npy(root / "s02.npy")
    else:
        (root / "s02.npy").unlink()
        np.savez(root / "s02.npz", x=np.ones((6, 32)))
        (root / "s02.npz").write_bytes((root / "s02.npz").read_bytes()[:60])
    assert _train_custom(tmp_path, root) == 2
    assert expected in _errors(messages)
    assert not (tmp_path / "Results").exists()


@pytest.mark.slow  # trains (a few seconds)
def test_disk_full_is_one_line_exit_1_and_nothing_half_written(tmp_path, messages, monkeypatch, capsys):
    import errno

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 6:  # the run's shared files are written; the disk fills during the first fold
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == 1
    monkeypatch.undo()
    err = _errors(messages)
    assert "no space left on device: could not write " in err and "Traceback" not in capsys.readouterr().err
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    for path in tmp_path.rglob("*.json"):  # whatever is there is whole
        read_json(path)


@pytest.fixture
def finished_run(tmp_path):
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == 0
    return tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r"


@pytest.mark.slow  # trains (a few seconds)
@pytest.mark.parametrize("damage", ["config.json", "splits/seed_0.json", "seed_0/fold_1/metrics.json", "model"])
def test_damaged_run_files_are_named_before_resume_or_explain(tmp_path, finished_run, messages, damage):
    fold = finished_run / "seed_0" / "fold_1"
    if damage == "model":
        path = next(p for p in fold.iterdir() if p.suffix not in (".json", ".csv"))
    else:
        path = finished_run / damage
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()}
    assert main(["train", *SYNTH, "--model", "FC_LR", "--folds", "2", "--resume", str(finished_run)]) == 2
    assert str(path) in _errors(messages) and "damaged file(s) in the run" in _errors(messages)
    messages.clear()
    assert main(["explain", "--run", str(finished_run), "--analysis-root", str(tmp_path / "A")]) == 2
    assert str(path) in _errors(messages)
    assert {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "A").exists()


class _FakeRay:
    """What RayExecutor asks of Ray, with a cluster of one 16-CPU node and no GPU."""

    class exceptions:
        RayTaskError = RayError = RuntimeError

    def __init__(self):
        self.started = False

    def is_initialized(self):
        return self.started

    def init(self, **kwargs):
        self.started = True

    def shutdown(self):
        self.started = False

    def nodes(self):
        return [{"Alive": True, "Resources": {"CPU": 16.0, "memory": 1e10}}]

    def cluster_resources(self):
        return {"CPU": 16.0}


@pytest.mark.parametrize("flag, value, expected", [
    ("--cpus-per-fold", "99", "--cpus-per-fold 99: the local Ray instance has at most 16 CPU(s) on a node"),
    ("--gpus-per-fold", "1", "--gpus-per-fold 1: the local Ray instance has at most 0 GPU(s) on a node"),
])
def test_ray_requests_beyond_the_cluster_fail_fast_with_both_numbers(tmp_path, messages, monkeypatch, flag, value,
                                                                    expected):
    from neurossm.pipeline import executors

    fake = _FakeRay()
    monkeypatch.setattr(executors, "import_ray", lambda: fake)
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2", "--executor", "ray", flag, value) == 2
    assert expected in _errors(messages)
    assert not fake.started  # the instance it started is stopped
    assert not (tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r").exists()


@pytest.mark.slow  # trains (a few seconds)
@pytest.mark.parametrize("how, code", [("SIGTERM", 143), ("Ctrl-C", 130)])
def test_sigterm_and_ctrl_c_keep_finished_folds_without_a_traceback(tmp_path, messages, monkeypatch, capsys, how,
                                                                    code):
    import signal

    from neurossm.training import estimators

    real_fit = estimators.FeatureEstimator.fit
    fits = {"n": 0}

    def fit(self, *args, **kwargs):
        fits["n"] += 1
        if fits["n"] == 2:  # during the second fold
            if how == "SIGTERM":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(estimators.FeatureEstimator, "fit", fit)
    handler = signal.getsignal(signal.SIGTERM)
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == code
    assert signal.getsignal(signal.SIGTERM) is handler  # restored after the command
    run = tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r"
    assert (run / "seed_0" / "fold_0" / "metrics.json").is_file()
    err = _errors(messages)
    assert f"continue with --resume {run}" in err and f"exit code {code}" in err
    assert not any(r.exc_info for r in messages.records)
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setattr(estimators.FeatureEstimator, "fit", real_fit)
    assert main(["train", *SYNTH, "--model", "FC_LR", "--folds", "2", "--resume", str(run)]) == 0
