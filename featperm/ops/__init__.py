"""featperm's operators: Python wrappers over the compiled ``torch.ops.featperm`` ops, their fake
kernels (torch.compile / torch.export) and autograd, and the CPU kernel switch.

Importing this package loads the compiled library (``featperm._C``); the key layer below it
(:mod:`featperm.keys`) does not need it. Argument rules for every op: :mod:`featperm._checks`.

* :mod:`~featperm.ops.shuffle_bits` — :func:`shuffle_bits` and its inverse and in-place forms.
* :mod:`~featperm.ops.block_shuffle` — :func:`block_shuffle` and its inverse and in-place forms.
* :mod:`~featperm.ops.cpu` — which variant each CPU kernel runs; :func:`use_cpu_kernels`.

The ChaCha20-Poly1305 ops are wrapped by :mod:`featperm.crypto`.
"""

from featperm.ops._library import has_cuda_kernels
from featperm.ops.block_shuffle import (
    block_shuffle,
    block_shuffle_,
    block_unshuffle,
    block_unshuffle_,
    from_blocks,
    to_blocks,
)
from featperm.ops.cpu import CPU_KERNELS, VECTOR_VARIANTS, cpu_isa, cpu_kernel_variants, cpu_kernels, use_cpu_kernels
from featperm.ops.shuffle_bits import shuffle_bits, shuffle_bits_, unshuffle_bits, unshuffle_bits_

__all__ = [
    "shuffle_bits",
    "unshuffle_bits",
    "shuffle_bits_",
    "unshuffle_bits_",
    "block_shuffle",
    "block_unshuffle",
    "block_shuffle_",
    "block_unshuffle_",
    "to_blocks",
    "from_blocks",
    "has_cuda_kernels",
    "CPU_KERNELS",
    "VECTOR_VARIANTS",
    "cpu_kernels",
    "cpu_kernel_variants",
    "use_cpu_kernels",
    "cpu_isa",
]
