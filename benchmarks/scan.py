"""Time and memory of selective-scan implementations on the CPU; prints JSON.

Compares, side by side for B=16, D=128, N=16, float32, two threads:

``cpu``
    neurossm's ``cpu`` backend as a model uses it: the compiled (numba) engine.
``eager``
    the same backend's eager engine, PyTorch ops only (the fallback when numba is missing).
``ref``
    a sequential autograd scan written the way mamba-ssm's ``selective_scan_ref`` is: the decay
    and drive are materialised as ``(B, D, L, N)`` tensors, then a Python loop over time.
``pscan``
    mambapy's parallel scan (``pip install mambapy``; reported "unavailable" when missing),
    wrapped the way mambapy's ``selective_scan`` wraps it, in its ``(B, L, D, N)`` layout.

Every implementation computes the same thing: ``softplus(delta + bias)``, the recurrence,
``+ D u`` and the ``silu(z)`` gate. Each (implementation, length, mode) runs in a fresh child
process (``--one IMPL L MODE``) so that its peak resident memory can be read from
``resource.getrusage(...).ru_maxrss`` and reported above the child's baseline (after imports
and input allocation). Times are the median of ``--repeats`` runs after one warm-up run.

``--grouped R`` measures something else: the layout of NeuroSSM's ROI-wise encoder, ``R``
weight-shared sequences of ``--width`` channels per scan (state ``--n-state``), forward +
backward on the compiled engine, run two ways in one process: *grouped*, one scan per batch
element of ``R × width`` channels with grouped ``B, C (batch, R, N, L)``, and *folded*, the
``R`` sequences folded into the batch (``batch × R`` sequences of ``width`` channels). Both
compute the same numbers (``tests/ssm/test_scan.py`` checks it).

Usage::

    python benchmarks/scan.py                       # L in 150 600 1200, full
    python benchmarks/scan.py --quick --out scan.json
    python benchmarks/scan.py --lengths 150 600
    python benchmarks/scan.py --grouped 166 --width 16 --n-state 8 --lengths 200

This is a measurement script, never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH, DIM, N_STATE = 16, 128, 16
THREADS = 2
IMPLS = ("cpu", "eager", "ref", "pscan")
MODES = ("fwd", "fwd+bwd")
TARGETS = {  # fwd+bwd speed-up over mambapy's pscan, per implementation and length
    "cpu": {600: 15.0, 1200: 20.0},  # the compiled engine; its peak memory must not exceed pscan's
    "eager": {600: 4.0},
}


def make_inputs(length: int, impl: str, requires_grad: bool):
    import torch

    g = torch.Generator().manual_seed(0)
    u = torch.randn(BATCH, DIM, length, generator=g)
    delta = torch.randn(BATCH, DIM, length, generator=g) * 0.5 - 1.0
    A = -torch.exp(torch.randn(DIM, N_STATE, generator=g) * 0.5)
    B = torch.randn(BATCH, N_STATE, length, generator=g)
    C = torch.randn(BATCH, N_STATE, length, generator=g)
    D = torch.randn(DIM, generator=g)
    z = torch.randn(BATCH, DIM, length, generator=g)
    delta_bias = torch.randn(DIM, generator=g) * 0.3
    tensors = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    if impl == "pscan":
        # mambapy's native layout: (B, L, D) sequences, (B, L, N) projections
        for name in ("u", "delta", "z", "B", "C"):
            tensors[name] = tensors[name].transpose(1, 2).contiguous()
    for t in tensors.values():
        t.requires_grad_(requires_grad)
    return tensors


def scan_ref_style(u, delta, A, B, C, D, z, delta_bias):
    """Sequential scan in the style of mamba-ssm's ``selective_scan_ref`` (written here)."""
    import torch
    import torch.nn.functional as F

    delta = F.softplus(delta + delta_bias[:, None])
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # (B, D, L, N)
    drive = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # (B, D, L, N)
    x = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (B, D, N)
    ys = []
    for i in range(u.shape[2]):
        x = decay[:, :, i] * x + drive[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2) + D[:, None] * u  # (B, D, L)
    return y * F.silu(z)


def scan_pscan_style(u, delta, A, B, C, D, z, delta_bias):
    """mambapy's selective scan around its ``pscan``; inputs (B, L, D) and (B, L, N)."""
    import torch.nn.functional as F
    from mambapy.pscan import pscan

    delta = F.softplus(delta + delta_bias)  # (B, L, D)
    decay = (delta.unsqueeze(-1) * A).exp()  # (B, L, D, N)
    drive = delta.unsqueeze(-1) * B.unsqueeze(2) * u.unsqueeze(-1)  # (B, L, D, N)
    hs = pscan(decay, drive)  # (B, L, D, N)
    y = (hs @ C.unsqueeze(-1)).squeeze(3) + D * u  # (B, L, D)
    return y * F.silu(z)


def scan_cpu_backend(u, delta, A, B, C, D, z, delta_bias, engine="compiled"):
    from neurossm.ssm import selective_scan_cpu

    return selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True,
                              engine=engine)


def scan_cpu_eager(u, delta, A, B, C, D, z, delta_bias):
    return scan_cpu_backend(u, delta, A, B, C, D, z, delta_bias, engine="eager")


def run_one(impl: str, length: int, mode: str, repeats: int) -> dict:
    """Child process: time one configuration and report its peak RSS above baseline."""
    import torch

    from neurossm.training.threads import apply_threads

    apply_threads(THREADS)
    fn = {"cpu": scan_cpu_backend, "eager": scan_cpu_eager, "ref": scan_ref_style,
          "pscan": scan_pscan_style}[impl]
    if impl == "pscan":
        try:
            import mambapy.pscan  # noqa: F401
        except ImportError:
            return {"status": "unavailable", "reason": "mambapy is not installed"}
    backward = mode == "fwd+bwd"

    def once(tensors):
        if backward:
            y = fn(**tensors)
            y.sum().backward()
            for t in tensors.values():
                t.grad = None
        else:
            with torch.no_grad():
                fn(**tensors)

    # a tiny run first pays the one-time costs that are not the scan's working memory (imports,
    # loading or compiling the numba kernels) before the baseline is read
    once(make_inputs(4, impl, backward))
    inputs = make_inputs(length, impl, backward)
    # one warm-up of the longer runs would double the reference's minute-long runtime; a
    # short warm-up still pays every one-time cost (allocator, thread pool)
    warm_len = length if impl != "ref" else min(length, 32)
    warm_inputs = inputs if warm_len == length else make_inputs(warm_len, impl, backward)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    once(warm_inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once(inputs)
        times.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "status": "ok",
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "peak_rss_above_baseline_mb": (peak_kb - baseline_kb) / 1024,
        "baseline_rss_mb": baseline_kb / 1024,
    }


def spawn(impl: str, length: int, mode: str, repeats: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", impl, str(length), mode,
           "--repeats", str(repeats)]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"status": "error", "stderr_tail": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ratios(results: dict, lengths: list[int]) -> dict:
    out = {}
    for length in lengths:
        for mode in MODES:
            for fast in ("cpu", "eager"):
                mine = results.get(f"{fast}/{length}/{mode}", {})
                if mine.get("status") != "ok":
                    continue
                for other in ("eager", "ref", "pscan"):
                    res = results.get(f"{other}/{length}/{mode}", {})
                    if other != fast and res.get("status") == "ok":
                        out[f"{other}/{fast} {mode} time L={length}"] = res["median_s"] / mine["median_s"]
                pscan = results.get(f"pscan/{length}/{mode}", {})
                if pscan.get("status") == "ok" and mine["peak_rss_above_baseline_mb"] > 0:
                    out[f"pscan/{fast} {mode} peak memory L={length}"] = (
                        pscan["peak_rss_above_baseline_mb"] / mine["peak_rss_above_baseline_mb"]
                    )
    return out


def _pair(results: dict, impl: str, length: int) -> tuple[dict, dict] | None:
    """The ``impl`` and pscan forward+backward results at ``length``, when both ran."""
    mine = results.get(f"{impl}/{length}/fwd+bwd", {})
    pscan = results.get(f"pscan/{length}/fwd+bwd", {})
    return (mine, pscan) if mine.get("status") == "ok" and pscan.get("status") == "ok" else None


def targets(results: dict) -> dict:
    out = {}
    for impl, goals in TARGETS.items():
        for length, goal in goals.items():
            if (pair := _pair(results, impl, length)) is None:
                continue
            mine, pscan = pair
            got = pscan["median_s"] / mine["median_s"]
            out[f"{impl} >= {goal:g}x faster than pscan, fwd+bwd, L={length}"] = {"got": round(got, 2), "met": got >= goal}
            if impl == "cpu":
                mem = [round(r["peak_rss_above_baseline_mb"], 1) for r in (mine, pscan)]
                out[f"cpu peak memory <= pscan's, fwd+bwd, L={length}"] = {"got_mb": mem, "met": mem[0] <= mem[1]}
    return out


def grouped_vs_folded(rois: int, width: int, n_state: int, length: int, repeats: int) -> dict:
    """Forward + backward of the ROI-wise layout, grouped against folded into the batch."""
    import torch

    from neurossm.ssm import selective_scan_cpu
    from neurossm.training.threads import apply_threads

    apply_threads(THREADS)
    g = torch.Generator().manual_seed(0)
    dim = rois * width
    grouped = dict(
        u=torch.randn(BATCH, dim, length, generator=g),
        delta=torch.randn(BATCH, dim, length, generator=g) * 0.5 - 1.0,
        A=-torch.exp(torch.randn(width, n_state, generator=g) * 0.5).repeat(rois, 1),
        B=torch.randn(BATCH, rois, n_state, length, generator=g),
        C=torch.randn(BATCH, rois, n_state, length, generator=g),
        D=torch.randn(width, generator=g).repeat(rois),
        z=torch.randn(BATCH, dim, length, generator=g),
        delta_bias=(torch.randn(width, generator=g) * 0.3).repeat(rois),
    )
    folded = {k: v.reshape(BATCH * rois, -1, length) for k, v in grouped.items()
              if k in ("u", "delta", "z", "B", "C")}
    folded.update(A=grouped["A"][:width], D=grouped["D"][:width], delta_bias=grouped["delta_bias"][:width])

    def median_time(tensors: dict) -> float:
        leaves = {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
        times = []
        for i in range(repeats + 1):  # the first run warms up (kernel compilation, allocator)
            start = time.perf_counter()
            selective_scan_cpu(**leaves, delta_softplus=True, engine="compiled").sum().backward()
            if i:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    t_grouped, t_folded = median_time(grouped), median_time(folded)
    return {"rois": rois, "width": width, "n_state": n_state, "length": length, "batch": BATCH,
            "grouped_fwd_bwd_s": t_grouped, "folded_fwd_bwd_s": t_folded,
            "folded/grouped": t_folded / t_grouped}


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[150, 600, 1200])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration")
    parser.add_argument("--quick", action="store_true",
                        help="skip the reference at L >= 1200 and time it once elsewhere")
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--out", type=Path, help="also write the JSON here (atomically)")
    parser.add_argument("--grouped", type=int, metavar="R",
                        help="time the ROI-wise layout with R groups, grouped against folded")
    parser.add_argument("--width", type=int, default=16, help="--grouped: channels per group")
    parser.add_argument("--n-state", type=int, default=8, help="--grouped: state size")
    parser.add_argument("--one", nargs=3, metavar=("IMPL", "L", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        impl, length, mode = args.one
        print(json.dumps(run_one(impl, int(length), mode, args.repeats)))
        return 0

    import torch

    started = time.time()
    load_before = os.getloadavg()
    if args.grouped:
        results = [grouped_vs_folded(args.grouped, args.width, args.n_state, length, args.repeats)
                   for length in args.lengths]
        text = json.dumps({"benchmark": "selective scan, ROI-wise layout: grouped vs folded into the batch",
                           "engine": "compiled", "threads": THREADS, "repeats": args.repeats,
                           "timing": "median wall time of forward + backward after one warm-up run",
                           "load_average": {"before": load_before, "after": os.getloadavg()},
                           "results": results, "wall_s": time.time() - started}, indent=2)
        print(text)
        if args.out:
            write_atomic(args.out, text + "\n")
        return 0
    results = {}
    for length in args.lengths:
        for impl in args.impls:
            for mode in MODES:
                key = f"{impl}/{length}/{mode}"
                repeats = args.repeats
                if impl == "ref" and args.quick:
                    if length >= 1200:
                        results[key] = {"status": "skipped", "reason": "--quick"}
                        continue
                    repeats = 1
                results[key] = spawn(impl, length, mode, repeats)
                print(f"{key}: {results[key].get('median_s', results[key]['status'])}",
                      file=sys.stderr)

    report = {
        "benchmark": "selective scan, CPU",
        "shape": {"batch": BATCH, "d": DIM, "n_state": N_STATE, "dtype": "float32"},
        "threads": THREADS,
        "lengths": args.lengths,
        "repeats": args.repeats,
        "quick": args.quick,
        "timing": "median wall time of the timed runs after one warm-up run (the reference "
                  "warms up on a 32-step input)",
        "memory": "peak RSS (getrusage ru_maxrss) of a fresh child process per configuration, "
                  "minus that child's RSS after imports and input allocation",
        "notes": [
            "cpu = the cpu backend's compiled (numba) engine, eager = its PyTorch-only "
            "fallback; both run on the process' torch thread count (2 here), the eager "
            "engine's per-step loop on one",
            "the machine is shared: see load_average; timings under load are pessimistic",
        ],
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "processor": platform.processor()},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "results": results,
        "ratios": ratios(results, args.lengths),
        "targets": targets(results),
        "wall_s": time.time() - started,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        write_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
