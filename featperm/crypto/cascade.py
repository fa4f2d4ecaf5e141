"""The cascade the ShuffleBits paper suggests: ShuffleBits, then ChaCha20-Poly1305.

The ShuffleBits step (Ni, Huttunen, Rahtu 2021) is kept for compatibility with systems that
expect bit-shuffled features after decryption; the confidentiality and integrity come from the
ChaCha20-Poly1305 layer.
"""

from __future__ import annotations

from typing import Union

import torch

from featperm.crypto.aead import BytesLike
from featperm.crypto.sealed import SealedBytes, open_sealed, seal
from featperm.ops.shuffle_bits import KeyLike, shuffle_bits, unshuffle_bits

__all__ = ["seal_shuffled", "open_shuffled"]


def seal_shuffled(
    x: torch.Tensor, bit_key: KeyLike, aead_key: BytesLike, nonce: BytesLike, aad: BytesLike = b""
) -> SealedBytes:
    """``seal(shuffle_bits(x, bit_key), aead_key, nonce, aad)``; open with :func:`open_shuffled`.

    ``x``: any shape, a dtype ShuffleBits supports (8, 16, 32 or 64-bit words) matching the key's
    width. Returns the sealed container of the bit-shuffled tensor (``docs/formats.md``). The
    errors of :func:`~featperm.ops.shuffle_bits` and :func:`~featperm.crypto.seal`."""
    return seal(shuffle_bits(x, bit_key), aead_key, nonce, aad)


def open_shuffled(
    sealed: BytesLike,
    bit_key: KeyLike,
    aead_key: BytesLike,
    aad: BytesLike = b"",
    device: Union[torch.device, str, None] = None,
) -> torch.Tensor:
    """Inverse of :func:`seal_shuffled`: verify and decrypt, then undo the bit permutation.

    Returns the original tensor bit for bit, on ``device`` (default CPU). Raises
    :class:`~featperm.errors.AuthenticationError` (nothing is decrypted) for a wrong AEAD key or
    aad or any changed byte, :class:`~featperm.errors.MalformedSealedError` for bytes that are not
    a container; a wrong ``bit_key`` is not detected (it yields wrong values)."""
    return unshuffle_bits(open_sealed(sealed, aead_key, aad, device), bit_key)
