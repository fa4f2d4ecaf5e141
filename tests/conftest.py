import contextlib

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property tests must not fail because a shared CI machine is slow: the data-generation speed
# health checks measure time, not correctness.
settings.register_profile("featperm", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("featperm")

import featperm

CUDA_AVAILABLE = torch.cuda.is_available() and featperm.has_cuda_kernels()

needs_cuda = pytest.mark.skipif(not CUDA_AVAILABLE, reason="needs a CUDA GPU and featperm's CUDA kernels")


# The CPU kernel variants this processor runs (0 portable; 1 AVX-512 where supported): at import
# the active variant is the best one.
CPU_ISAS = list(range(featperm.cpu_isa() + 1))


@contextlib.contextmanager
def selected_cpu_isa(isa):
    """Runs the body with CPU kernel variant `isa`, then restores the previous one. Skips the
    test where the processor lacks it."""
    before = featperm.cpu_isa()
    try:
        featperm.cpu_isa(isa)
    except RuntimeError:
        pytest.skip("this processor lacks AVX-512 (the vector kernels cannot run here)")
    try:
        yield isa
    finally:
        featperm.cpu_isa(before)


def devices():
    """CPU always; CUDA where a GPU is present (the tests run on both where they can)."""
    return ["cpu"] + (["cuda"] if CUDA_AVAILABLE else [])


def pytest_report_header(config):
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"featperm: torch {torch.__version__}, CUDA kernels built: {featperm.has_cuda_kernels()}, "
            f"GPU: {gpu}, CPU kernel variant: {featperm.cpu_isa()}")
