"""featperm: keyed encryption and protection of deep features.

* ShuffleBits (Ni, Huttunen, Rahtu 2021): :func:`shuffle_bits`, :class:`BitKey`.
* Block-wise feature-map shuffle (AprilPyone & Kiya 2021): :func:`block_shuffle`, :class:`BlockKey`,
  :func:`protect`; modules in :mod:`featperm.nn`, input transforms in :mod:`featperm.transforms`,
  a CIFAR ResNet-18 in :mod:`featperm.models`.
* Keys (derivation, key files, per-request keys): :mod:`featperm.keys`.
* Authenticated encryption (ChaCha20-Poly1305, RFC 8439, keystream on the tensor's device):
  :func:`seal`, :func:`open_sealed` and the package :mod:`featperm.crypto`.
* Attacks: :mod:`featperm.attacks`. Errors: :mod:`featperm.errors`.

The package is layered, imports pointing one way::

    errors, _checks -> keys -> ops, crypto -> nn, transforms, models, reference
        -> datasets, attacks -> experiments -> report -> demo, cli

Importing ``featperm`` or ``featperm.keys`` does not load the compiled library; the first use of
an op-level name here (``featperm.shuffle_bits``, ``featperm.seal``, ...) or ``import
featperm.ops`` loads it (and registers ``torch.ops.featperm``).
"""

from __future__ import annotations

import importlib
from typing import Any, List

from featperm import errors
from featperm._version import __version__
from featperm.errors import FeatpermError
from featperm.keys import BitKey, BlockKey, integer_view_dtype, word_bits

# Names that live above the key layer, loaded on first use (see the module docstring).
_LAZY = {
    "shuffle_bits": "featperm.ops",
    "unshuffle_bits": "featperm.ops",
    "shuffle_bits_": "featperm.ops",
    "unshuffle_bits_": "featperm.ops",
    "block_shuffle": "featperm.ops",
    "block_unshuffle": "featperm.ops",
    "block_shuffle_": "featperm.ops",
    "block_unshuffle_": "featperm.ops",
    "has_cuda_kernels": "featperm.ops",
    "cpu_isa": "featperm.ops",
    "cpu_kernels": "featperm.ops",
    "use_cpu_kernels": "featperm.ops",
    "seal": "featperm.crypto",
    "open_sealed": "featperm.crypto",
    "protect": "featperm.nn",
    "unprotect": "featperm.nn",
    "set_key": "featperm.nn",
}
_SUBPACKAGES = (
    "ops",
    "crypto",
    "nn",
    "transforms",
    "models",
    "attacks",
    "datasets",
    "experiments",
    "report",
    "reference",
    "keys",
)

__all__ = [
    "__version__",
    "errors",
    "FeatpermError",
    "BitKey",
    "BlockKey",
    "word_bits",
    "integer_view_dtype",
    *_LAZY,
    *_SUBPACKAGES,
]


def _load_all() -> None:
    # Load every lazy name at once and bind it here, so later lookups (also inside
    # torch.compile's tracing) are plain module attributes.
    for module_name in sorted(set(_LAZY.values())):
        module = importlib.import_module(module_name)
        for name, owner in _LAZY.items():
            if owner == module_name:
                globals()[name] = getattr(module, name)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        _load_all()
        return globals()[name]
    if name in _SUBPACKAGES:
        return importlib.import_module(f"featperm.{name}")
    raise AttributeError(f"module 'featperm' has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
