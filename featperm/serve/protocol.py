"""The wire protocol of ``featperm serve``, shared by the server and :class:`~featperm.serve.Client`:
the per-request key, what each mode sends, and how a client opens it (also in ``docs/serving.md``).

The client sends ``X-Featperm-Key: base64(K)`` with K 32 random bytes, fresh per request. The
server answers with the features F, float32 (N, D), in the served mode:

* ``sealed``: ``seal(F, K, nonce)`` (featperm's sealed container, ChaCha20-Poly1305, empty aad);
  ``featperm.open_sealed(body, K)`` returns F.
* ``cascade``: ``seal(shuffle_bits(F, B), S, nonce)`` with B and S derived from K (below);
  ``open_shuffled(body, B, S)`` returns F.
* ``shufflebits``: the raw little-endian bytes of ``shuffle_bits(F, B)`` (float32 words), shape
  in ``X-Featperm-Shape``. Obfuscation, not encryption: it leaks every word's Hamming weight
  and the zeros, and ~10-20 known words reveal B.
* ``plain``: the raw little-endian float32 bytes of F, shape in ``X-Featperm-Shape``.

Derivation (featperm's HKDF-SHA256 construction, :mod:`featperm.keys.derivation`, with K as
the secret and an empty context)::

    B = BitKey.derive(K, label="featperm/serve/v1/bit-key", bits=32)
    S = HKDF-Expand(HKDF-Extract(salt=b"featperm/v1", IKM=K), INFO, 32)
    INFO = b"featperm/v1" || LP(b"AEADKey") || LP(U64BE(32)) || LP(b"featperm/serve/v1/seal-key")
           || LP(b"") || U32BE(0)

with ``LP(x) = U32BE(len(x)) || x``. Different labels (and kinds) make B and S independent
functions of K. Nonces are 12 random bytes per response (``secrets.token_bytes``): the server
keeps no state, so any replica can answer any request.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import sys
from typing import Tuple

import numpy as np
import torch

from featperm.crypto.aead import KEY_BYTES, NONCE_BYTES
from featperm.crypto.cascade import open_shuffled, seal_shuffled
from featperm.crypto.sealed import open_sealed, seal
from featperm.keys.bit_key import BitKey
from featperm.keys.derivation import hkdf_stream
from featperm.ops.shuffle_bits import shuffle_bits, unshuffle_bits

__all__ = [
    "MODES",
    "ENCRYPTED_MODES",
    "KEY_HEADER",
    "SHAPE_HEADER",
    "MODE_HEADER",
    "BIT_KEY_LABEL",
    "SEAL_KEY_LABEL",
    "SEAL_KEY_KIND",
    "parse_key",
    "format_key",
    "new_key",
    "cascade_keys",
    "request_bit_key",
    "request_seal_key",
    "encode_features",
    "decode_features",
    "format_shape",
    "parse_shape",
]

MODES = ("sealed", "cascade", "shufflebits", "plain")
ENCRYPTED_MODES = ("sealed", "cascade")  # confidentiality and integrity; the others have neither
KEY_HEADER = "X-Featperm-Key"
SHAPE_HEADER = "X-Featperm-Shape"
MODE_HEADER = "X-Featperm-Mode"
BIT_KEY_LABEL = "featperm/serve/v1/bit-key"
SEAL_KEY_LABEL = "featperm/serve/v1/seal-key"
SEAL_KEY_KIND = "AEADKey"


def parse_key(value: str | None) -> bytes:
    """The 32-byte key of an ``X-Featperm-Key`` header value (standard base64, padding required).

    Raises:
        ValueError: the header is missing, not base64, or does not hold exactly 32 bytes; the
            message names which (and never echoes the value).
    """
    if value is None or not value.strip():
        raise ValueError(f"missing {KEY_HEADER} header: send base64 of {KEY_BYTES} random bytes, fresh per request")
    try:
        key = base64.b64decode(value.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{KEY_HEADER} is not valid base64 (expected base64 of {KEY_BYTES} bytes)") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{KEY_HEADER} must hold exactly {KEY_BYTES} bytes, got {len(key)}")
    return key


def format_key(key: bytes) -> str:
    """The ``X-Featperm-Key`` header value of a 32-byte key (ValueError for another length)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        got = f"{len(key)} bytes" if isinstance(key, (bytes, bytearray)) else type(key).__name__
        raise ValueError(f"format_key: key must be {KEY_BYTES} bytes, got {got}")
    return base64.b64encode(bytes(key)).decode("ascii")


def new_key() -> bytes:
    """A fresh per-request key: 32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def request_bit_key(key: bytes) -> BitKey:
    """B of the module docstring: the 32-bit BitKey derived from the request key K (``cascade``
    and ``shufflebits`` modes)."""
    return BitKey.derive(key, BIT_KEY_LABEL, b"", bits=32)


def request_seal_key(key: bytes) -> bytes:
    """S of the module docstring: the 32-byte ChaCha20-Poly1305 key derived from the request key
    K (``cascade`` mode)."""
    return hkdf_stream("request_seal_key", key, SEAL_KEY_LABEL, b"", SEAL_KEY_KIND, (KEY_BYTES,)).read(KEY_BYTES)


def cascade_keys(key: bytes) -> Tuple[BitKey, bytes]:
    """(B, S): :func:`request_bit_key` and :func:`request_seal_key` of the request key K."""
    return request_bit_key(key), request_seal_key(key)


def _raw_bytes(features: torch.Tensor) -> bytes:
    if sys.byteorder != "little":  # pragma: no cover - torch runs on little-endian hosts only
        raise RuntimeError("the wire format is little-endian")
    return features.detach().contiguous().cpu().numpy().tobytes()


def encode_features(features: torch.Tensor, mode: str, key: bytes | None) -> bytes:
    """The response body for ``features`` (float32 (N, D), any device) in ``mode``.

    ``key`` is the request's 32-byte key (required in every mode but ``plain``). In the
    encrypted modes the plaintext is encrypted on the features' device; only ciphertext is copied
    to the host. A fresh random 96-bit nonce per response.
    """
    if mode == "plain":
        return _raw_bytes(features)
    if key is None:
        raise ValueError(f"encode_features: mode {mode!r} needs the request's key")
    if mode == "sealed":
        return bytes(seal(features, key, secrets.token_bytes(NONCE_BYTES)))
    if mode == "cascade":
        bit_key, seal_key = cascade_keys(key)
        return bytes(seal_shuffled(features, bit_key, seal_key, secrets.token_bytes(NONCE_BYTES)))
    if mode == "shufflebits":
        return _raw_bytes(shuffle_bits(features, request_bit_key(key)))
    raise ValueError(f"encode_features: mode must be one of {MODES}, got {mode!r}")


def format_shape(shape: Tuple[int, ...]) -> str:
    """``X-Featperm-Shape`` value: the dimensions joined by commas, e.g. ``"4,256"``."""
    return ",".join(str(int(d)) for d in shape)


def parse_shape(value: str | None) -> Tuple[int, ...]:
    """The shape of an ``X-Featperm-Shape`` value (ValueError when missing or malformed)."""
    if not value:
        raise ValueError(f"the response has no {SHAPE_HEADER} header")
    try:
        shape = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError(f"{SHAPE_HEADER} {value!r} is not a comma-separated list of integers") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{SHAPE_HEADER} {value!r} has a negative dimension")
    return shape


def decode_features(body: bytes, mode: str, key: bytes | None, shape: Tuple[int, ...] | None = None) -> torch.Tensor:
    """The client's inverse of :func:`encode_features`: float32 features (N, D) on the CPU.

    ``shape`` (from ``X-Featperm-Shape``) is needed for ``shufflebits`` and ``plain``, whose
    bodies are raw words; the sealed modes carry it in their authenticated header.

    Raises:
        featperm.errors.AuthenticationError: a sealed body was modified, or opened with the
            wrong key.
        ValueError: an unknown mode, a missing key, or a raw body whose length is not the shape's.
    """
    if mode == "sealed":
        if key is None:
            raise ValueError("decode_features: mode 'sealed' needs the request's key")
        return open_sealed(body, key)
    if mode not in MODES:
        raise ValueError(f"decode_features: mode must be one of {MODES}, got {mode!r}")
    if mode == "cascade":
        if key is None:
            raise ValueError("decode_features: mode 'cascade' needs the request's key")
        bit_key, seal_key = cascade_keys(key)
        return open_shuffled(body, bit_key, seal_key)
    if shape is None:
        raise ValueError(f"decode_features: mode {mode!r} needs the shape ({SHAPE_HEADER})")
    count = 1
    for d in shape:
        count *= d
    if len(body) != 4 * count:
        raise ValueError(f"decode_features: {len(body)} bytes do not hold float32 features of shape {shape}")
    words = torch.from_numpy(np.frombuffer(body, dtype="<f4").copy()).reshape(shape)
    if mode == "plain":
        return words
    if key is None:
        raise ValueError("decode_features: mode 'shufflebits' needs the request's key")
    return unshuffle_bits(words, request_bit_key(key))
