"""ShuffleBits: keyed permutation of the bits of every word of a tensor.

Ni, Huttunen and Rahtu (2021) encrypt deep features by moving bit ``i`` of every float32 value to
bit ``f(i)``, for a secret permutation ``f`` of the 32 bit positions. featperm applies it to words
of 8, 16, 32 or 64 bits, as integers: the kernels never treat a word as a number, so every bit
pattern (NaN payloads, signalling NaNs, -0, subnormals, infinities) survives exactly.

What it does not do: a fixed bit permutation is obfuscation, not encryption. It keeps every
word's Hamming weight, maps 0 to 0, and a handful of known plaintext words reveal the key. Use a
fresh key per request (per-sample keys) and cascade it with a real cipher (featperm.crypto) when
the ciphertext leaves your control.

Argument rules: :mod:`featperm._checks`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from featperm import _checks
from featperm.keys.bit_key import BitKey, integer_view_dtype, word_bits, word_dtypes
from featperm.ops import _library  # noqa: F401  (loads the compiled ops)

__all__ = ["shuffle_bits", "unshuffle_bits", "shuffle_bits_", "unshuffle_bits_", "KeyLike"]

# The OpOverloads themselves: calling them skips the overload resolution of torch.ops packets.
_shuffle_bits_op = torch.ops.featperm.shuffle_bits.default
_unshuffle_bits_op = torch.ops.featperm.unshuffle_bits.default
_shuffle_bits_inplace_op = torch.ops.featperm.shuffle_bits_.default
_unshuffle_bits_inplace_op = torch.ops.featperm.unshuffle_bits_.default

_WORD_BITS = word_dtypes()

KeyLike = Union[BitKey, torch.Tensor, Sequence[int], Sequence[Sequence[int]]]


def _key_tensor(op: str, x: object, key: KeyLike) -> torch.Tensor:
    x = _checks.tensor(op, "x", x)
    if isinstance(key, BitKey):
        return key.tensor(x.device)
    key_t = _checks.key_tensor(op, "key", key, x.device)
    if (
        key_t.device.type != "cpu"
        and key_t.device == x.device
        and not torch.compiler.is_compiling()
        and key_t.numel() > 0
        and key_t.dim() in (1, 2)
    ):
        # The C++ op checks host keys itself; a device key is checked here (one host sync; pass a
        # BitKey to skip it), width first as the op would: a 31-entry key is the wrong width.
        bits = _WORD_BITS.get(x.dtype)  # None: the op raises TypeError naming x's dtype
        if bits is not None and key_t.shape[-1] != bits:
            raise ValueError(
                f"{op}: key has {key_t.shape[-1]} positions but x has {bits}-bit words "
                f"(dtype {x.dtype}); expected a {bits}-bit key"
            )
        _checks.permutation_rows(f"{op}: key", key_t)
    return key_t


def shuffle_bits(x: torch.Tensor, key: KeyLike, *, as_integer: bool = False) -> torch.Tensor:
    """Encrypt: move bit ``i`` of every word of ``x`` to bit ``f(i)``.

    Args:
        x: tensor of any shape and strides, dtype float16/bfloat16/float32/float64 or an
            integer dtype of 8, 16, 32 or 64 bits; CPU or CUDA.
        key: a :class:`~featperm.BitKey` (or its permutation as a sequence or integer tensor, on
            x's device) with as many bit positions as x's words; shape (n,) or (x.shape[0], n)
            for one key per sample.
        as_integer: return the ciphertext as the integer view of the same width (int32 for
            float32), so that casts and serialisation cannot alter it.

    Returns:
        the ciphertext, with x's shape (and x's strides when x is dense). No gradient flows
        through it: the op is not differentiable, and backpropagating through it raises
        "derivative for featperm::shuffle_bits is not implemented" (the forward pass works on
        inputs that require grad).

    Raises:
        TypeError: x is not a tensor or has an unsupported dtype (bool, complex, ...); the key
            is a float or bool tensor or not a key at all.
        ValueError: the key is not a permutation, has another width than x's words (a 32-bit key
            for float16), another number of rows than ``x.shape[0]``, or lies on another device.
    """
    y = _shuffle_bits_op(x, _key_tensor("shuffle_bits", x, key))
    return y.view(integer_view_dtype(x.dtype)) if as_integer else y


def unshuffle_bits(y: torch.Tensor, key: KeyLike, *, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Decrypt: the inverse of :func:`shuffle_bits` under the same key.

    ``y`` may be the ciphertext in its float dtype or its integer view, any shape; ``dtype``
    names the plaintext dtype to return (default: y's dtype), e.g. ``dtype=torch.float32`` for an
    int32 view. Returns y's shape, bit for bit the plaintext. The same rules and errors as
    :func:`shuffle_bits`; also TypeError when ``dtype`` is not a torch.dtype and ValueError when
    it has another word width than y.
    """
    key_t = _key_tensor("unshuffle_bits", y, key)
    if dtype is not None and dtype != y.dtype:
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"unshuffle_bits: dtype must be a torch.dtype, got {type(dtype).__name__}")
        if word_bits(dtype) != word_bits(y.dtype):
            raise ValueError(
                f"unshuffle_bits: dtype {dtype} has {word_bits(dtype)}-bit words but y "
                f"({y.dtype}) has {word_bits(y.dtype)}-bit words"
            )
        y = y.view(dtype)
    return _unshuffle_bits_op(y, key_t)


def shuffle_bits_(x: torch.Tensor, key: KeyLike) -> torch.Tensor:
    """In-place :func:`shuffle_bits`; returns ``x``. x must not require grad, and no two of its
    elements may share memory (any other view is fine)."""
    _shuffle_bits_inplace_op(x, _key_tensor("shuffle_bits_", x, key))
    return x


def unshuffle_bits_(y: torch.Tensor, key: KeyLike) -> torch.Tensor:
    """In-place :func:`unshuffle_bits`; returns ``y``. Same rules as :func:`shuffle_bits_`."""
    _unshuffle_bits_inplace_op(y, _key_tensor("unshuffle_bits_", y, key))
    return y


# -- registration for torch.compile / torch.export ----------------------------------------------


def _is_non_overlapping_and_dense(x: torch.Tensor) -> bool:
    # Same rule as c10's TensorImpl::is_non_overlapping_and_dense (not public in Python).
    dims = sorted((x.stride(d), x.size(d)) for d in range(x.dim()) if x.size(d) != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def _is_linear_run(x: torch.Tensor, key: torch.Tensor) -> bool:
    # Mirrors is_linear_run in csrc/ops/shuffle_bits.cpp: decides the output strides.
    if not _is_non_overlapping_and_dense(x):
        return False
    rows = key.shape[0] if key.dim() == 2 else 1
    if rows <= 1:
        return True
    return x.stride(0) * rows == x.numel() and _is_non_overlapping_and_dense(x.select(0, 0))


def _fake_out_of_place(x: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    if _is_linear_run(x, key):
        return torch.empty_like(x)
    return x.new_empty(x.shape)


def _fake_in_place(x: torch.Tensor, key: torch.Tensor) -> None:
    return None


for _op in ("shuffle_bits", "unshuffle_bits"):
    torch.library.register_fake(f"featperm::{_op}")(_fake_out_of_place)
for _op in ("shuffle_bits_", "unshuffle_bits_"):
    torch.library.register_fake(f"featperm::{_op}")(_fake_in_place)
