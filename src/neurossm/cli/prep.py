"""``neurossm prep``: 4D NIfTI BOLD files → ROI time series in the CUSTOM (or HCP seed) layout."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..log import get_logger
from ..prep.extract import CONFOUND_STRATEGIES, DEFAULT_STRATEGY, ExtractOptions
from ..prep.run import LAYOUTS, discover, read_labels, run_prep, summary
from .common import EXIT_FAILURE, EXIT_OK

log = get_logger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "See docs/prep.md for the confound strategies, the output layout and the report."
    g = p.add_argument_group("input and output")
    g.add_argument("--bold", nargs="+", required=True, metavar="GLOB|DIR|FILE",
                   help="4D BOLD NIfTI files: a folder (searched recursively for *_bold.nii[.gz]), "
                        "a quoted glob, or files")
    g.add_argument("--atlas", required=True, metavar="schaefer400|aal3v2|PATH",
                   help="parcellation: a named atlas (from nilearn's data folder, offline) or a NIfTI label image")
    g.add_argument("--atlas-labels", metavar="FILE", help="label table of a NIfTI --atlas ('value name' rows)")
    g.add_argument("--atlas-dir", metavar="DIR", help="nilearn data folder holding the named atlases")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--layout", choices=LAYOUTS, default="custom",
                   help="custom: one <scan>.npy per scan + labels.csv (default); "
                        "hcp: the seed's dataset_hcpRest_schaefer.npy dict, subject -> (n_rois, n_times)")

    g = p.add_argument_group("labels")
    g.add_argument("--labels", metavar="TABLE", help="participants/phenotype table (TSV or CSV)")
    g.add_argument("--subject-col", default="participant_id",
                   help="subject id column of --labels; a 'sub-' prefix is ignored (default: participant_id)")
    g.add_argument("--label-col", help="label column of --labels (required with --labels)")
    g.add_argument("--no-labels", action="store_true",
                   help="write scans.csv (scan, subject) instead of labels.csv; add a label column before training")

    g = p.add_argument_group("cleaning")
    g.add_argument("--confounds-strategy", default=DEFAULT_STRATEGY, metavar="NAME",
                   help=f"confound regressors: {', '.join(CONFOUND_STRATEGIES)}, or columns:NAME,NAME "
                        f"(default: {DEFAULT_STRATEGY})")
    g.add_argument("--confounds", metavar="PATTERN",
                   help="confounds file of each scan: a template with {dir} {scan} {subject} {stem}, glob "
                        "characters allowed in the file name (default: fMRIPrep's "
                        "*_desc-confounds_timeseries.tsv beside the BOLD file)")
    g.add_argument("--detrend", action="store_true", help="remove linear trends")
    g.add_argument("--high-pass", type=float, metavar="HZ", help="high-pass cut-off in Hz (e.g. 0.008)")
    g.add_argument("--low-pass", type=float, metavar="HZ", help="low-pass cut-off in Hz (e.g. 0.1)")
    g.add_argument("--tr", type=float, metavar="SECONDS", help="repetition time, overriding the header's")
    g.add_argument("--standardize", action="store_true", help="z-score each ROI over time (off by default)")

    g = p.add_argument_group("running")
    g.add_argument("--min-volumes", type=int, default=10, help="scans with fewer volumes fail (default: 10)")
    g.add_argument("--jobs", type=int, default=1, help="files extracted in parallel processes (default: 1)")
    g.add_argument("--overwrite", action="store_true", help="redo scans already in --out")


def run(args: argparse.Namespace) -> int:
    """Run the batch; exit code 0, or 1 (failure) when every scan failed (errors before it raise: 2)."""
    from ..atlas import load_atlas

    options = ExtractOptions(
        confounds_strategy=args.confounds_strategy,
        confounds_pattern=args.confounds,
        detrend=args.detrend,
        high_pass=args.high_pass,
        low_pass=args.low_pass,
        tr=args.tr,
        standardize=args.standardize,
        min_volumes=args.min_volumes,
    )
    labels = None
    if args.labels:
        if args.no_labels:
            raise ConfigError("--labels and --no-labels exclude each other")
        if not args.label_col:
            raise ConfigError("--labels needs --label-col, the column holding each subject's label")
        labels = read_labels(args.labels, args.subject_col, args.label_col)
    elif args.layout == "custom" and not args.no_labels:
        raise ConfigError(
            "labels.csv needs labels: pass --labels TABLE --label-col COL (and --subject-col COL), "
            "or --no-labels to write scans.csv (scan, subject) only"
        )
    files = discover(args.bold)  # before the atlas: a wrong --bold should not wait for an atlas load
    atlas = load_atlas(args.atlas, labels=args.atlas_labels, data_dir=args.atlas_dir)
    log.info("atlas %s: %d ROIs", atlas.name, atlas.n_rois)
    result = run_prep(
        [str(f) for f in files], atlas, args.out, options,
        labels=labels, labels_name=str(args.labels or "--labels"), layout=args.layout,
        jobs=args.jobs, overwrite=args.overwrite,
    )
    print(summary(result))
    return EXIT_FAILURE if result.all_failed else EXIT_OK
