"""featperm: keyed encryption and protection of deep features.

* ShuffleBits (Ni, Huttunen, Rahtu 2021): :func:`shuffle_bits`, :class:`BitKey`.
* Block-wise feature-map shuffle (AprilPyone & Kiya 2021): :func:`block_shuffle`, :class:`BlockKey`,
  :func:`protect`; modules in :mod:`featperm.nn`, input transforms in :mod:`featperm.transforms`,
  a CIFAR ResNet-18 in :mod:`featperm.models`.
* Key schedule (derivation, key files, per-request keys): :mod:`featperm.keys`.
* Authenticated encryption (ChaCha20-Poly1305, RFC 8439, keystream on the tensor's device):
  :func:`seal`, :func:`open_sealed` and the module :mod:`featperm.crypto`.
"""

from featperm import bits as _bits
from featperm._library import cpu_isa, has_cuda_kernels
from featperm.bits import *  # noqa: F401,F403  (BitKey, shuffle_bits, ... : see featperm.bits.__all__)
from featperm.block import BlockKey, block_shuffle, block_shuffle_, block_unshuffle, block_unshuffle_
from featperm import crypto, keys, models, nn, transforms  # noqa: E402  (submodules)
from featperm.crypto import open_sealed, seal
from featperm.nn import protect, set_key, unprotect

__version__ = "0.1.0"

__all__ = list(_bits.__all__) + [
    "cpu_isa", "has_cuda_kernels",
    "BlockKey", "block_shuffle", "block_unshuffle", "block_shuffle_", "block_unshuffle_",
    "protect", "unprotect", "set_key",
    "seal", "open_sealed",
    "crypto", "keys", "models", "nn", "transforms",
]
