"""``neurossm reference`` (and ``Analysis/run_cpa_analysis.py``): score CPA maps against Neurosynth."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..log import get_logger
from ..reference.neurosynth import TERM_THRESHOLD, default_cache_dir

log = get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the reference analysis' options to ``parser``."""
    parser.add_argument("--root", type=Path, default=Path("./Analysis/Explainability"),
                        help="folder of <DATASET>/seed_<S>/[fold_<k>/]subj_*.npz CPA files (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("./Analysis/Explainability_Results"),
                        help="output folder: maps/<DATASET>/<CLASS>/*.nii.gz and summary.csv (default: %(default)s)")
    ns = parser.add_argument_group("Neurosynth")
    ns.add_argument("--neurosynth-dir", type=Path, default=None,
                    help=f"download cache for Neurosynth v7 and the converted NiMARE Dataset "
                         f"(default: $NEUROSSM_NEUROSYNTH_DIR or {default_cache_dir()})")
    ns.add_argument("--neurosynth-files", type=Path, default=None,
                    help="folder already holding the four Neurosynth v7 files under NiMARE's names (no download)")
    ns.add_argument("--no-download", action="store_true", help="never download; use cached or local files only")
    ns.add_argument("--terms", type=Path, default=None, dest="terms_file",
                    help="JSON/YAML mapping class -> list of Neurosynth terms (or dataset -> class -> terms)")
    ns.add_argument("--term-threshold", type=float, default=TERM_THRESHOLD,
                    help="tf-idf weight a study needs for a term to be selected (default: %(default)s)")
    at = parser.add_argument_group("atlas")
    at.add_argument("--atlas", default=None,
                    help="NIfTI label image for CPA files whose atlas is not schaefer400/aal3v2")
    at.add_argument("--atlas-labels", type=Path, default=None,
                    help="label table of --atlas ('value name' rows or a LUT with index/name columns)")
    at.add_argument("--atlas-data-dir", type=Path, default=None,
                    help="nilearn data folder holding Schaefer/AAL3 (default: nilearn's, e.g. ~/nilearn_data)")
    sc = parser.add_argument_group("scoring")
    sc.add_argument("--group-by", choices=("label", "target"), default="label",
                    help="class of a scan: its true label or the class its CPA map explains (default: %(default)s)")
    sc.add_argument("--n-perm", type=int, default=1000, help="permutations for the p-value (default: %(default)s)")
    sc.add_argument("--seed", type=int, default=0, help="permutation seed (default: %(default)s)")
    sc.add_argument("--datasets", nargs="+", default=None, help="only these dataset folders under --root")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the analysis from parsed arguments (errors raise; :func:`neurossm.cli.main` maps them to exit codes)."""
    from ..reference.analysis import ReferenceOptions, run_reference_analysis

    root = logging.getLogger()
    if not root.handlers:
        # NiMARE calls logging.basicConfig(level=INFO) on import, which would print every neurossm
        # message twice; a handler on the root logger makes that call a no-op.
        root.addHandler(logging.NullHandler())
    if args.neurosynth_files is not None and args.neurosynth_dir is not None:
        log.info("--neurosynth-files given: --neurosynth-dir only caches the converted Dataset")
    opts = ReferenceOptions(
        root=args.root, out=args.out, neurosynth_dir=args.neurosynth_dir,
        neurosynth_files=args.neurosynth_files, download=not args.no_download,
        terms_file=args.terms_file, group_by=args.group_by, atlas=args.atlas,
        atlas_labels=args.atlas_labels, atlas_data_dir=args.atlas_data_dir,
        n_perm=args.n_perm, seed=args.seed, term_threshold=args.term_threshold, datasets=args.datasets,
    )
    summary = run_reference_analysis(opts)
    n_ok = int((summary["status"] == "ok").sum()) if len(summary) else 0
    log.info("%d of %d class(es) scored against Neurosynth", n_ok, len(summary))
    return 0
