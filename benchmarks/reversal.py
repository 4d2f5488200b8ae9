"""Reversal diagnostic: how far each model's outputs move when a scan is played backwards.

For a representation ``f`` (a model's logits, or one of NeuroSSM's internal read-outs) and scans
``x_i``, the score is

    rms_i ‖f(x_i) − f(reverse(x_i))‖ / rms_i ‖f(x_i) − mean_j f(x_j)‖,

the change a reversal makes, relative to how much ``f`` differs between scans. A representation
blind to the direction of time scores 0 (every statistic that a reversal leaves unchanged: energy,
tail weight, autocorrelation, spectrum, zero-lag connectivity); one that changes sign under a
reversal scores about 2, and one whose value for the reversed scan is unrelated to its value for
the scan about √2. The score says what *can* carry
direction, not what a trained model does with it: deep models are measured as initialised (three
initialisation seeds; the scale of the numbers does not depend on training), closed-form baselines
after fitting on the scans (their features are fixed, the classifier on top is linear). An ablation
on the signal-kind suite's order kinds is what shows which part a trained model reads.

Scans: the suite's order kind ``--kind`` (default ``arrow``) at data seed 0; any scans serve, the
score depends on the model, not the label.

Usage::

    python benchmarks/reversal.py                       # every registered model, NeuroSSM's parts
    python benchmarks/reversal.py --models NeuroSSM FC_LR --scans 32 --out reversal.json

Prints one JSON object: per model, the score of its logits; for NeuroSSM (and its presets in
``--presets``), the score of each part of every pathway. A measurement script, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from signal_kinds import make_kind  # noqa: E402  (the suite's own generators)


def reversal_score(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """The score of the module docstring for ``f`` on the scans ``x (B, R, T)``."""
    with torch.no_grad():
        a, b = f(x).flatten(1).double(), f(x.flip(-1)).flatten(1).double()  # (B, F)
    spread = (a - a.mean(dim=0)).pow(2).sum(dim=1).mean().sqrt()
    return float((a - b).pow(2).sum(dim=1).mean().sqrt() / spread) if spread > 0 else 0.0


def neurossm_parts(model, x: torch.Tensor) -> dict[str, float]:
    """The score of each part of every pathway of a NeuroSSM module (as built, eval mode)."""
    from neurossm.models.neurossm import HybridPathway, Pathway, RoiPathway, pathway_signal

    out: dict[str, float] = {}
    for name, pathway, (form, scale) in zip(model.pathway_names, model.pathways, model.pathway_specs):
        def inputs(z, form=form, scale=scale):
            return pathway_signal(z, form, scale)

        roi = pathway.roi if isinstance(pathway, HybridPathway) else pathway if isinstance(pathway, RoiPathway) else None
        time = pathway.time if isinstance(pathway, HybridPathway) else pathway if isinstance(pathway, Pathway) else None
        if roi is not None:
            n_sym = roi.pool.out_features + roi.correction.out_features * len(roi.lags)
            out[f"{name}/roi statistics"] = reversal_score(lambda z: roi.roi_features(inputs(z))[..., :n_sym], x)
            if roi.direction is not None:
                out[f"{name}/roi direction"] = reversal_score(lambda z: roi.roi_features(inputs(z))[..., n_sym:], x)
        if time is not None:
            def time_features(z):
                h = time.embed(inputs(z).transpose(1, 2))
                for block in time.blocks:
                    h = block(h)
                return h

            out[f"{name}/time pooled"] = reversal_score(lambda z: time.pool(time.norm(time_features(z))), x)
            if time.direction is not None:
                out[f"{name}/time direction"] = reversal_score(lambda z: time.direction_features(inputs(z)), x)
        out[f"{name}/pathway vector"] = reversal_score(lambda z: model.pathway_vectors([inputs(z)]), x)
    out["logits"] = reversal_score(model, x)
    return out


def score_model(name: str, preset: str | None, scans, seeds: tuple[int, ...]) -> dict[str, Any]:
    """Reversal scores of one registered model (mean over initialisation seeds for deep models)."""
    from neurossm.models.registry import get_model

    spec = get_model(name)
    config = spec.resolve_config(preset=preset)
    x = torch.from_numpy(np.stack([s.timeseries for s in scans])).float()  # (B, R, T)
    n_rois, n_times = x.shape[1], x.shape[2]
    if spec.kind != "torch":
        model = spec.build(n_rois, 2, n_times, config)
        model.fit([s.timeseries for s in scans], np.array([s.label for s in scans]),
                  np.array([s.subject_id for s in scans]))

        def logits(z):
            return torch.from_numpy(model.predict_log_proba(list(z.numpy())))

        return {"logits": reversal_score(logits, x)}
    runs = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = spec.build(n_rois, 2, n_times, config).eval()
        runs.append(neurossm_parts(model, x) if spec.name == "NeuroSSM" else {"logits": reversal_score(model, x)})
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def main(argv: list[str] | None = None) -> int:
    from neurossm.models.registry import list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="registered models (default: all)")
    parser.add_argument("--presets", nargs="*", default=["order_readout", "time"],
                        help="NeuroSSM presets measured beside its default")
    parser.add_argument("--kind", default="arrow", help="the suite kind whose scans are used (data seed 0)")
    parser.add_argument("--scans", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="initialisation seeds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scans = make_kind(args.kind, 0).scans[: args.scans]
    results: dict[str, Any] = {"kind": args.kind, "n_scans": len(scans), "seeds": args.seeds, "models": {}}
    for name in args.models or list_models():
        try:
            results["models"][name] = score_model(name, None, scans, tuple(args.seeds))
        except ImportError as exc:  # an optional baseline whose extra is not installed
            results["models"][name] = {"skipped": str(exc)}
        if name == "NeuroSSM":
            for preset in args.presets:
                results["models"][f"NeuroSSM:{preset}"] = score_model(name, preset, scans, tuple(args.seeds))
        print(name, json.dumps(results["models"][name].get("logits")), file=sys.stderr, flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
