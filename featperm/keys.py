"""Key schedule for featperm: master secrets, derived permutations, key files, per-request keys.

Master secret
    256 bits from the operating system's CSPRNG (:func:`generate_secret`). Every function that
    takes a secret accepts ``bytes`` (or ``bytearray``) of at least 16 bytes (128 bits) and
    refuses anything shorter, and refuses ``str`` (a password is not a key).

Derivation (version ``featperm/v1``)
    A permutation of ``n`` positions is derived from (secret, kind, shape, label, context) with
    HKDF-SHA256 (RFC 5869) driving a Fisher-Yates shuffle::

        LP(x)      = U32BE(len(x)) || x                       # length prefix: no ambiguity
        SHAPE      = U64BE(d_1) || ... || U64BE(d_k)          # the kind's shape parameters
        INFO(j)    = b"featperm/v1" || LP(kind) || LP(SHAPE) || LP(label) || LP(context) || U32BE(j)
        PRK        = HKDF-Extract(salt=b"featperm/v1", IKM=secret)
        STREAM     = HKDF-Expand(PRK, INFO(0), 8160) || HKDF-Expand(PRK, INFO(1), 8160) || ...

    ``kind`` is ``b"permutation"`` (any n >= 1, SHAPE = (n)), ``b"BitKey"`` (n in 8/16/32/64;
    SHAPE = (n) for a single key, (n, N, r) for row r of a per-sample key of N rows) or
    ``b"BlockKey"`` (SHAPE = (C, M), n = C*M*M). ``label`` (the purpose, e.g. b"features") and
    ``context`` (e.g. a request id or layer name) are bytes, or str encoded as UTF-8.
    8160 = 255 * 32 bytes is HKDF-Expand's maximum output; a chunk is consumed lazily (its
    prefix does not depend on the requested length), so a 32-bit key costs one HKDF-Extract
    and one or two HKDF-Expand blocks.

    Fisher-Yates, starting from the identity ``p = [0, 1, ..., n-1]``: for ``i = n-1`` down to
    ``1``, read ``b = ceil(bitlen(i) / 8)`` bytes of STREAM as a big-endian integer ``v``;
    if ``v >= 256**b - (256**b mod (i+1))`` reject it and read again, else ``j = v mod (i+1)``
    and swap ``p[i]``, ``p[j]``. The rejection removes modulo bias, so ``p`` is uniform given a
    uniform STREAM. ``p[i]`` is the key's ``f(i)`` (BitKey) or ``v[i]`` (BlockKey).

    No numpy, torch or ``random`` generator is used anywhere on a key path.

Key files (:func:`save_key` / :func:`load_key`), all integers big-endian::

    0   8  magic b"\\x89FPKEY\\r\\n"
    8   2  format version (1)
    10  1  kind: 1 = master secret, 2 = BitKey, 3 = BlockKey
    11  1  reserved, 0
    12  4  A: secret length in bytes | BitKey bits n       | BlockKey channels C
    16  4  B: 0                      | BitKey samples N, 0 for a single key | BlockKey block size M
    20  4  payload length L
    24  L  payload: the secret | N*n (or n) uint8 f values, row-major | C*M*M uint32 v values
    24+L 32 SHA-256 of bytes 0 .. 24+L-1

    Files are created with mode 0o600 (owner read/write only).

Per-request keys (:class:`RequestKeys`)
    A fresh key per response from one master secret, re-derivable from a public key id.

What ShuffleBits does not protect
    A fixed bit permutation keeps every word's Hamming weight and maps 0 to 0, and a few known
    plaintext words reveal the key (:func:`recover_bit_key`). Per-request keys limit what one
    known plaintext reveals to that response; for confidentiality use featperm.crypto.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import os
import secrets
import struct
from typing import List, Optional, Sequence, Tuple, Union

__all__ = [
    "SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "KeyFileError",
    "generate_secret",
    "derive_permutation",
    "derive_bit_key",
    "derive_block_key",
    "save_key",
    "load_key",
    "save_secret",
    "load_secret",
    "RequestKeys",
    "bit_key_candidates",
    "recover_bit_key",
    "consistent_bit_key",
    "words_to_recover",
]

SECRET_BYTES = 32       # 256-bit master secrets
MIN_SECRET_BYTES = 16   # 128 bits: the least any API accepts

VERSION_TAG = b"featperm/v1"
_HKDF_SALT = VERSION_TAG
_HKDF_HASH = "sha256"
_HKDF_HASH_LEN = 32
_HKDF_MAX_BLOCKS = 255  # RFC 5869: L <= 255 * HashLen
_KINDS = ("permutation", "BitKey", "BlockKey")
_BIT_KEY_BITS = (8, 16, 32, 64)

Text = Union[bytes, bytearray, str]


# -- inputs ---------------------------------------------------------------------------------------

def _check_secret(secret: object, where: str) -> bytes:
    if isinstance(secret, str):
        raise TypeError(f"{where}: secret must be bytes from a CSPRNG (e.g. generate_secret()), "
                        "not str; a password is not a key")
    if not isinstance(secret, (bytes, bytearray)):
        raise TypeError(f"{where}: secret must be bytes, got {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{where}: secret must be at least {MIN_SECRET_BYTES} bytes "
                         f"({8 * MIN_SECRET_BYTES} bits), got {len(secret)} bytes")
    return bytes(secret)


def _as_bytes(value: object, name: str, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{where}: {name} must be bytes or str, got {type(value).__name__}")


def _count(value: object, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = operator.index(value)  # accepts numpy / torch integer scalars
        except TypeError:
            raise TypeError(f"{where}: {name} must be an integer, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return int(value)


def generate_secret(nbytes: int = SECRET_BYTES) -> bytes:
    """A fresh master secret from the operating system's CSPRNG (256 bits by default)."""
    nbytes = _count(nbytes, "nbytes", "generate_secret", MIN_SECRET_BYTES)
    return secrets.token_bytes(nbytes)


# -- HKDF-SHA256 (RFC 5869) -------------------------------------------------------------------------

def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, _HKDF_HASH)


class _HkdfStream:
    """STREAM of the module docstring: HKDF-Expand chunks INFO(0), INFO(1), ... read lazily."""

    __slots__ = ("_prk", "_info_prefix", "_chunk", "_block", "_previous", "_buffer", "_pos")

    def __init__(self, prk: bytes, info_prefix: bytes):
        self._prk = prk
        self._info_prefix = info_prefix
        self._chunk = 0
        self._block = 0          # HKDF-Expand blocks T(1..255) produced in this chunk
        self._previous = b""     # T(block)
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
        while len(self._buffer) - self._pos < nbytes:
            self._buffer = self._buffer[self._pos:] + self._next_block()
            self._pos = 0
        out = self._buffer[self._pos:self._pos + nbytes]
        self._pos += nbytes
        return out


def _lp(data: bytes) -> bytes:
    if len(data) >= 1 << 32:
        raise ValueError("derive: label and context must be shorter than 2**32 bytes")
    return struct.pack(">I", len(data)) + data


def _info_prefix(kind: str, shape: Tuple[int, ...], label: bytes, context: bytes) -> bytes:
    shape_bytes = b"".join(struct.pack(">Q", d) for d in shape)
    return VERSION_TAG + _lp(kind.encode("ascii")) + _lp(shape_bytes) + _lp(label) + _lp(context)


def _fisher_yates(n: int, stream: _HkdfStream) -> List[int]:
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
    if kind not in _KINDS:
        raise ValueError(f"{where}: kind must be one of {_KINDS}, got {kind!r}")
    if kind == "BlockKey":
        if shape is None or len(shape) != 2:
            raise ValueError(f"{where}: kind='BlockKey' needs shape=(channels, block_size)")
        c = _count(shape[0], "channels", where)
        m = _count(shape[1], "block_size", where)
        if c * m * m != n:
            raise ValueError(f"{where}: a BlockKey with channels={c}, block_size={m} permutes "
                             f"{c * m * m} positions, but n={n}")
        return (c, m)
    if kind == "BitKey" and n not in _BIT_KEY_BITS:
        raise ValueError(f"{where}: kind='BitKey' needs n in {_BIT_KEY_BITS}, got {n}")
    if shape is None:
        return (n,)
    shape = tuple(_count(d, "shape entry", where, 0) for d in shape)
    if shape == (n,):
        return shape
    if kind == "BitKey" and len(shape) == 3 and shape[0] == n and 0 <= shape[2] < shape[1]:
        return shape  # (n, N, r): row r of a per-sample key of N rows
    expected = "(n,) or (n, rows, row) with 0 <= row < rows" if kind == "BitKey" else "(n,)"
    raise ValueError(f"{where}: shape for kind={kind!r} must be {expected}, got {shape}")


def derive_permutation(secret: bytes, label: Text, context: Text = b"", *, n: int,
                       kind: str = "permutation",
                       shape: Optional[Sequence[int]] = None) -> List[int]:
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
    secret = _check_secret(secret, where)
    label = _as_bytes(label, "label", where)
    if not label:
        raise ValueError(f"{where}: label must not be empty (name the key's purpose)")
    context = _as_bytes(context, "context", where)
    n = _count(n, "n", where)
    shape = _check_shape(kind, n, shape, where)
    prk = _hkdf_extract(_HKDF_SALT, secret)
    return _fisher_yates(n, _HkdfStream(prk, _info_prefix(kind, shape, label, context)))


def derive_bit_key(secret: bytes, label: Text, context: Text = b"", bits: int = 32,
                   samples: Optional[int] = None):
    """A :class:`~featperm.bits.BitKey` derived from ``secret`` (``BitKey.derive``).

    ``samples=N`` derives a per-sample key of N rows; row r is derived with shape (n, N, r)."""
    from featperm.bits import BitKey

    where = "BitKey.derive"
    if bits not in _BIT_KEY_BITS:
        raise ValueError(f"{where}: bits must be one of {_BIT_KEY_BITS}, got {bits}")
    if samples is None:
        return BitKey(derive_permutation(secret, label, context, n=bits, kind="BitKey"))
    rows = _count(samples, "samples", where)
    return BitKey([derive_permutation(secret, label, context, n=bits, kind="BitKey",
                                      shape=(bits, rows, r)) for r in range(rows)])


def derive_block_key(secret: bytes, label: Text, context: Text = b"", *, channels: int,
                     block_size: int):
    """A :class:`~featperm.block.BlockKey` over ``channels * block_size**2`` positions derived
    from ``secret`` (``BlockKey.derive``)."""
    import torch
    from featperm.block import BlockKey

    c = _count(channels, "channels", "derive_block_key")
    m = _count(block_size, "block_size", "derive_block_key")
    v = derive_permutation(secret, label, context, n=c * m * m, kind="BlockKey", shape=(c, m))
    return BlockKey(torch.tensor(v, dtype=torch.int64), channels=c, block_size=m)


# -- key files ----------------------------------------------------------------------------------

class KeyFileError(ValueError):
    """A key file is not a featperm key file, is corrupted or truncated, has an unsupported
    format version, or holds a different kind of key than expected."""


_MAGIC = b"\x89FPKEY\r\n"   # non-ASCII first byte and CRLF catch text-mode transfers
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHBBIII")
_CHECKSUM_BYTES = 32
_KIND_CODES = {"secret": 1, "BitKey": 2, "BlockKey": 3}
_KIND_NAMES = {code: name for name, code in _KIND_CODES.items()}


def _kind_of(key: object) -> str:
    if isinstance(key, (bytes, bytearray)):
        return "secret"
    from featperm.bits import BitKey
    if isinstance(key, BitKey):
        return "BitKey"
    if type(key).__name__ == "BlockKey":
        from featperm.block import BlockKey
        if isinstance(key, BlockKey):
            return "BlockKey"
    raise TypeError(f"save_key: key must be a BitKey, a BlockKey or a master secret (bytes), "
                    f"got {type(key).__name__}")


def _encode_key(key: object) -> bytes:
    kind = _kind_of(key)
    if kind == "secret":
        payload = _check_secret(key, "save_key")
        a, b = len(payload), 0
    elif kind == "BitKey":
        f = key.permutation()
        a, b = key.bits, (key.samples or 0)
        payload = bytes(f.reshape(-1).tolist())  # bit positions < 64 fit a byte
    else:
        v = key.permutation().reshape(-1).tolist()
        a, b = int(key.channels), int(key.block_size)
        if len(v) != a * b * b:
            raise ValueError(f"save_key: BlockKey permutation has {len(v)} entries, expected "
                             f"channels * block_size**2 = {a * b * b}")
        payload = struct.pack(f">{len(v)}I", *v)
    header = _HEADER.pack(_MAGIC, FORMAT_VERSION, _KIND_CODES[kind], 0, a, b, len(payload))
    body = header + payload
    return body + hashlib.sha256(body).digest()


def _normalise_kind(expected_kind: object) -> Optional[str]:
    if expected_kind is None:
        return None
    if isinstance(expected_kind, type):
        if issubclass(expected_kind, (bytes, bytearray)):
            return "secret"
        expected_kind = expected_kind.__name__
    if expected_kind not in _KIND_CODES:
        raise ValueError(f"load_key: expected_kind must be None, 'secret', 'BitKey' or 'BlockKey', "
                         f"got {expected_kind!r}")
    return expected_kind


def _decode_key(data: bytes, source: str, expected_kind: Optional[str]):
    if len(data) < len(_MAGIC) or data[:len(_MAGIC)] != _MAGIC:
        raise KeyFileError(f"{source}: not a featperm key file (bad magic header)")
    if len(data) < _HEADER.size + _CHECKSUM_BYTES:
        raise KeyFileError(f"{source}: truncated key file ({len(data)} bytes, a header and "
                           f"checksum alone take {_HEADER.size + _CHECKSUM_BYTES})")
    _, version, kind_code, reserved, a, b, length = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise KeyFileError(f"{source}: unsupported key file format version {version} "
                           f"(this featperm reads version {FORMAT_VERSION})")
    expected_size = _HEADER.size + length + _CHECKSUM_BYTES
    if len(data) < expected_size:
        raise KeyFileError(f"{source}: truncated key file ({len(data)} bytes, its header says "
                           f"{expected_size})")
    if len(data) > expected_size:
        raise KeyFileError(f"{source}: corrupted key file (data after the checksum)")
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if not hmac.compare_digest(hashlib.sha256(body).digest(), checksum):
        raise KeyFileError(f"{source}: corrupted key file (SHA-256 checksum mismatch)")
    kind = _KIND_NAMES.get(kind_code)
    if kind is None or reserved != 0:
        raise KeyFileError(f"{source}: unknown key kind code {kind_code} (reserved byte {reserved})")
    if expected_kind is not None and kind != expected_kind:
        raise KeyFileError(f"{source}: holds a {kind}, expected a {expected_kind}")
    payload = body[_HEADER.size:]

    if kind == "secret":
        if a != length or b != 0:
            raise KeyFileError(f"{source}: secret header (length {a}, {b}) does not match its "
                               f"{length}-byte payload")
        if length < MIN_SECRET_BYTES:
            raise KeyFileError(f"{source}: secret is {length} bytes, at least {MIN_SECRET_BYTES} needed")
        return bytes(payload)

    if kind == "BitKey":
        from featperm.bits import BitKey
        rows = b or 1
        if a not in _BIT_KEY_BITS or length != rows * a:
            raise KeyFileError(f"{source}: BitKey header (bits={a}, samples={b}) does not match its "
                               f"{length}-byte payload")
        f = list(payload)
        perm = f if b == 0 else [f[r * a:(r + 1) * a] for r in range(rows)]
        try:
            return BitKey(perm)
        except ValueError as err:
            raise KeyFileError(f"{source}: invalid BitKey payload ({err})") from None

    import torch
    from featperm.block import BlockKey
    if a < 1 or b < 1 or length != 4 * a * b * b:
        raise KeyFileError(f"{source}: BlockKey header (channels={a}, block_size={b}) does not "
                           f"match its {length}-byte payload")
    v = struct.unpack(f">{a * b * b}I", payload)
    if sorted(v) != list(range(len(v))):
        raise KeyFileError(f"{source}: invalid BlockKey payload (not a permutation)")
    return BlockKey(torch.tensor(v, dtype=torch.int64), channels=a, block_size=b)


def save_key(path: Union[str, os.PathLike], key, *, overwrite: bool = False) -> None:
    """Write a BitKey (single or per-sample), a BlockKey or a master secret (bytes) to ``path``.

    The file is created with mode 0o600; with ``overwrite=True`` an existing file is truncated
    and its mode reset to 0o600, otherwise an existing file is an error (FileExistsError).
    """
    data = _encode_key(key)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_TRUNC
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key(path: Union[str, os.PathLike], expected_kind: object = None):
    """Read a key written by :func:`save_key`: a BitKey, a BlockKey or a secret (bytes).

    ``expected_kind`` ('secret', 'BitKey', 'BlockKey', or the class) makes a key of another kind
    an error. Raises :class:`KeyFileError` for a file that is not a valid featperm key file."""
    expected_kind = _normalise_kind(expected_kind)
    with open(path, "rb") as fh:
        data = fh.read(_HEADER.size)
        if len(data) == _HEADER.size and data.startswith(_MAGIC):
            # read what the header announces, plus one byte to notice trailing data
            data += fh.read(_HEADER.unpack(data)[-1] + _CHECKSUM_BYTES + 1)
    return _decode_key(data, f"load_key({os.fspath(path)!r})", expected_kind)


def save_secret(path: Union[str, os.PathLike], secret: bytes, *, overwrite: bool = False) -> None:
    """:func:`save_key` for a master secret (checked to be bytes of at least 16 bytes)."""
    save_key(path, _check_secret(secret, "save_secret"), overwrite=overwrite)


def load_secret(path: Union[str, os.PathLike]) -> bytes:
    """:func:`load_key` that accepts only a master secret."""
    return load_key(path, expected_kind="secret")


# -- per-request keys ------------------------------------------------------------------------------

class RequestKeys:
    """A fresh key per request, all derived from one master secret.

    ``new_bit_key()`` / ``new_block_key()`` return ``(key_id, key)``: ``key_id`` is 25 public
    bytes (a random 128-bit nonce, then the key's kind and shape) that the server sends with
    the response; the holder of the same secret and label calls ``key_for(key_id)`` to get the
    same key. The key is ``derive_permutation(secret, label, context=key_id, ...)``.

    key_id layout: nonce (16 bytes) || kind (1 byte: 2 = BitKey, 3 = BlockKey) || U32BE(A) ||
    U32BE(B), with (A, B) = (bits, samples or 0) or (channels, block_size).

    Protects against: reuse of one key across responses. A known plaintext/ciphertext pair of
    one response reveals that response's key and nothing about other responses' keys or the
    master secret (HKDF is a PRF). Does not protect against: anything ShuffleBits itself leaks
    within one response (each word's Hamming weight, zeros, a key recovered from ~10-20 known
    words), nor tampering (a changed key_id just derives a different key). For confidentiality
    and integrity use featperm.crypto's ChaCha20-Poly1305, with the key_id as associated data.
    """

    __slots__ = ("_secret", "_label")
    _NONCE_BYTES = 16
    _ID = struct.Struct(">16sBII")

    def __init__(self, secret: bytes, label: Text):
        self._secret = _check_secret(secret, "RequestKeys")
        self._label = _as_bytes(label, "label", "RequestKeys")
        if not self._label:
            raise ValueError("RequestKeys: label must not be empty (name the keys' purpose)")

    def __repr__(self) -> str:
        return f"RequestKeys(label={self._label!r})"

    def __reduce__(self):
        raise TypeError("RequestKeys holds a master secret and is not picklable; "
                        "save the secret with featperm.keys.save_secret")

    def _new_id(self, kind: str, a: int, b: int) -> bytes:
        return self._ID.pack(secrets.token_bytes(self._NONCE_BYTES), _KIND_CODES[kind], a, b)

    def new_bit_key(self, bits: int = 32, samples: Optional[int] = None):
        """``(key_id, BitKey)`` for one request; ``samples=N`` for one key per sample."""
        if bits not in _BIT_KEY_BITS:
            raise ValueError(f"RequestKeys.new_bit_key: bits must be one of {_BIT_KEY_BITS}, got {bits}")
        rows = 0 if samples is None else _count(samples, "samples", "RequestKeys.new_bit_key")
        key_id = self._new_id("BitKey", bits, rows)
        return key_id, self.key_for(key_id)

    def new_block_key(self, channels: int, block_size: int):
        """``(key_id, BlockKey)`` for one request."""
        c = _count(channels, "channels", "RequestKeys.new_block_key")
        m = _count(block_size, "block_size", "RequestKeys.new_block_key")
        key_id = self._new_id("BlockKey", c, m)
        return key_id, self.key_for(key_id)

    def key_for(self, key_id: Union[bytes, str]):
        """The key of ``key_id`` (bytes, or its hex string) as the server derived it."""
        if isinstance(key_id, str):
            try:
                key_id = bytes.fromhex(key_id)
            except ValueError:
                raise ValueError("RequestKeys.key_for: key_id str must be hexadecimal") from None
        if not isinstance(key_id, (bytes, bytearray)) or len(key_id) != self._ID.size:
            raise ValueError(f"RequestKeys.key_for: key_id must be {self._ID.size} bytes "
                             "from new_bit_key/new_block_key")
        key_id = bytes(key_id)
        _, kind_code, a, b = self._ID.unpack(key_id)
        kind = _KIND_NAMES.get(kind_code)
        if kind == "BitKey" and a in _BIT_KEY_BITS:
            return derive_bit_key(self._secret, self._label, key_id, bits=a, samples=b or None)
        if kind == "BlockKey" and a >= 1 and b >= 1:
            return derive_block_key(self._secret, self._label, key_id, channels=a, block_size=b)
        raise ValueError(f"RequestKeys.key_for: key_id names no valid key (kind code {kind_code}, "
                         f"shape {a}, {b})")


# -- known-plaintext analysis of ShuffleBits ---------------------------------------------------------

def _unsigned_words(x) -> Tuple[List[int], int]:
    from featperm.bits import integer_view_dtype, word_bits

    bits = word_bits(x.dtype)
    mask = (1 << bits) - 1
    words = x.detach().reshape(-1).view(integer_view_dtype(x.dtype)).tolist()
    return [w & mask for w in words], bits


def _candidate_masks(plaintexts, ciphertexts):
    xs, bits = _unsigned_words(plaintexts)
    ys, y_bits = _unsigned_words(ciphertexts)
    if bits != y_bits or len(xs) != len(ys):
        raise ValueError(f"plaintexts ({len(xs)} words of {bits} bits) and ciphertexts "
                         f"({len(ys)} words of {y_bits} bits) must have the same number and width")
    full = (1 << bits) - 1
    masks = [full] * bits  # masks[i] bit j set: f(i) = j is still possible
    for count, (x, y) in enumerate(zip(xs, ys), start=1):
        for i in range(bits):
            # output bit f(i) equals input bit i: keep the output positions that agree
            masks[i] &= y if (x >> i) & 1 else ~y & full
        if not all(masks):
            raise ValueError("the plaintext/ciphertext pairs are not consistent with any bit "
                             f"permutation (word {count - 1})")
        yield count, masks


def bit_key_candidates(plaintexts, ciphertexts) -> List[List[int]]:
    """For each input bit i, the output bit positions f(i) consistent with the known pairs.

    ``plaintexts`` and ``ciphertexts`` are tensors of the same number of words (``ciphertexts =
    shuffle_bits(plaintexts, key)``, float or integer view). Bits whose columns agree in every
    known word cannot be told apart, so they keep the same candidates."""
    masks = None
    for _, masks in _candidate_masks(plaintexts, ciphertexts):
        pass
    if masks is None:
        from featperm.bits import word_bits
        masks = [(1 << word_bits(plaintexts.dtype)) - 1] * word_bits(plaintexts.dtype)
    return [[j for j in range(len(masks)) if (m >> j) & 1] for m in masks]


def words_to_recover(plaintexts, ciphertexts) -> Optional[int]:
    """How many of the known words (taken in order) pin the key down uniquely; None if all of
    them do not."""
    for count, masks in _candidate_masks(plaintexts, ciphertexts):
        if all(m & (m - 1) == 0 for m in masks):  # every candidate set is a single position
            return count
    return None


def recover_bit_key(plaintexts, ciphertexts):
    """Known-plaintext attack on ShuffleBits: the BitKey with ``shuffle_bits(plaintexts, key) ==
    ciphertexts``, or None if the known words leave more than one candidate."""
    from featperm.bits import BitKey

    candidates = bit_key_candidates(plaintexts, ciphertexts)
    if any(len(c) != 1 for c in candidates):
        return None
    return BitKey([c[0] for c in candidates])


def consistent_bit_key(plaintexts, ciphertexts):
    """A BitKey consistent with every known pair, even when they leave several candidates.

    Input bits whose columns agree in every known word have the same candidate set (the output
    positions with that column); they are assigned to it in order. Such a key decrypts every
    word in which those bits agree too, so on real features it is usually as good as the key."""
    from featperm.bits import BitKey

    candidates = bit_key_candidates(plaintexts, ciphertexts)
    taken = {}
    f = []
    for c in candidates:
        group = tuple(c)
        f.append(c[taken.get(group, 0)])
        taken[group] = taken.get(group, 0) + 1
    return BitKey(f)
