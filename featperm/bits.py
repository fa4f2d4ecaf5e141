"""ShuffleBits: keyed permutation of the bits of every word of a tensor.

Ni, Huttunen and Rahtu (2021) encrypt deep features by moving bit ``i`` of every float32 value to
bit ``f(i)``, for a secret permutation ``f`` of the 32 bit positions. featperm applies it to words
of 8, 16, 32 or 64 bits, as integers: the kernels never treat a word as a number, so every bit
pattern (NaN payloads, signalling NaNs, -0, subnormals, infinities) survives exactly.

What it does not do: a fixed bit permutation is obfuscation, not encryption. It keeps every
word's Hamming weight, maps 0 to 0, and a handful of known plaintext words reveal the key. Use a
fresh key per request (per-sample keys) and cascade it with a real cipher (featperm.crypto) when
the ciphertext leaves your control.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from featperm import _library  # noqa: F401  (loads the compiled ops)
from featperm._permutation_key import PermutationKey, check_permutation_rows, random_permutation

__all__ = [
    "BitKey",
    "shuffle_bits",
    "unshuffle_bits",
    "shuffle_bits_",
    "unshuffle_bits_",
    "word_bits",
    "integer_view_dtype",
]

_WORD_DTYPES = {
    torch.uint8: 8, torch.int8: 8,
    torch.float16: 16, torch.bfloat16: 16, torch.int16: 16,
    torch.float32: 32, torch.int32: 32,
    torch.float64: 64, torch.int64: 64,
}
for _name, _bits in (("uint16", 16), ("uint32", 32), ("uint64", 64)):
    if hasattr(torch, _name):
        _WORD_DTYPES[getattr(torch, _name)] = _bits
_INTEGER_VIEW = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}
_KEY_BITS = (8, 16, 32, 64)


def word_bits(dtype: torch.dtype) -> int:
    """Word width in bits of a dtype that ShuffleBits supports (ValueError otherwise)."""
    try:
        return _WORD_DTYPES[dtype]
    except KeyError:
        raise ValueError(
            f"dtype {dtype} is not supported; expected one of "
            f"{sorted(str(d) for d in _WORD_DTYPES)}") from None


def integer_view_dtype(dtype: torch.dtype) -> torch.dtype:
    """The integer dtype of the same width (int32 for float32) used to carry ciphertext."""
    return _INTEGER_VIEW[word_bits(dtype)]


class BitKey(PermutationKey):
    """A ShuffleBits key: a permutation ``f`` of the bit positions ``0..n-1`` of an n-bit word.

    ``f[i] = f(i)``: encryption moves input bit ``i`` (bit 0 = least significant, bit ``n-1`` =
    sign) to output bit ``f(i)``. ``f`` has shape ``(n,)``, or ``(N, n)`` for one key per sample
    (row ``k`` encrypts ``x[k]``). n is 8, 16, 32 or 64 and must match the tensor's word width.

    The repr shows no key material; ``permutation()`` returns it explicitly.
    """

    __slots__ = ()

    def __init__(self, f: Union[Sequence[int], Sequence[Sequence[int]], torch.Tensor, "BitKey"]):
        if isinstance(f, BitKey):
            perm = f._perm
        else:
            perm = torch.as_tensor(f).detach().to("cpu")
            if perm.is_floating_point() or perm.is_complex() or perm.dtype == torch.bool:
                raise TypeError(f"BitKey: f must hold integer bit positions, got dtype {perm.dtype}")
            perm = perm.to(torch.int64).contiguous().clone()
        if perm.dim() not in (1, 2) or perm.shape[-1] not in _KEY_BITS:
            raise ValueError(f"BitKey: f must have shape (n,) or (N, n) with n in {_KEY_BITS}, "
                             f"got shape {tuple(perm.shape)}")
        if perm.dim() == 2 and perm.shape[0] == 0:
            raise ValueError("BitKey: a per-sample key needs at least one row")
        check_permutation_rows(perm, "BitKey: f")
        self._set_permutation(perm)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def generate(cls, bits: int = 32, samples: Optional[int] = None) -> "BitKey":
        """A uniformly random key from the operating system's CSPRNG (``secrets``).

        ``samples=N`` draws N independent keys, one per sample (per-request keys)."""
        if bits not in _KEY_BITS:
            raise ValueError(f"BitKey.generate: bits must be one of {_KEY_BITS}, got {bits}")
        rows = 1 if samples is None else int(samples)
        if rows < 1:
            raise ValueError(f"BitKey.generate: samples must be >= 1, got {samples}")
        perms = [random_permutation(bits) for _ in range(rows)]
        return cls(perms[0] if samples is None else perms)

    @classmethod
    def derive(cls, secret: bytes, label, context=b"", bits: int = 32,
               samples: Optional[int] = None) -> "BitKey":
        """The key derived from a master secret for (label, context) with HKDF-SHA256; the
        same inputs always give the same key. See :mod:`featperm.keys` for the construction."""
        from featperm.keys import derive_bit_key
        return derive_bit_key(secret, label, context, bits=bits, samples=samples)

    @classmethod
    def from_reference_index(cls, index: Union[Sequence[int], torch.Tensor]) -> "BitKey":
        """The key of the ShuffleBits authors' public code.

        Their code writes each value as an MSB-first binary string (character 0 = sign bit) and
        builds the ciphertext string with ``out[i] = in[index[i]]``. Character ``p`` is bit
        ``n-1-p``, so output bit ``n-1-i`` = input bit ``n-1-index[i]``: f(n-1-index[i]) = n-1-i.
        """
        idx = torch.as_tensor(index).to("cpu", torch.int64)
        if idx.dim() != 1 or idx.numel() not in _KEY_BITS:
            raise ValueError(f"from_reference_index: index must be 1-D of length in {_KEY_BITS}, "
                             f"got shape {tuple(idx.shape)}")
        check_permutation_rows(idx, "from_reference_index: index")
        n = idx.numel()
        f = torch.empty(n, dtype=torch.int64)
        f[n - 1 - idx] = n - 1 - torch.arange(n)
        return cls(f)

    def to_reference_index(self) -> torch.Tensor:
        """Inverse of :meth:`from_reference_index` (single keys only)."""
        if self.samples is not None:
            raise ValueError("to_reference_index: a per-sample key has no single index array")
        n = self.bits
        idx = torch.empty(n, dtype=torch.int64)
        idx[n - 1 - self._perm] = n - 1 - torch.arange(n)
        return idx

    # -- properties ---------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return int(self._perm.shape[-1])

    @property
    def samples(self) -> Optional[int]:
        """Number of per-sample rows, or None for a single key."""
        return int(self._perm.shape[0]) if self._perm.dim() == 2 else None

    def inverse(self) -> "BitKey":
        """The decryption key f^-1 (``shuffle_bits(y, k.inverse()) == unshuffle_bits(y, k)``)."""
        inv = torch.empty_like(self._perm)
        inv.scatter_(-1, self._perm, torch.arange(self.bits).expand_as(self._perm).contiguous())
        return BitKey(inv)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BitKey):
            return NotImplemented
        return self._same_permutation(other)

    def __repr__(self) -> str:
        rows = "" if self.samples is None else f", samples={self.samples}"
        return f"BitKey(bits={self.bits}{rows})"

    def __reduce__(self):
        return (BitKey, (self._perm,))


# The OpOverloads themselves: calling them skips the overload resolution of torch.ops packets.
_shuffle_bits_op = torch.ops.featperm.shuffle_bits.default
_unshuffle_bits_op = torch.ops.featperm.unshuffle_bits.default
_shuffle_bits_inplace_op = torch.ops.featperm.shuffle_bits_.default
_unshuffle_bits_inplace_op = torch.ops.featperm.unshuffle_bits_.default

KeyLike = Union[BitKey, torch.Tensor, Sequence[int], Sequence[Sequence[int]]]


def _key_tensor(key: KeyLike, x: torch.Tensor) -> torch.Tensor:
    if isinstance(key, BitKey):
        return key.tensor(x.device)
    if isinstance(key, torch.Tensor):
        if not torch.compiler.is_compiling() and key.numel() > 0 and key.dim() in (1, 2) and \
                not key.is_floating_point():
            # The C++ op can check only host keys (a device key would need a host sync there):
            # check every key here, with one sync for a device key. Pass a BitKey to skip it.
            check_permutation_rows(key, "key")
        return key
    return BitKey(key).tensor(x.device)


def shuffle_bits(x: torch.Tensor, key: KeyLike, *, as_integer: bool = False) -> torch.Tensor:
    """Encrypt: move bit ``i`` of every word of ``x`` to bit ``f(i)``.

    Args:
        x: tensor of any shape and strides, dtype float16/bfloat16/float32/float64 or an
            integer dtype of 8, 16, 32 or 64 bits; CPU or CUDA.
        key: a :class:`BitKey` (or its permutation as a sequence or tensor) with as many bit
            positions as x's words; shape (n,) or (x.shape[0], n) for one key per sample.
        as_integer: return the ciphertext as the integer view of the same width (int32 for
            float32), so that casts and serialisation cannot alter it.

    Returns:
        the ciphertext, with x's shape (and x's strides when x is dense). No gradient flows
        through it: the op is not differentiable, and backpropagating through it raises
        "derivative for featperm::shuffle_bits is not implemented" (the forward pass works on
        inputs that require grad).
    """
    y = _shuffle_bits_op(x, _key_tensor(key, x))
    return y.view(integer_view_dtype(x.dtype)) if as_integer else y


def unshuffle_bits(y: torch.Tensor, key: KeyLike, *, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Decrypt: the inverse of :func:`shuffle_bits` under the same key.

    ``y`` may be the ciphertext in its float dtype or its integer view; ``dtype`` names the
    plaintext dtype to return (default: y's dtype), e.g. ``dtype=torch.float32`` for an int32
    view. It must have y's word width.
    """
    if dtype is not None and dtype != y.dtype:
        if word_bits(dtype) != word_bits(y.dtype):
            raise ValueError(f"unshuffle_bits: dtype {dtype} has {word_bits(dtype)}-bit words but y "
                             f"({y.dtype}) has {word_bits(y.dtype)}-bit words")
        y = y.view(dtype)
    return _unshuffle_bits_op(y, _key_tensor(key, y))


def shuffle_bits_(x: torch.Tensor, key: KeyLike) -> torch.Tensor:
    """In-place :func:`shuffle_bits`; returns ``x``. x must not require grad."""
    _shuffle_bits_inplace_op(x, _key_tensor(key, x))
    return x


def unshuffle_bits_(y: torch.Tensor, key: KeyLike) -> torch.Tensor:
    """In-place :func:`unshuffle_bits`; returns ``y``. y must not require grad."""
    _unshuffle_bits_inplace_op(y, _key_tensor(key, y))
    return y


# -- registration for torch.compile / torch.export and autograd ---------------------------------

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
