"""Master secrets and HKDF-SHA256 derivation of every featperm key (version ``featperm/v1``).

A permutation of ``n`` positions is derived from (secret, kind, shape, label, context) with
HKDF-SHA256 (RFC 5869) driving a Fisher-Yates shuffle::

    LP(x)      = U32BE(len(x)) || x                       # length prefix: no ambiguity
    SHAPE      = U64BE(d_1) || ... || U64BE(d_k)          # the kind's shape parameters
    INFO(j)    = b"featperm/v1" || LP(kind) || LP(SHAPE) || LP(label) || LP(context) || U32BE(j)
    PRK        = HKDF-Extract(salt=b"featperm/v1", IKM=secret)
    STREAM     = HKDF-Expand(PRK, INFO(0), 8160) || HKDF-Expand(PRK, INFO(1), 8160) || ...

``kind`` is ``b"permutation"`` (any n >= 1, SHAPE = (n)), ``b"BitKey"`` (n in 8/16/32/64;
SHAPE = (n) for a single key, (n, N, r) for row r of a per-sample key of N rows) or
``b"BlockKey"`` (SHAPE = (C, M), n = C*M*M). The input-transform keys read raw STREAM bytes
(:func:`derive_bytes`): ``b"NPKey"`` (SHAPE = (C, M); bit k of the stream's first ceil(n/8)
bytes, little-endian bit order, negates position k) and ``b"FFXKey"`` (SHAPE = (C, M, rounds);
the first 32 bytes are the FFX secret); ``b"FFX-rounds"`` (SHAPE = (C, M, rounds), the
FFX secret as IKM, label ``"FFX rounds"``) gives FFX's round tables. ``label`` (the purpose,
e.g. b"features") and
``context`` (e.g. a request id or layer name) are bytes, or str encoded as UTF-8. 8160 = 255 * 32
bytes is HKDF-Expand's maximum output; a chunk is consumed lazily (its prefix does not depend on
the requested length), so a 32-bit key costs one HKDF-Extract and one or two HKDF-Expand blocks.

Fisher-Yates, starting from the identity ``p = [0, 1, ..., n-1]``: for ``i = n-1`` down to ``1``,
read ``b = ceil(bitlen(i) / 8)`` bytes of STREAM as a big-endian integer ``v``; if
``v >= 256**b - (256**b mod (i+1))`` reject it and read again, else ``j = v mod (i+1)`` and swap
``p[i]``, ``p[j]``. The rejection removes modulo bias, so ``p`` is uniform given a uniform
STREAM. ``p[i]`` is the key's ``f(i)`` (BitKey) or ``v[i]`` (BlockKey).

No numpy, torch or ``random`` generator is used anywhere on a key path. Standard library only.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from typing import List, Optional, Sequence, Tuple, Union

from featperm import _checks
from featperm._checks import MIN_SECRET_BYTES

__all__ = [
    "SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "VERSION_TAG",
    "BIT_KEY_BITS",
    "PERMUTATION_KINDS",
    "BYTE_KINDS",
    "generate_secret",
    "derive_permutation",
    "derive_bytes",
    "hkdf_stream",
    "HkdfStream",
]

SECRET_BYTES = 32  # 256-bit master secrets

VERSION_TAG = b"featperm/v1"
_HKDF_SALT = VERSION_TAG
_HKDF_HASH = "sha256"
_HKDF_MAX_BLOCKS = 255  # RFC 5869: L <= 255 * HashLen
BIT_KEY_BITS = (8, 16, 32, 64)  # the word widths of ShuffleBits keys (one definition)
PERMUTATION_KINDS = ("permutation", "BitKey", "BlockKey")  # derive_permutation
BYTE_KINDS = ("NPKey", "FFXKey", "FFX-rounds")  # derive_bytes and the FFX round tables

Text = Union[bytes, bytearray, str]


def generate_secret(nbytes: int = SECRET_BYTES) -> bytes:
    """A fresh master secret from the operating system's CSPRNG (256 bits by default)."""
    nbytes = _checks.integer("generate_secret", "nbytes", nbytes, minimum=MIN_SECRET_BYTES)
    return secrets.token_bytes(nbytes)


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, _HKDF_HASH)


class HkdfStream:
    """STREAM of the module docstring: HKDF-Expand chunks INFO(0), INFO(1), ... read lazily."""

    __slots__ = ("_prk", "_info_prefix", "_chunk", "_block", "_previous", "_buffer", "_pos")

    def __init__(self, prk: bytes, info_prefix: bytes):
        self._prk = prk
        self._info_prefix = info_prefix
        self._chunk = 0
        self._block = 0  # HKDF-Expand blocks T(1..255) produced in this chunk
        self._previous = b""  # T(block)
        self._buffer = b""
        self._pos = 0

    def _next_block(self) -> bytes:
        if self._block == _HKDF_MAX_BLOCKS:
            self._chunk += 1
            self._block = 0
            self._previous = b""
        self._block += 1
        info = self._info_prefix + struct.pack(">I", self._chunk)
        self._previous = hmac.digest(self._prk, self._previous + info + bytes([self._block]), _HKDF_HASH)
        return self._previous

    def read(self, nbytes: int) -> bytes:
        """The next ``nbytes`` bytes of STREAM (consumed: the following read continues after them)."""
        while len(self._buffer) - self._pos < nbytes:
            self._buffer = self._buffer[self._pos :] + self._next_block()
            self._pos = 0
        out = self._buffer[self._pos : self._pos + nbytes]
        self._pos += nbytes
        return out


def _lp(data: bytes) -> bytes:
    if len(data) >= 1 << 32:
        raise ValueError("derive: label and context must be shorter than 2**32 bytes")
    return struct.pack(">I", len(data)) + data


def _info_prefix(kind: str, shape: Tuple[int, ...], label: bytes, context: bytes) -> bytes:
    shape_bytes = b"".join(struct.pack(">Q", d) for d in shape)
    return VERSION_TAG + _lp(kind.encode("ascii")) + _lp(shape_bytes) + _lp(label) + _lp(context)


def fisher_yates(n: int, stream: HkdfStream) -> List[int]:
    """The Fisher-Yates shuffle of the module docstring, reading ``stream``."""
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        nbytes = (i.bit_length() + 7) // 8
        span = 1 << (8 * nbytes)
        limit = span - span % bound  # largest multiple of bound that fits: no modulo bias
        while True:
            v = int.from_bytes(stream.read(nbytes), "big")
            if v < limit:
                break
        j = v % bound
        p[i], p[j] = p[j], p[i]
    return p


def _check_shape(kind: str, n: int, shape: Optional[Sequence[int]], where: str) -> Tuple[int, ...]:
    if kind not in PERMUTATION_KINDS:
        raise ValueError(f"{where}: kind must be one of {PERMUTATION_KINDS}, got {kind!r}")
    if kind == "BlockKey":
        if shape is None or len(shape) != 2:
            raise ValueError(f"{where}: kind='BlockKey' needs shape=(channels, block_size)")
        c = _checks.integer(where, "channels", shape[0], minimum=1)
        m = _checks.integer(where, "block_size", shape[1], minimum=1)
        if c * m * m != n:
            raise ValueError(
                f"{where}: a BlockKey with channels={c}, block_size={m} permutes {c * m * m} positions, but n={n}"
            )
        return (c, m)
    if kind == "BitKey" and n not in BIT_KEY_BITS:
        raise ValueError(f"{where}: kind='BitKey' needs n in {BIT_KEY_BITS}, got {n}")
    if shape is None:
        return (n,)
    shape = tuple(_checks.integer(where, "shape entry", d, minimum=0) for d in shape)
    if shape == (n,):
        return shape
    if kind == "BitKey" and len(shape) == 3 and shape[0] == n and 0 <= shape[2] < shape[1]:
        return shape  # (n, N, r): row r of a per-sample key of N rows
    expected = "(n,) or (n, rows, row) with 0 <= row < rows" if kind == "BitKey" else "(n,)"
    raise ValueError(f"{where}: shape for kind={kind!r} must be {expected}, got {shape}")


def hkdf_stream(
    where: str, secret: object, label: object, context: object, kind: str, shape: Tuple[int, ...]
) -> HkdfStream:
    """STREAM for (secret, kind, shape, label, context), arguments checked (``where`` names the
    caller in errors)."""
    key = _checks.secret(where, secret)
    label_b = _checks.text(where, "label", label)
    if not label_b:
        raise ValueError(f"{where}: label must not be empty (name the key's purpose)")
    context_b = _checks.text(where, "context", context)
    prk = _hkdf_extract(_HKDF_SALT, key)
    return HkdfStream(prk, _info_prefix(kind, shape, label_b, context_b))


def derive_permutation(
    secret: bytes,
    label: Text,
    context: Text = b"",
    *,
    n: int,
    kind: str = "permutation",
    shape: Optional[Sequence[int]] = None,
) -> List[int]:
    """The permutation of ``0..n-1`` derived from ``secret`` for (kind, shape, label, context).

    Deterministic: the same inputs give the same permutation, on any platform; any change to
    one of them gives an unrelated one. See the module docstring for the construction.

    Args:
        secret: master secret, bytes of at least 16 bytes.
        label: the purpose (bytes or UTF-8 str), e.g. ``"features/layer3"``; must not be empty.
        context: e.g. a request id (bytes or str); may be empty.
        n: number of positions, >= 1.
        kind: ``"permutation"`` (any n), ``"BitKey"`` (n in 8/16/32/64) or ``"BlockKey"``.
        shape: the kind's shape parameters bound into the derivation: ``(n,)`` by default;
            ``(channels, block_size)`` for a BlockKey; ``(n, rows, row)`` for one row of a
            per-sample BitKey.
    """
    where = "derive_permutation"
    _checks.secret(where, secret)
    n = _checks.integer(where, "n", n, minimum=1)
    full_shape = _check_shape(kind, n, shape, where)
    return fisher_yates(n, hkdf_stream(where, secret, label, context, kind, full_shape))


def derive_bytes(
    secret: bytes, label: Text, context: Text = b"", *, nbytes: int, kind: str, shape: Sequence[int]
) -> bytes:
    """The first ``nbytes`` of STREAM for (kind, shape, label, context): the raw material of the
    keys that are not permutations (``"NPKey"``, ``"FFXKey"``)."""
    where = "derive_bytes"
    if kind not in BYTE_KINDS:
        raise ValueError(f"{where}: kind must be one of {BYTE_KINDS}, got {kind!r}")
    nbytes = _checks.integer(where, "nbytes", nbytes, minimum=0)
    full_shape = tuple(_checks.integer(where, "shape entry", d, minimum=1) for d in shape)
    return hkdf_stream(where, secret, label, context, kind, full_shape).read(nbytes)
