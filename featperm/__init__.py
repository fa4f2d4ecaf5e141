"""featperm: keyed encryption and protection of deep features.

* ShuffleBits (Ni, Huttunen, Rahtu 2021): :func:`shuffle_bits`, :class:`BitKey`.
* Block-wise feature-map shuffle (AprilPyone & Kiya 2021): :func:`block_shuffle`, :class:`BlockKey`,
  :func:`protect`; modules in :mod:`featperm.nn`, input transforms in :mod:`featperm.transforms`,
  a CIFAR ResNet-18 in :mod:`featperm.models`.
"""

from featperm._library import cpu_isa, has_cuda_kernels
from featperm.bits import (
    BitKey,
    integer_view_dtype,
    shuffle_bits,
    shuffle_bits_,
    unshuffle_bits,
    unshuffle_bits_,
    word_bits,
)
from featperm.block import BlockKey, block_shuffle, block_shuffle_, block_unshuffle, block_unshuffle_
from featperm import models, nn, transforms  # submodules: featperm.nn, featperm.transforms, featperm.models
from featperm.nn import protect, set_key, unprotect

__version__ = "0.1.0"

__all__ = [
    "BitKey",
    "shuffle_bits",
    "unshuffle_bits",
    "shuffle_bits_",
    "unshuffle_bits_",
    "word_bits",
    "integer_view_dtype",
    "cpu_isa",
    "has_cuda_kernels",
    "BlockKey",
    "block_shuffle",
    "block_unshuffle",
    "block_shuffle_",
    "block_unshuffle_",
    "protect",
    "unprotect",
    "set_key",
    "nn",
    "transforms",
    "models",
]
