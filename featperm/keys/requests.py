"""Per-request keys: a fresh key per response, all derived from one master secret."""

from __future__ import annotations

import secrets
import struct
from typing import Tuple, Union

from featperm import _checks
from featperm.keys.bit_key import BIT_KEY_BITS, BitKey, check_bits
from featperm.keys.block_key import MAX_BLOCK_SIZE, BlockKey, check_geometry
from featperm.keys.derivation import Text
from featperm.keys.files import KIND_CODES

__all__ = ["RequestKeys", "MAX_REQUEST_SAMPLES", "MAX_REQUEST_POSITIONS"]

# Bounds on what a key id may ask for. Key ids travel in the clear, so a forged id must not make
# key_for run for days (4e9 BitKey rows) or exhaust memory (a BlockKey of 2^64 positions).
# Deriving the largest allowed key takes about a second here (an HKDF read per swap).
MAX_REQUEST_SAMPLES = 4096  # rows of a per-sample BitKey (one per sample of a batch)
MAX_REQUEST_POSITIONS = 1 << 16  # C*M*M of a BlockKey (C=2048, M=4 is 32768)


class RequestKeys:
    """A fresh key per request, all derived from one master secret.

    ``new_bit_key()`` / ``new_block_key()`` return ``(key_id, key)``: ``key_id`` is 25 public
    bytes (a random 128-bit nonce, then the key's kind and shape) that the server sends with
    the response; the holder of the same secret and label calls ``key_for(key_id)`` to get the
    same key. The key is ``derive_permutation(secret, label, context=key_id, ...)``.

    key_id layout: nonce (16 bytes) || kind (1 byte: 2 = BitKey, 3 = BlockKey) || U32BE(A) ||
    U32BE(B), with (A, B) = (bits, samples or 0) or (channels, block_size).

    Key ids are public and may be forged: ``key_for`` refuses at once an id asking for more than
    ``max_samples`` BitKey rows or ``max_positions`` BlockKey positions (defaults
    :data:`MAX_REQUEST_SAMPLES`, :data:`MAX_REQUEST_POSITIONS`), so that it costs at most about a
    second.

    Protects against: reuse of one key across responses. A known plaintext/ciphertext pair of
    one response reveals that response's key and nothing about other responses' keys or the
    master secret (HKDF is a PRF). Does not protect against: anything ShuffleBits itself leaks
    within one response (each word's Hamming weight, zeros, a key recovered from ~10-20 known
    words), nor tampering (a changed key_id just derives a different key). For confidentiality
    and integrity use featperm.crypto's ChaCha20-Poly1305, with the key_id as associated data.
    """

    __slots__ = ("_secret", "_label", "max_samples", "max_positions")
    _NONCE_BYTES = 16
    _ID = struct.Struct(">16sBII")

    def __init__(
        self,
        secret: bytes,
        label: Text,
        *,
        max_samples: int = MAX_REQUEST_SAMPLES,
        max_positions: int = MAX_REQUEST_POSITIONS,
    ):
        self._secret = _checks.secret("RequestKeys", secret)
        self._label = _checks.text("RequestKeys", "label", label)
        if not self._label:
            raise ValueError("RequestKeys: label must not be empty (name the keys' purpose)")
        self.max_samples = _checks.integer("RequestKeys", "max_samples", max_samples, minimum=1)
        self.max_positions = _checks.integer("RequestKeys", "max_positions", max_positions, minimum=1)

    def __repr__(self) -> str:
        return f"RequestKeys(label={self._label!r})"

    def __reduce__(self):
        raise TypeError(
            "RequestKeys holds a master secret and is not picklable; save the secret with featperm.keys.save_secret"
        )

    def _new_id(self, kind: str, a: int, b: int) -> bytes:
        return self._ID.pack(secrets.token_bytes(self._NONCE_BYTES), KIND_CODES[kind], a, b)

    def _check_rows(self, where: str, rows: int) -> None:
        if rows > self.max_samples:
            raise ValueError(f"{where}: a per-sample key of {rows} rows exceeds max_samples={self.max_samples}")

    def _check_positions(self, where: str, c: int, m: int) -> None:
        if c * m * m > self.max_positions:
            raise ValueError(
                f"{where}: a BlockKey of channels={c}, block_size={m} has {c * m * m} "
                f"positions, more than max_positions={self.max_positions}"
            )

    def new_bit_key(self, bits: int = 32, samples: Union[int, None] = None) -> Tuple[bytes, BitKey]:
        """``(key_id, BitKey)`` for one request; ``samples=N`` for one key per sample."""
        where = "RequestKeys.new_bit_key"
        bits = check_bits(where, bits)
        rows = 0 if samples is None else _checks.integer(where, "samples", samples, minimum=1)
        self._check_rows(where, rows)
        key_id = self._new_id("BitKey", bits, rows)
        return key_id, BitKey.derive(self._secret, self._label, key_id, bits=bits, samples=samples)

    def new_block_key(self, channels: int, block_size: int) -> Tuple[bytes, BlockKey]:
        """``(key_id, BlockKey)`` for one request."""
        where = "RequestKeys.new_block_key"
        c, m = check_geometry(where, channels, block_size)
        self._check_positions(where, c, m)
        key_id = self._new_id("BlockKey", c, m)
        return key_id, BlockKey.derive(self._secret, self._label, key_id, channels=c, block_size=m)

    def key_for(self, key_id: Union[bytes, str]) -> Union[BitKey, BlockKey]:
        """The key of ``key_id`` (bytes, or its hex string) as the server derived it."""
        where = "RequestKeys.key_for"
        if isinstance(key_id, str):
            try:
                key_id = bytes.fromhex(key_id)
            except ValueError:
                raise ValueError(f"{where}: key_id str must be hexadecimal") from None
        if not isinstance(key_id, (bytes, bytearray)):
            raise TypeError(f"{where}: key_id must be bytes or a hex str, got {type(key_id).__name__}")
        if len(key_id) != self._ID.size:
            raise ValueError(
                f"{where}: key_id must be {self._ID.size} bytes from new_bit_key/new_block_key, got {len(key_id)}"
            )
        key_id = bytes(key_id)
        _, kind_code, a, b = self._ID.unpack(key_id)
        if kind_code == KIND_CODES["BitKey"] and a in BIT_KEY_BITS:
            self._check_rows(where, b)
            return BitKey.derive(self._secret, self._label, key_id, bits=a, samples=b or None)
        if kind_code == KIND_CODES["BlockKey"] and 1 <= a and 1 <= b <= MAX_BLOCK_SIZE:
            self._check_positions(where, a, b)
            return BlockKey.derive(self._secret, self._label, key_id, channels=a, block_size=b)
        raise ValueError(f"{where}: key_id names no valid key (kind code {kind_code}, shape {a}, {b})")
