"""Keys for featperm: master secrets, derived keys, key files, per-request keys.

The key layer depends on the standard library and torch only, never on featperm's compiled
library: key tools work where the extension is not built.

* :mod:`~featperm.keys.derivation` — master secrets (:func:`generate_secret`) and the HKDF-SHA256
  construction every key is derived with (version ``featperm/v1``).
* :mod:`~featperm.keys.bit_key` — :class:`BitKey` (ShuffleBits) and the word widths.
* :mod:`~featperm.keys.block_key` — :class:`BlockKey` (block-wise feature-map shuffle).
* :mod:`~featperm.keys.transform_keys` — :class:`NPKey`, :class:`FFXKey` (input transforms).
* :mod:`~featperm.keys.files` — the key-file format (:func:`save_key`, :func:`load_key`).
* :mod:`~featperm.keys.requests` — :class:`RequestKeys`, a fresh key per request.

What ShuffleBits does not protect: a fixed bit permutation keeps every word's Hamming weight and
maps 0 to 0, and a few known plaintext words reveal the key (the attack lives in
:mod:`featperm.attacks.known_plaintext`). Per-request keys limit what one known plaintext
reveals to that response; for confidentiality use :mod:`featperm.crypto`.
"""

import importlib
import warnings
from typing import Any

from featperm.errors import KeyFileError
from featperm.keys.bit_key import BIT_KEY_BITS, BitKey, derive_bit_key, integer_view_dtype, word_bits
from featperm.keys.block_key import MAX_BLOCK_SIZE, BlockKey, derive_block_key
from featperm.keys.derivation import (
    MIN_SECRET_BYTES,
    SECRET_BYTES,
    VERSION_TAG,
    derive_bytes,
    derive_permutation,
    generate_secret,
)
from featperm.keys.files import FORMAT_VERSION, load_key, load_secret, save_key, save_secret
from featperm.keys.requests import MAX_REQUEST_POSITIONS, MAX_REQUEST_SAMPLES, RequestKeys
from featperm.keys.transform_keys import FFXKey, NPKey

__all__ = [
    "SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "VERSION_TAG",
    "BIT_KEY_BITS",
    "MAX_BLOCK_SIZE",
    "FORMAT_VERSION",
    "MAX_REQUEST_SAMPLES",
    "MAX_REQUEST_POSITIONS",
    "KeyFileError",
    "generate_secret",
    "derive_permutation",
    "derive_bytes",
    "derive_bit_key",
    "derive_block_key",
    "BitKey",
    "BlockKey",
    "NPKey",
    "FFXKey",
    "word_bits",
    "integer_view_dtype",
    "save_key",
    "load_key",
    "save_secret",
    "load_secret",
    "RequestKeys",
]

_MOVED = {
    name: "featperm.attacks.known_plaintext"
    for name in ("bit_key_candidates", "recover_bit_key", "consistent_bit_key", "words_to_recover")
}


def __getattr__(name: str) -> Any:
    # Deprecated aliases: the known-plaintext attack moved up a layer to featperm.attacks. Old
    # code keeps working (with a DeprecationWarning); importing featperm.keys never loads it.
    if name in _MOVED:
        warnings.warn(f"featperm.keys.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'featperm.keys' has no attribute {name!r}")
