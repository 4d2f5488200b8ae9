"""The converted Neurosynth Dataset is cached as data only: nothing in the cache folder can run
code (docs/reliability.md, "Hostile input and faults")."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pandas as pd

from neurossm.reference import neurosynth as ns


def test_the_cache_holds_data_only_and_a_legacy_pickle_is_never_loaded(tmp_path, neurosynth_fixture_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with gzip.open(cache / ns.LEGACY_CACHE_NAME, "wb") as fh:
        pickle.dump(Payload(), fh)
    (cache / (ns.LEGACY_CACHE_NAME + ".json")).write_text('{"sha256": "forged"}')
    files = ns.resolve_files(files_dir=neurosynth_fixture_dir)
    first = ns.load_dataset(files, cache)
    assert not marker.exists() and not (cache / ns.LEGACY_CACHE_NAME).exists()
    with np.load(cache / ns.DATASET_CACHE_NAME, allow_pickle=False) as npz:  # refuses any pickle inside
        assert all(npz[k].dtype != object for k in npz.files)
    again = ns.load_dataset(files, cache)
    for name in ("coordinates", "metadata", "annotations"):
        pd.testing.assert_frame_equal(getattr(first, name).reset_index(drop=True),
                                      getattr(again, name).reset_index(drop=True))
    assert list(again.ids) == list(first.ids) and again.space == first.space
