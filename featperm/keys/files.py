"""featperm key files: every kind of key, checksummed, written owner-only.

Layout (:func:`save_key` / :func:`load_key`), all integers big-endian::

    0   8  magic b"\\x89FPKEY\\r\\n"
    8   2  format version (1)
    10  1  kind: 1 = master secret, 2 = BitKey, 3 = BlockKey, 4 = NPKey, 5 = FFXKey
    11  1  reserved, 0
    12  4  A: secret length | BitKey bits n | channels C (BlockKey, NPKey, FFXKey)
    16  4  B: 0 | BitKey samples N, 0 for a single key | block size M (BlockKey, NPKey, FFXKey)
    20  4  payload length L
    24  L  payload: the secret | N*n (or n) uint8 f values, row-major | C*M*M uint32 v values |
           C*M*M uint8 mask values (0/1) | U32BE(rounds) || FFX secret
    24+L 32 SHA-256 of bytes 0 .. 24+L-1

Files are created with mode 0o600 (owner read/write only).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Optional, Union

import torch

from featperm import _checks
from featperm.errors import KeyFileError
from featperm.keys.bit_key import BIT_KEY_BITS, BitKey
from featperm.keys.block_key import BlockKey
from featperm.keys.transform_keys import FFXKey, NPKey

__all__ = ["save_key", "load_key", "save_secret", "load_secret", "FORMAT_VERSION", "KIND_CODES", "KeyFileError", "Key"]

Key = Union[bytes, BitKey, BlockKey, NPKey, FFXKey]

_MAGIC = b"\x89FPKEY\r\n"  # non-ASCII first byte and CRLF catch text-mode transfers
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHBBIII")
_CHECKSUM_BYTES = 32
KIND_CODES = {"secret": 1, "BitKey": 2, "BlockKey": 3, "NPKey": 4, "FFXKey": 5}
_KIND_NAMES = {code: name for name, code in KIND_CODES.items()}
_KEY_CLASSES = {BitKey: "BitKey", BlockKey: "BlockKey", NPKey: "NPKey", FFXKey: "FFXKey"}


def kind_of(key: object, where: str = "save_key") -> str:
    """'secret', 'BitKey', 'BlockKey', 'NPKey' or 'FFXKey'; TypeError for anything else."""
    if isinstance(key, (bytes, bytearray)):
        return "secret"
    for cls, name in _KEY_CLASSES.items():
        if isinstance(key, cls):
            return name
    raise TypeError(
        f"{where}: key must be a BitKey, BlockKey, NPKey, FFXKey or a master secret (bytes), got {type(key).__name__}"
    )


def _encode_key(key: Key) -> bytes:
    kind = kind_of(key)
    if isinstance(key, (bytes, bytearray)):
        payload = _checks.secret("save_key", key)
        a, b = len(payload), 0
    elif isinstance(key, BitKey):
        a, b = key.bits, (key.samples or 0)
        payload = bytes(key.permutation().reshape(-1).tolist())  # bit positions < 64 fit a byte
    elif isinstance(key, BlockKey):
        v = key.permutation().reshape(-1).tolist()
        a, b = key.channels, key.block_size
        payload = struct.pack(f">{len(v)}I", *v)
    elif isinstance(key, NPKey):
        a, b = key.channels, key.block_size
        payload = bytes(key.mask().to(torch.uint8).tolist())
    else:
        a, b = key.channels, key.block_size
        payload = struct.pack(">I", key.rounds) + key._secret
    header = _HEADER.pack(_MAGIC, FORMAT_VERSION, KIND_CODES[kind], 0, a, b, len(payload))
    body = header + payload
    return body + hashlib.sha256(body).digest()


def _normalise_kind(expected_kind: object) -> Optional[str]:
    if expected_kind is None:
        return None
    if isinstance(expected_kind, type):
        if issubclass(expected_kind, (bytes, bytearray)):
            return "secret"
        expected_kind = expected_kind.__name__
    if not isinstance(expected_kind, str):
        raise TypeError(
            f"load_key: expected_kind must be None, a kind name or a key class, got {type(expected_kind).__name__}"
        )
    if expected_kind not in KIND_CODES:
        raise ValueError(f"load_key: expected_kind must be None or one of {tuple(KIND_CODES)}, got {expected_kind!r}")
    return str(expected_kind)


def _decode_key(data: bytes, source: str, expected_kind: Optional[str]) -> Key:
    if len(data) < len(_MAGIC) or data[: len(_MAGIC)] != _MAGIC:
        raise KeyFileError(f"{source}: not a featperm key file (bad magic header)")
    if len(data) < _HEADER.size + _CHECKSUM_BYTES:
        raise KeyFileError(
            f"{source}: truncated key file ({len(data)} bytes, a header and "
            f"checksum alone take {_HEADER.size + _CHECKSUM_BYTES})"
        )
    _, version, kind_code, reserved, a, b, length = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise KeyFileError(
            f"{source}: unsupported key file format version {version} (this featperm reads version {FORMAT_VERSION})"
        )
    expected_size = _HEADER.size + length + _CHECKSUM_BYTES
    if len(data) < expected_size:
        raise KeyFileError(f"{source}: truncated key file ({len(data)} bytes, its header says {expected_size})")
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
    payload = body[_HEADER.size :]

    def mismatch(what: str) -> KeyFileError:
        return KeyFileError(f"{source}: {kind} header ({what}) does not match its {length}-byte payload")

    try:
        if kind == "secret":
            if a != length or b != 0:
                raise mismatch(f"length {a}, {b}")
            if length < _checks.MIN_SECRET_BYTES:
                raise KeyFileError(f"{source}: secret is {length} bytes, at least {_checks.MIN_SECRET_BYTES} needed")
            return bytes(payload)
        if kind == "BitKey":
            rows = b or 1
            if a not in BIT_KEY_BITS or length != rows * a:
                raise mismatch(f"bits={a}, samples={b}")
            f = list(payload)
            return BitKey(f if b == 0 else [f[r * a : (r + 1) * a] for r in range(rows)])
        if a < 1 or b < 1:
            raise mismatch(f"channels={a}, block_size={b}")
        n = a * b * b
        if kind == "BlockKey":
            if length != 4 * n:
                raise mismatch(f"channels={a}, block_size={b}")
            return BlockKey(torch.tensor(struct.unpack(f">{n}I", payload), dtype=torch.int64), channels=a, block_size=b)
        if kind == "NPKey":
            if length != n:
                raise mismatch(f"channels={a}, block_size={b}")
            return NPKey(torch.tensor(list(payload), dtype=torch.uint8), channels=a, block_size=b)
        if length < 4 + _checks.MIN_SECRET_BYTES:
            raise mismatch(f"channels={a}, block_size={b}")
        (rounds,) = struct.unpack_from(">I", payload)
        return FFXKey(bytes(payload[4:]), channels=a, block_size=b, rounds=rounds)
    except (TypeError, ValueError) as err:
        if isinstance(err, KeyFileError):
            raise
        raise KeyFileError(f"{source}: invalid {kind} payload ({err})") from None


def save_key(path: Union[str, "os.PathLike[str]"], key: Key, *, overwrite: bool = False) -> None:
    """Write a key (BitKey, BlockKey, NPKey, FFXKey) or a master secret (bytes) to ``path``.

    The file is created with mode 0o600; with ``overwrite=True`` an existing file is truncated
    and its mode reset to 0o600, otherwise an existing file is an error (FileExistsError).
    Layout: ``docs/formats.md``. TypeError for anything that is not a key or ``bytes``,
    ValueError for a secret shorter than 16 bytes, OSError from the file system (a symbolic link
    at ``path`` is refused: ``O_NOFOLLOW``).
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
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key(path: Union[str, "os.PathLike[str]"], expected_kind: object = None) -> Key:
    """Read a key written by :func:`save_key`.

    ``expected_kind`` ('secret', 'BitKey', 'BlockKey', 'NPKey', 'FFXKey', or the class) makes a
    key of another kind an error. Returns ``bytes`` for a master secret, else the key object.
    Raises :class:`KeyFileError` (a ValueError naming the file) for a file that is not a valid
    featperm key file (bad magic, truncated, trailing data, checksum mismatch, unsupported
    version, unknown kind, a header that does not fit its payload) or holds another kind;
    FileNotFoundError/OSError from the file system; ValueError for an unknown ``expected_kind``."""
    kind = _normalise_kind(expected_kind)
    with open(path, "rb") as fh:
        data = fh.read(_HEADER.size)
        if len(data) == _HEADER.size and data.startswith(_MAGIC):
            # read what the header announces, plus one byte to notice trailing data
            data += fh.read(_HEADER.unpack(data)[-1] + _CHECKSUM_BYTES + 1)
    return _decode_key(data, f"load_key({os.fspath(path)!r})", kind)


def save_secret(path: Union[str, "os.PathLike[str]"], secret: bytes, *, overwrite: bool = False) -> None:
    """:func:`save_key` for a master secret (checked to be bytes of at least 16 bytes)."""
    save_key(path, _checks.secret("save_secret", secret), overwrite=overwrite)


def load_secret(path: Union[str, "os.PathLike[str]"]) -> bytes:
    """:func:`load_key` that accepts only a master secret."""
    key = load_key(path, expected_kind="secret")
    assert isinstance(key, bytes)
    return key
