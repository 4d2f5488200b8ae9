"""``neurossm predict``: a saved model (or a run's fold models) predicts new scans."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, DataFormatError
from ..log import get_logger

log = get_logger(__name__)

DEVICE_DEFAULT = "cpu"
DESCRIPTION = ("Predict new scans with a saved model (Classifier.save, or a fold's model.pt) or with the fold models "
               "of a `neurossm train` run; writes predictions.csv (scan, predicted class, one probability per class).")
# Labels that say nothing about the atlas: no refusal on them.
_UNNAMED_ATLASES = (None, "", "custom")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH|RUN_DIR",
                   help="a saved model file, or a run folder (Results/<DATASET>/<MODEL>/<run>)")
    p.add_argument("--data-root", required=True, metavar="DIR",
                   help="the scans: a folder of per-scan files (labels.csv optional), or a dataset's files")
    p.add_argument("--dataset", default="CUSTOM", type=str.upper,
                   help="layout of --data-root: CUSTOM (default; your own folder) or a dataset name such as "
                        "HCP_REST, HCP_TASK, PPMI")
    p.add_argument("--ensemble", action="store_true",
                   help="average the class probabilities of every fold model of RUN_DIR")
    p.add_argument("--out", default="predictions.csv", help="where the table goes (default predictions.csv)")
    p.add_argument("--n-rois", type=int, default=None,
                   help="ROI count of the files (decides which axis holds the ROIs; default: inferred)")
    p.add_argument("--data-option", nargs="+", metavar="KEY=VALUE", default=[],
                   help="loader options as for `neurossm train`, e.g. atlas=schaefer400 for CUSTOM")


def _models(path: Path, ensemble: bool, device: str):
    from ..classifier import fold_model_paths, load

    if not path.is_dir():
        if ensemble:
            raise ConfigError(f"--ensemble averages the fold models of a run folder; {path} is one model file: "
                              "drop --ensemble, or pass the run folder")
        return [load(path, device)]
    paths = fold_model_paths(path)
    if len(paths) > 1 and not ensemble:
        raise ConfigError(f"--model {path}: the run has {len(paths)} fold models; pass --ensemble to average them, "
                          f"or --model {paths[0]} for one")
    return [load(p, device) for p in paths]


def _scans(args: argparse.Namespace):
    """``(scan ids, scans, extra columns, n_rois, atlas)`` of --data-root."""
    from ..config import parse_overrides
    from ..data import load_dataset
    from ..data.folder import LABELS_FILE
    from ..data.unlabelled import read_scan_folder

    options = parse_overrides(args.data_option)
    root = Path(args.data_root)
    if args.dataset == "CUSTOM" and not (root / LABELS_FILE).is_file():
        ids, scans, n_rois = read_scan_folder(root, args.n_rois)
        return ids, scans, {}, n_rois, options.get("atlas", "custom")
    # crop_length=1 keeps every scan: a scan too short for the model is refused below, not dropped
    ds = load_dataset(args.dataset, root, crop_length=1, n_rois=args.n_rois, **options)
    extra = {"subject": [s.subject_id for s in ds.scans], "label": [ds.class_names[s.label] for s in ds.scans]}
    return ds.scan_ids, [s.timeseries for s in ds.scans], extra, ds.n_rois, ds.atlas


def run(args: argparse.Namespace) -> int:
    from ..classifier import predict_table
    from ..config import named_atlas
    from ..io import write_dataframe

    path = Path(args.model)
    models = _models(path, args.ensemble, args.device)
    model = models[0]
    ids, scans, extra, n_rois, atlas = _scans(args)
    trained = f"{path} was trained on {model.n_rois_} ROIs (atlas {model.atlas or 'not recorded'})"
    if n_rois != model.n_rois_:
        raise DataFormatError(f"{args.data_root}: the scans have {n_rois} ROIs (atlas {atlas}), but {trained}; "
                              f"predict scans of the model's atlas (files stored (n_times, n_rois)? pass "
                              f"--n-rois {model.n_rois_})")
    if atlas not in _UNNAMED_ATLASES and model.atlas not in _UNNAMED_ATLASES and \
            (named_atlas(atlas) or atlas) != (named_atlas(model.atlas) or model.atlas):
        raise DataFormatError(f"{args.data_root}: the scans are in atlas {atlas}, but {trained}; predict scans of "
                              "the model's atlas")
    try:
        table = predict_table(models, scans, ids)
    except ValueError as exc:
        raise DataFormatError(f"{args.data_root}: {exc}") from None
    for name, values in reversed(list(extra.items())):
        table.insert(1, name, values)
    write_dataframe(args.out, table)
    what = f"the average of {len(models)} fold models" if len(models) > 1 else "one model"
    print(f"predictions of {len(table)} scan(s) by {what} written to {args.out}")
    return 0
