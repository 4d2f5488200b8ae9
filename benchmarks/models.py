"""Training-step throughput and peak memory of NeuroSSM, BolT and GRU at the HCP shapes.

Usage::

    python benchmarks/models.py            # HCP-Rest (400 × 600) and HCP-Task (400 × 150), batch 16
    python benchmarks/models.py --quick    # 1 warm-up + 2 timed steps per config
    python benchmarks/models.py --device cuda --models NeuroSSM BolT --config BolT:d_model=64
    python benchmarks/models.py --models NeuroSSM NeuroSSM:roi BolT --config NeuroSSM:roi:roi_patch=4

A model is a registered name or ``NAME:PRESET`` (one of its presets: ``NeuroSSM:roi`` is NeuroSSM
with the ROI-wise encoder); ``--config LABEL:KEY=VALUE`` overrides an option of that label only.

Method. Every (model, shape) runs in its own fresh Python process, so one model's allocations
never count towards another's peak. A training step is what the harness does: forward,
``training_loss`` when the model has one (else cross-entropy), backward, gradient clipping,
AdamW step, on one fixed random batch. Throughput is ``batch × timed steps / wall time`` after
the warm-up steps. Memory on the CPU is the process's peak resident set size (``ru_maxrss``):
``peak_rss_mib`` includes the interpreter, torch and the model; ``train_rss_increment_mib`` is
the peak minus the peak reached before the first step (model, optimiser and batch built), i.e.
what training adds (activations, gradients, AdamW state). On CUDA it is
``torch.cuda.max_memory_allocated`` from right after the model is built. Ratios compare
each NeuroSSM variant with every other model at each shape, the other NeuroSSM variants included
(throughput: > 1 means the NeuroSSM variant is faster; memory: < 1 means it needs less). CPU timings on a shared machine are noisy: the load average
at start is printed with them.

A model that cannot be imported (a dependency missing) is reported as ``unavailable``.
Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time

SHAPES = {"hcp_rest": (400, 600), "hcp_task": (400, 150)}
MODELS = {
    "NeuroSSM": "neurossm.models.neurossm",
    "BolT": "neurossm.models.baselines.bolt",
    "GRU": "neurossm.models.baselines.gru",
}


def _spec(label: str):
    """The registry entry of ``label`` (``NAME`` or ``NAME:PRESET``), importing only that model's
    module (others may be broken)."""
    from neurossm.models import registry

    name = label.partition(":")[0]

    importlib.import_module(MODELS[name])
    try:
        return registry.get_model(name)
    except ModuleNotFoundError:
        return registry._REGISTRY[name.lower()]


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def worker(job: dict) -> dict:
    """Measure one (model, shape) in this process; return the record."""
    import resource

    import torch
    import torch.nn.functional as F

    out = {k: job[k] for k in ("model", "shape", "n_rois", "n_times", "batch")}
    try:
        spec = _spec(job["model"])
    except ModuleNotFoundError as exc:
        return {**out, "status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}
    if job["threads"]:
        from neurossm.training.threads import apply_threads

        apply_threads(job["threads"])
    torch.manual_seed(0)
    device = torch.device(job["device"])
    config = spec.resolve_config(job["config"], preset=job["model"].partition(":")[2] or None)
    model = spec.build(job["n_rois"], 2, job["n_times"], config).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(job["batch"], job["n_rois"], job["n_times"], device=device)
    y = torch.randint(0, 2, (job["batch"],), device=device)
    custom = getattr(model, "training_loss", None)

    def step() -> None:
        loss = custom(x, y)[0] if custom else F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(job["warmup"]):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(job["steps"]):
        step()
    sync()
    seconds = time.perf_counter() - t0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record = {
        **out, "status": "ok", "device": str(device), "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()), "config": config,
        "warmup_steps": job["warmup"], "timed_steps": job["steps"],
        "seconds_per_step": seconds / job["steps"],
        "scans_per_s": job["batch"] * job["steps"] / seconds,
        "peak_rss_mib": rss_peak, "train_rss_increment_mib": rss_peak - rss_before,
    }
    if device.type == "cuda":
        record["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return record


def _run_job(job: dict, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)]
    head = {k: job[k] for k in ("model", "shape", "n_rois", "n_times", "batch")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**head, "status": "timeout", "error": f"no result within {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**head, "status": "failed", "error": " | ".join(tail)}
    return json.loads(lines[-1])


def _memory(r: dict) -> float | None:
    return r.get("cuda_peak_allocated_mib", r.get("train_rss_increment_mib"))


def ratios(results: list[dict]) -> dict:
    """Each NeuroSSM variant over every other model, per shape: throughput and training memory."""
    out: dict = {}
    for shape in dict.fromkeys(r["shape"] for r in results):
        ok = {r["model"]: r for r in results if r["shape"] == shape and r.get("status") == "ok"}
        for label, ours in ok.items():
            if label.partition(":")[0] != "NeuroSSM":
                continue
            for other, r in ok.items():
                if other == label:
                    continue
                out.setdefault(shape, {})[f"{label}/{other}"] = {
                    "throughput": ours["scans_per_s"] / r["scans_per_s"],
                    "memory": _memory(ours) / _memory(r) if _memory(r) else None,
                }
    return out


def _model_label(value: str) -> str:
    """``NAME`` or ``NAME:PRESET`` with ``NAME`` one of ``MODELS`` (argparse type)."""
    if value.partition(":")[0] not in MODELS:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME or NAME:PRESET with NAME in {list(MODELS)}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 2 timed steps per config")
    parser.add_argument("--models", nargs="+", type=_model_label, default=list(MODELS),
                        help=f"NAME or NAME:PRESET, NAME in {list(MODELS)} (default: %(default)s)")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2, quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5, quick 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--config", nargs="*", default=[], metavar="MODEL:KEY=VALUE",
                        help="model option overrides, e.g. BolT:d_model=64 or NeuroSSM:roi:roi_patch=4")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per config")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    overrides: dict[str, dict] = {m: {} for m in args.models}
    for item in args.config:
        target, _, value = item.partition("=")
        model, _, key = target.rpartition(":")
        if model not in overrides or not key or not value:
            parser.error(f"--config expects MODEL:KEY=VALUE with MODEL one of --models {args.models}; got {item!r}")
        overrides[model][key] = _parse_value(value)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    steps = args.steps if args.steps is not None else (2 if args.quick else 5)
    results = []
    for shape in args.shapes:
        n_rois, n_times = SHAPES[shape]
        for model in args.models:
            job = {"model": model, "shape": shape, "n_rois": n_rois, "n_times": n_times, "batch": args.batch,
                   "warmup": warmup, "steps": steps, "device": args.device, "threads": args.threads,
                   "config": overrides[model]}
            print(f"{shape}: {model} ...", file=sys.stderr, flush=True)
            results.append(_run_job(job, args.timeout))
    report = {
        "benchmark": "training step (forward, loss, backward, clip, AdamW) on one fixed random batch",
        "memory": "CPU: peak RSS increment over the pre-training peak (ru_maxrss), per fresh process; "
                  "CUDA: torch.cuda.max_memory_allocated",
        "host": {"cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()},
        "results": results,
        "ratios": ratios(results),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
