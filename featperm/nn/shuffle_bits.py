"""ShuffleBits as a module: the last layer of a feature extractor that outputs ciphertext."""

from __future__ import annotations

from typing import Any, Optional, Union

import torch

from featperm import _checks
from featperm.crypto.nonces import Sealer
from featperm.crypto.sealed import SealedBytes
from featperm.errors import KeyNotLoadedError
from featperm.keys import BitKey
from featperm.nn._keyed import KEY_NOT_LOADED, KeyedModule
from featperm.ops.shuffle_bits import shuffle_bits

__all__ = ["ShuffleBits"]


class ShuffleBits(KeyedModule):
    """Encrypts its input with :func:`featperm.shuffle_bits` (e.g. as the last layer of a feature
    extractor: the model then outputs ciphertext). ``as_integer`` returns the integer view.

    With a ``sealer`` (a :class:`featperm.crypto.Sealer`), the output is then sealed with
    ChaCha20-Poly1305 under a fresh nonce (the cascade the ShuffleBits paper suggests): forward
    returns the sealed container (a ``bytearray`` for CPU input, a ``memoryview`` over pinned host
    memory for CUDA input; see :func:`featperm.crypto.seal`), which opens with
    ``featperm.crypto.open_shuffled(sealed, bit_key, sealer.key(), aad)``. Like the bit key, the
    sealer (and its AEAD key) is never pickled with the module.
    """

    _key_type = BitKey
    _secret_attributes = ("_key", "_sealer")
    _sealer: Any

    def __init__(
        self, key: Optional[BitKey], as_integer: bool = False, sealer: Optional[Sealer] = None, aad: bytes = b""
    ):
        super().__init__(key)
        self.as_integer = bool(as_integer)
        self.aad = _checks.byte_string("ShuffleBits", "aad", aad)
        self.set_sealer(sealer)

    def set_sealer(self, sealer: Optional[Sealer]) -> None:
        """Seal every output with ``sealer`` from now on (``None``: return the ShuffleBits
        ciphertext as a tensor). Also restores a sealer that pickling dropped. TypeError for
        anything but a :class:`~featperm.crypto.Sealer` or None."""
        if sealer is not None and not isinstance(sealer, Sealer):
            raise TypeError(
                f"ShuffleBits.set_sealer: expected a featperm.crypto.Sealer or None, got {type(sealer).__name__}"
            )
        object.__setattr__(self, "_sealer", sealer)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, SealedBytes]:
        """Encrypt ``x`` (any shape; a dtype of 8, 16, 32 or 64 bits matching the key's width; a
        per-sample key needs ``x.shape[0]`` rows).

        Returns ``shuffle_bits(x, key)`` (x's shape and dtype, or its integer view with
        ``as_integer``), or ``x`` unchanged when the key is ``None``; with a sealer, that tensor
        sealed under a fresh nonce with ``aad``: a ``bytearray`` (CPU) or ``memoryview`` (CUDA)
        container (``docs/formats.md``). Raises :class:`~featperm.errors.KeyNotLoadedError` when
        the key or sealer was dropped by pickling, :class:`~featperm.errors.KeyExportError` when
        traced or exported outside :func:`~featperm.nn.allow_key_export`, TypeError/ValueError
        for an unsupported dtype or a key of another width or batch size."""
        key = self._require_key()
        y = x if key is None else shuffle_bits(x, key, as_integer=self.as_integer)
        if self._sealer is KEY_NOT_LOADED:
            raise KeyNotLoadedError(
                "ShuffleBits has no sealer: sealers (and their keys) are not saved "
                "with a model. Set it again with module.set_sealer(sealer)"
            )
        return y if self._sealer is None else self._sealer.seal(y, aad=self.aad)

    def extra_repr(self) -> str:
        sealed = ", sealed" if self._sealer not in (None, KEY_NOT_LOADED) else ""
        if self._key is KEY_NOT_LOADED:
            return f"key=<not loaded>, as_integer={self.as_integer}{sealed}"
        if self._key is None:
            return f"key=None, as_integer={self.as_integer}{sealed}"
        return f"bits={self._key.bits}, as_integer={self.as_integer}{sealed}"
