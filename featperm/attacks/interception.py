"""What an interceptor holds, and how a naive attacker reads it as features.

A naive attacker applies the models it trained on plain features to whatever it intercepts:
ShuffleBits ciphertext read as float32 words, or the body of a sealed (ChaCha20-Poly1305)
container read the same way. Read as floats, ciphertext words are often NaN, infinite or
astronomically large; the naive attacker replaces non-finite values by 0 and clips every
dimension to a widened range of the plain features it has seen (the kindest reading, which
gives its models the best chance). Decrypted estimates of adaptive attackers go through the
same reading, so every condition is scored the same way.

Shapes: (N, D) words or features.
"""

from __future__ import annotations

from typing import Tuple, Union

import torch

from featperm import _checks
from featperm.crypto.aead import NONCE_BYTES, TAG_BYTES
from featperm.crypto.sealed import sealed_header
from featperm.keys import integer_view_dtype, word_bits

__all__ = ["FeatureRange", "feature_range", "read_as_features", "sealed_ciphertext_words"]

FeatureRange = Tuple[torch.Tensor, torch.Tensor]


def feature_range(reference: torch.Tensor, widen: float = 1.0) -> FeatureRange:
    """Per-dimension (low, high) of (N, D) plain features, widened by ``widen`` times the span on
    each side."""
    reference = _checks.tensor("feature_range", "reference", reference)
    low, high = reference.min(dim=0).values, reference.max(dim=0).values
    span = (high - low) * widen
    return low - span, high + span


def read_as_features(words: torch.Tensor, limits: FeatureRange, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, D) words (integer view or float) -> float features as a naive attacker reads them:
    the words as ``dtype``, non-finite values set to 0, each dimension clipped to ``limits``."""
    words = _checks.tensor("read_as_features", "words", words)
    if not words.is_floating_point():
        if word_bits(words.dtype) != word_bits(dtype):
            raise ValueError(f"read_as_features: words of {word_bits(words.dtype)} bits cannot be read as {dtype}")
        words = words.view(dtype)
    values = torch.nan_to_num(words.to(dtype), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = limits
    return torch.maximum(torch.minimum(values, high.to(values)), low.to(values))


def sealed_ciphertext_words(
    sealed: Union[bytes, bytearray, memoryview], dtype: torch.dtype, shape: Tuple[int, ...]
) -> torch.Tensor:
    """The ciphertext body of a container made by :func:`featperm.crypto.seal` of a tensor of
    ``dtype`` and ``shape``, as integer words of that width and shape: exactly what an
    interceptor can feed to its models (ChaCha20 keeps the length, so word k of the body is the
    encryption of word k of the tensor)."""
    header = len(sealed_header(dtype, shape))
    buf = memoryview(sealed).cast("B")
    numel = 1
    for s in shape:
        numel *= s
    n = numel * torch.empty((), dtype=dtype).element_size()
    if len(buf) != header + NONCE_BYTES + n + TAG_BYTES:
        raise ValueError(
            f"sealed_ciphertext_words: {len(buf)} bytes is not a sealed {dtype} tensor of shape {tuple(shape)}"
        )
    body = torch.frombuffer(bytearray(buf[header + NONCE_BYTES : header + NONCE_BYTES + n]), dtype=torch.uint8)
    return body.view(integer_view_dtype(dtype)).view(shape)
