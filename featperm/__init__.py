"""featperm: keyed encryption and protection of deep features.

* ShuffleBits (Ni, Huttunen, Rahtu 2021): :func:`shuffle_bits`, :class:`BitKey`.
* Authenticated encryption (ChaCha20-Poly1305, RFC 8439, keystream on the tensor's device):
  :func:`seal`, :func:`open_sealed` and the module :mod:`featperm.crypto`.
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
from featperm import crypto
from featperm.crypto import open_sealed, seal

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
    "crypto",
    "seal",
    "open_sealed",
]
