"""State-space layers: the selective scan (with swappable backends) and Mamba blocks."""

from neurossm.ssm.mamba import BiMamba, Mamba
from neurossm.ssm.scan import (
    BACKENDS,
    CPU_ENGINES,
    compiled_engine_available,
    cuda_backend_available,
    resolve_backend,
    selective_scan,
    selective_scan_cpu,
    selective_scan_cuda,
    selective_scan_reference,
)

__all__ = [
    "BACKENDS",
    "BiMamba",
    "CPU_ENGINES",
    "Mamba",
    "compiled_engine_available",
    "cuda_backend_available",
    "resolve_backend",
    "selective_scan",
    "selective_scan_cpu",
    "selective_scan_cuda",
    "selective_scan_reference",
]
