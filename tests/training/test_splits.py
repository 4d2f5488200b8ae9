import numpy as np
import pytest

from neurossm.data.splits import check_disjoint, make_splits
from neurossm.errors import DataFormatError


def test_subjects_never_straddle_sides(tiny_dataset):
    splits = make_splits(tiny_dataset, seed=3, n_folds=5)
    assert len(splits) == 5
    all_test = []
    for split in splits:
        check_disjoint(tiny_dataset, split)
        assert set(split.train).isdisjoint(split.test) and set(split.val).isdisjoint(split.test)
        assert len(split.train) + len(split.val) + len(split.test) == len(tiny_dataset)
        all_test.extend(split.test)
    assert sorted(all_test) == sorted(tiny_dataset.scan_ids)  # each scan tested exactly once


def test_same_seed_same_splits_other_seed_other_splits(tiny_dataset):
    a = [s.to_dict() for s in make_splits(tiny_dataset, seed=1)]
    b = [s.to_dict() for s in make_splits(tiny_dataset, seed=1)]
    c = [s.to_dict() for s in make_splits(tiny_dataset, seed=2)]
    assert a == b and a != c


def test_single_split_for_skip_cross_validation(tiny_dataset):
    splits = make_splits(tiny_dataset, seed=0, single=True)
    assert len(splits) == 1 and splits[0].val and splits[0].test


def test_too_few_subjects_for_the_folds_is_a_clear_error(tiny_dataset):
    with pytest.raises(DataFormatError, match="subject-disjoint.*--folds"):
        make_splits(tiny_dataset, seed=0, n_folds=len(set(tiny_dataset.subjects)) + 1)


def test_check_disjoint_catches_a_leak(tiny_dataset):
    split = make_splits(tiny_dataset, seed=0)[0]
    leaked = type(split)(split.seed, split.fold, split.train + split.test[:1], split.val, split.test)
    with pytest.raises(AssertionError, match="both"):
        check_disjoint(tiny_dataset, leaked)
    assert np.unique(tiny_dataset.subjects).size < len(tiny_dataset)  # several scans per subject
