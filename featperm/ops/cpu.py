"""Which variant each CPU kernel runs, and one switch to choose (e.g. to test every variant).

Each CPU kernel has a portable variant and one vector variant that needs only the instructions it
uses (``csrc/ops/cpu/cpu_features.h``):

=============  ====================  ========================
kernel         vector variant        needs
=============  ====================  ========================
shuffle_bits   ``avx512_vbmi_gfni``  AVX-512F, BW, VBMI, GFNI
block_shuffle  ``avx512_vbmi``       AVX-512F, BW, VBMI
chacha20       ``avx512f``           AVX-512F, BW
poly1305       ``avx512_ifma``       AVX-512F, IFMA
=============  ====================  ========================

At import each kernel uses the best variant this processor supports. The selection is process-wide
(every thread sees it).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Dict, Iterator, List, Optional

import torch

from featperm import _checks
from featperm.ops import _library  # noqa: F401  (loads the compiled ops)

__all__ = ["CPU_KERNELS", "VECTOR_VARIANTS", "cpu_kernels", "cpu_kernel_variants", "use_cpu_kernels", "cpu_isa"]

# Each kernel's vector variant, whether or not this processor runs it (the table above).
VECTOR_VARIANTS = {
    "shuffle_bits": "avx512_vbmi_gfni",
    "block_shuffle": "avx512_vbmi",
    "chacha20": "avx512f",
    "poly1305": "avx512_ifma",
}
CPU_KERNELS = tuple(VECTOR_VARIANTS)


def _select(kernel: str, variant: str = "") -> List[str]:
    return list(torch.ops.featperm._cpu_kernel(kernel, variant))


def cpu_kernels() -> Dict[str, str]:
    """The variant each CPU kernel runs now, e.g. ``{"chacha20": "avx512f", ...}``."""
    return {kernel: _select(kernel)[0] for kernel in CPU_KERNELS}


def cpu_kernel_variants() -> Dict[str, List[str]]:
    """The variants this processor can run, per kernel (``"portable"`` always first)."""
    return {kernel: _select(kernel)[1:] for kernel in CPU_KERNELS}


@contextlib.contextmanager
def use_cpu_kernels(default: Optional[str] = None, **variants: str) -> Iterator[Dict[str, str]]:
    """Run the body with the given CPU kernel variants, then restore the previous ones.

    ``use_cpu_kernels("portable")`` sets every kernel; ``use_cpu_kernels(chacha20="portable")``
    one; ``"best"`` is the best the processor supports. ValueError names an unknown kernel or
    variant, or one this processor cannot run (nothing is changed then). Yields the variants in
    force."""
    for name, variant in variants.items():
        if name not in CPU_KERNELS:
            raise ValueError(f"use_cpu_kernels: kernel must be one of {CPU_KERNELS}, got {name!r}")
        if not isinstance(variant, str):
            raise TypeError(f"use_cpu_kernels: variant of {name} must be a str, got {type(variant).__name__}")
    if default is not None and not isinstance(default, str):
        raise TypeError(f"use_cpu_kernels: default must be a str, got {type(default).__name__}")
    wanted = {kernel: variants.get(kernel, default) for kernel in CPU_KERNELS}
    available = cpu_kernel_variants()
    for kernel, request in wanted.items():
        if request is not None and request != "best" and request not in available[kernel]:
            _select(kernel, request)  # an invalid request: raises the C++ ValueError naming it
    before = cpu_kernels()
    try:
        for kernel, request in wanted.items():
            if request is not None:
                _select(kernel, request)
        yield cpu_kernels()
    finally:
        for kernel, variant in before.items():
            _select(kernel, variant)


def cpu_isa(request: int = -1) -> int:
    """Deprecated: use :func:`use_cpu_kernels` / :func:`cpu_kernels`.

    -1 queries (1 when every kernel runs its vector variant, else 0); 0 selects every portable
    variant; 1 every vector variant (ValueError where the processor lacks one)."""
    warnings.warn(
        "featperm.cpu_isa is deprecated; use featperm.ops.use_cpu_kernels "
        "(a context manager) and featperm.ops.cpu_kernels()",
        DeprecationWarning,
        stacklevel=2,
    )
    request = _checks.integer("cpu_isa", "request", request, minimum=-1, maximum=1)
    if request == 1 and any(len(v) == 1 for v in cpu_kernel_variants().values()):
        raise ValueError(
            "cpu_isa: request=1 is not supported by this processor (a kernel has no "
            "vector variant here); see featperm.ops.cpu_kernel_variants()"
        )
    if request >= 0:
        for kernel in CPU_KERNELS:
            _select(kernel, "portable" if request == 0 else "best")
    return int(all(v != "portable" for v in cpu_kernels().values()))
