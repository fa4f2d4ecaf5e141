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


# Every variant of every CPU kernel, whether or not this processor runs it (those it cannot run
# are skipped, visibly).
CPU_VARIANTS = {kernel: ["portable", vector] for kernel, vector in featperm.ops.VECTOR_VARIANTS.items()}
SUPPORTED_CPU_VARIANTS = featperm.ops.cpu_kernel_variants()


@contextlib.contextmanager
def selected_cpu_variants(**variants):
    """Runs the body with the given CPU kernel variants (e.g. chacha20="portable"), then restores
    the previous ones. Skips the test where the processor lacks one."""
    for kernel, variant in variants.items():
        if variant not in SUPPORTED_CPU_VARIANTS[kernel]:
            pytest.skip(f"this processor cannot run the {variant} variant of {kernel}")
    with featperm.ops.use_cpu_kernels(**variants):
        yield variants


def devices():
    """CPU always; CUDA where a GPU is present (the tests run on both where they can)."""
    return ["cpu"] + (["cuda"] if CUDA_AVAILABLE else [])


def pytest_report_header(config):
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"featperm: torch {torch.__version__}, CUDA kernels built: {featperm.has_cuda_kernels()}, "
            f"GPU: {gpu}, CPU kernels: {featperm.ops.cpu_kernels()}")
