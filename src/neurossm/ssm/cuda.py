"""The ``cuda`` backend of the selective scan: mamba-ssm's fused kernel, imported only when asked for."""

from __future__ import annotations

import functools
from typing import Callable

__all__ = ["cuda_backend_available", "selective_scan_cuda"]

_CUDA_INSTALL_HINT = (
    "the 'cuda' scan backend needs mamba-ssm, which builds only with a CUDA toolkit and an "
    "NVIDIA GPU: `pip install mamba-ssm` (or `pip install neurossm[cuda]`). "
    "Use backend='cpu' or 'auto' to run without it."
)


@functools.lru_cache(maxsize=1)
def _load_cuda_scan() -> Callable:
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # ImportError, or a broken CUDA extension raising at import
        raise RuntimeError(f"{_CUDA_INSTALL_HINT} (import failed: {exc})") from exc
    return selective_scan_fn


def selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                        delta_softplus=False):
    """mamba-ssm's fused CUDA kernel (same semantics and layouts).

    The kernel takes float32, float16 or bfloat16 inputs; ``A``, ``D`` and ``delta_bias`` are
    passed as float32, as mamba-ssm's own Mamba block does. Grouped ``B`` and ``C``,
    ``(b, G, N, L)``, are its own variable-B/C layout and pass through unchanged (an ungrouped
    ``(b, N, L)`` is read there as one group).
    """
    selective_scan_fn = _load_cuda_scan()
    if not u.is_cuda:
        raise ValueError(
            f"backend='cuda' needs tensors on a CUDA device, got device {u.device}; "
            "use backend='cpu'"
        )
    return selective_scan_fn(
        u, delta, A.float(), B, C,
        D=None if D is None else D.float(),
        z=z,
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
        return_last_state=False,
    )


def cuda_backend_available() -> bool:
    """True when mamba-ssm's selective-scan kernel can be imported."""
    try:
        _load_cuda_scan()
    except RuntimeError:
        return False
    return True

