"""Tiny seed-layout fixtures written into tmp_path: never real data."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from neurossm.data.hcp import PHENO_FILE, REST_FILE, TASK_FILE
from neurossm.data.ppmi import PPMI_FILE

N_SCHAEFER = 400
N_AAL = 166
N_TIMES = 40
SUBJECTS = [str(100000 + i) for i in range(12)]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def write_pheno(root: Path, subjects=SUBJECTS, genders=None, releases=None, columns=None) -> Path:
    """pheno.csv with alternating genders and releases Q1/Q2 unless given."""
    n = len(subjects)
    frame = pd.DataFrame({
        "Subject": list(subjects),
        "Release": releases if releases is not None else ["Q1" if i % 3 else "Q2" for i in range(n)],
        "Gender": genders if genders is not None else ["F" if i % 2 else "M" for i in range(n)],
        "Age": ["22-25"] * n,
    })
    if columns is not None:
        frame = frame[columns]
    path = root / PHENO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def save_object(path: Path, obj) -> Path:
    """np.save of a Python object, as the seed .npy files are (a pickle inside)."""
    if isinstance(obj, list):
        arr = np.empty(len(obj), dtype=object)
        arr[:] = obj
        obj = arr
    np.save(path, obj, allow_pickle=True)
    return path


@pytest.fixture
def rest_data(rng) -> dict[int, np.ndarray]:
    return {int(s): rng.standard_normal((N_SCHAEFER, N_TIMES)) for s in SUBJECTS}


@pytest.fixture
def hcp_root(tmp_path, rest_data) -> Path:
    """Dataset/Data-like folder: a rest dict subject → array, and pheno.csv."""
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    write_pheno(tmp_path)
    return tmp_path


@pytest.fixture
def task_data(rng) -> dict[str, dict[int, np.ndarray]]:
    tasks = ["tfMRI_MOTOR_LR", "tfMRI_WM_LR", "tfMRI_EMOTION_LR"]
    return {t: {int(s): rng.standard_normal((N_SCHAEFER, N_TIMES)) for s in SUBJECTS[:6]} for t in tasks}


def save_task(root: Path, obj) -> Path:
    return save_object(root / TASK_FILE, obj)


def save_ppmi(root: Path, obj) -> Path:
    path = root / PPMI_FILE
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
    return path


@pytest.fixture
def ppmi_records(rng) -> list[dict]:
    groups = ["PD", "Control"] * 5 + ["Prodromal", "SWEDD"]
    return [{"roiTimeseries": rng.standard_normal((N_AAL, N_TIMES)), "subjectId": 3000 + i, "group": g}
            for i, g in enumerate(groups)]


def write_folder(root: Path, arrays: dict[str, np.ndarray], labels: dict[str, object], subjects=None,
                 ext: str = ".npy") -> Path:
    """A CUSTOM folder: one file per scan plus labels.csv."""
    root.mkdir(parents=True, exist_ok=True)
    for scan, arr in arrays.items():
        if ext == ".npy":
            np.save(root / f"{scan}.npy", arr)
        elif ext == ".npz":
            np.savez(root / f"{scan}.npz", ts=arr)
        else:
            np.savetxt(root / f"{scan}{ext}", arr, delimiter="\t" if ext == ".tsv" else ",")
    subjects = subjects or {s: f"sub{i // 2}" for i, s in enumerate(labels)}
    pd.DataFrame({"scan": list(labels), "subject": [subjects[s] for s in labels],
                  "label": [labels[s] for s in labels]}).to_csv(root / "labels.csv", index=False)
    return root


@pytest.fixture
def folder_arrays(rng) -> dict[str, np.ndarray]:
    # 12 scans, 10 ROIs, lengths 30..41 so that the ROI axis is the one constant axis
    return {f"scan{i:02d}": rng.standard_normal((10, 30 + i)) for i in range(12)}


@pytest.fixture
def folder_labels() -> dict[str, object]:
    return {f"scan{i:02d}": ("patient" if i % 2 else "control") for i in range(12)}


@pytest.fixture
def lay() -> SimpleNamespace:
    """The writers and sizes above, for tests (imported through a fixture: conftest is not a module to import)."""
    return SimpleNamespace(write_pheno=write_pheno, save_object=save_object, save_task=save_task,
                           save_ppmi=save_ppmi, write_folder=write_folder, N_SCHAEFER=N_SCHAEFER,
                           N_AAL=N_AAL, N_TIMES=N_TIMES, SUBJECTS=SUBJECTS)
