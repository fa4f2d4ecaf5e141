"""ShuffleBits keys (:class:`BitKey`) and the word widths ShuffleBits works on."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import torch

from featperm import _checks
from featperm.keys._permutation import PermutationKey, random_permutation
from featperm.keys.derivation import BIT_KEY_BITS, Text, derive_permutation

__all__ = ["BitKey", "derive_bit_key", "word_bits", "word_dtypes", "integer_view_dtype", "BIT_KEY_BITS"]

_WORD_DTYPES = {
    torch.uint8: 8,
    torch.int8: 8,
    torch.float16: 16,
    torch.bfloat16: 16,
    torch.int16: 16,
    torch.float32: 32,
    torch.int32: 32,
    torch.float64: 64,
    torch.int64: 64,
}
for _name, _bits in (("uint16", 16), ("uint32", 32), ("uint64", 64)):
    if hasattr(torch, _name):
        _WORD_DTYPES[getattr(torch, _name)] = _bits
_INTEGER_VIEW = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}


def word_bits(dtype: torch.dtype) -> int:
    """Word width in bits of a dtype that ShuffleBits supports (TypeError otherwise)."""
    try:
        return _WORD_DTYPES[dtype]
    except KeyError:
        raise TypeError(
            f"word_bits: dtype {dtype} is not supported; expected one of {sorted(str(d) for d in _WORD_DTYPES)}"
        ) from None


def word_dtypes() -> Dict[torch.dtype, int]:
    """Every dtype ShuffleBits supports, with its word width in bits."""
    return dict(_WORD_DTYPES)


def integer_view_dtype(dtype: torch.dtype) -> torch.dtype:
    """The integer dtype of the same width (int32 for float32) used to carry ciphertext."""
    return _INTEGER_VIEW[word_bits(dtype)]


def check_bits(where: str, bits: object) -> int:
    """``bits`` as an int: TypeError unless an integer, ValueError unless 8, 16, 32 or 64."""
    n = _checks.integer(where, "bits", bits)
    if n not in BIT_KEY_BITS:
        raise ValueError(f"{where}: bits must be one of {BIT_KEY_BITS}, got {n}")
    return n


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
            perm = _checks.key_tensor("BitKey", "f", f).detach().to("cpu", torch.int64).contiguous().clone()
        if perm.dim() not in (1, 2) or perm.shape[-1] not in BIT_KEY_BITS:
            raise ValueError(
                f"BitKey: f must have shape (n,) or (N, n) with n in {BIT_KEY_BITS}, got shape {tuple(perm.shape)}"
            )
        if perm.dim() == 2 and perm.shape[0] == 0:
            raise ValueError("BitKey: a per-sample key needs at least one row")
        _checks.permutation_rows("BitKey: f", perm)
        self._set_permutation(perm)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def generate(cls, bits: int = 32, samples: Optional[int] = None) -> "BitKey":
        """A uniformly random key from the operating system's CSPRNG (``secrets``).

        ``samples=N`` draws N independent keys, one per sample (per-request keys)."""
        bits = check_bits("BitKey.generate", bits)
        if samples is None:
            return cls(random_permutation(bits))
        rows = _checks.integer("BitKey.generate", "samples", samples, minimum=1)
        return cls([random_permutation(bits) for _ in range(rows)])

    @classmethod
    def derive(
        cls, secret: bytes, label: Text, context: Text = b"", bits: int = 32, samples: Optional[int] = None
    ) -> "BitKey":
        """The key derived from a master secret for (label, context) with HKDF-SHA256; the
        same inputs always give the same key. ``samples=N`` derives a per-sample key of N rows
        (row r with shape (n, N, r)). See :mod:`featperm.keys.derivation`."""
        where = "BitKey.derive"
        bits = check_bits(where, bits)
        if samples is None:
            return cls(derive_permutation(secret, label, context, n=bits, kind="BitKey"))
        rows = _checks.integer(where, "samples", samples, minimum=1)
        return cls(
            [
                derive_permutation(secret, label, context, n=bits, kind="BitKey", shape=(bits, rows, r))
                for r in range(rows)
            ]
        )

    @classmethod
    def from_reference_index(cls, index: Union[Sequence[int], torch.Tensor]) -> "BitKey":
        """The key of the ShuffleBits authors' public code.

        Their code writes each value as an MSB-first binary string (character 0 = sign bit) and
        builds the ciphertext string with ``out[i] = in[index[i]]``. Character ``p`` is bit
        ``n-1-p``, so output bit ``n-1-i`` = input bit ``n-1-index[i]``: f(n-1-index[i]) = n-1-i.
        """
        where = "BitKey.from_reference_index"
        idx = _checks.key_tensor(where, "index", index).to("cpu", torch.int64)
        if idx.dim() != 1 or idx.numel() not in BIT_KEY_BITS:
            raise ValueError(f"{where}: index must be 1-D of length in {BIT_KEY_BITS}, got shape {tuple(idx.shape)}")
        _checks.permutation_rows(f"{where}: index", idx)
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
        """n: the word width in bits (8, 16, 32 or 64) this key permutes."""
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


def derive_bit_key(
    secret: bytes, label: Text, context: Text = b"", bits: int = 32, samples: Optional[int] = None
) -> BitKey:
    """:meth:`BitKey.derive` as a function."""
    return BitKey.derive(secret, label, context, bits=bits, samples=samples)
