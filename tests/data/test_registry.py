"""The dataset registry: a dataset registered by its own module is usable everywhere by name."""

from __future__ import annotations

import numpy as np
import pytest

from neurossm.config import ATLASES, TrainingConfig, named_atlas
from neurossm.data import load_dataset
from neurossm.data.registry import (_REGISTRY, DatasetOption, DatasetSpec, get_dataset, register_dataset,
                                    training_defaults)
from neurossm.data.scans import Scan, assemble
from neurossm.errors import ConfigError
from neurossm.reference.terms import terms_for


@pytest.fixture
def toy():
    """A dataset registered as docs/datasets.md shows, removed again after the test."""
    calls = []

    def _load(data_root, *, n_rois, crop_length, seed, flip=False):
        calls.append((data_root, n_rois, crop_length, seed, flip))
        rng = np.random.default_rng(seed)
        scans = [Scan(f"s{i}", f"sub{i}", (i % 2) ^ int(flip), rng.standard_normal((n_rois or 4, 30)).astype(np.float32))
                 for i in range(6)]
        return assemble("TOY", scans, ("A", "B"), atlas="custom", n_rois=n_rois or 4, crop_length=crop_length)

    spec = register_dataset(DatasetSpec(
        "TOY", "custom", None, 20, "label", "a toy dataset", _load, class_names=("A", "B"),
        options={"flip": DatasetOption(False, lambda v: v.lower() == "true", "swap the labels")},
        training=TrainingConfig(epochs=3, lr=1e-2), terms={"A": ["working memory"], "b": []}))
    yield spec, calls
    _REGISTRY.pop("TOY")


def test_a_registered_dataset_loads_by_name_with_its_options_and_defaults(toy):
    spec, calls = toy
    assert get_dataset("toy") is spec
    ds = load_dataset("Toy", seed=3, flip="true")
    assert calls == [(None, None, 20, 3, True)] and len(ds) == 6 and ds.crop_length == 20
    assert [s.label for s in ds.scans[:2]] == [1, 0]
    assert training_defaults("TOY", lr=None, epochs=5) == TrainingConfig(epochs=5, lr=1e-2)
    assert terms_for("TOY", "a") == ["working memory"] and terms_for("TOY", "B") == []
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['nope'\].*flip"):
        load_dataset("TOY", nope=1)


def test_a_second_dataset_of_the_same_name_is_refused(toy):
    spec, _ = toy
    with pytest.raises(ValueError, match="TOY is registered twice"):
        register_dataset(DatasetSpec("toy", "custom", None, None, "label", "another", spec.loader))


def test_one_atlas_table_with_aliases():
    assert named_atlas("AAL-3") is ATLASES["aal3v2"] and named_atlas("Schaefer_400").n_rois == 400
    assert named_atlas("my_atlas.nii.gz") is None
    assert get_dataset("PPMI").n_rois == ATLASES["aal3v2"].n_rois
    assert {get_dataset(n).atlas for n in ("HCP_REST", "HCP_TASK")} == {"schaefer400"}
