"""RFC 8439 AEAD_CHACHA20_POLY1305 on uint8 tensors, computed where the tensor is.

The ChaCha20 keystream XOR runs on the data's device (a CUDA kernel on the GPU, AVX-512 or
portable C++ on the CPU); Poly1305 runs over the ciphertext (never the plaintext) where the
ciphertext is. Output is plain RFC 8439: any standard library decrypts it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Optional, Tuple, Union

import torch

from featperm import _checks
from featperm.errors import AuthenticationError
from featperm.ops import _library  # noqa: F401  (loads the compiled ops)

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "MAX_MESSAGE_BYTES",
    "generate_key",
    "aead_encrypt",
    "aead_decrypt",
    "key_tensor",
    "nonce_tensor",
    "BytesLike",
]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# The AEAD encrypts with block counters 1 .. 2^32-1 (block 0 makes the Poly1305 key).
MAX_MESSAGE_BYTES = (2**32 - 1) * 64

BytesLike = Union[bytes, bytearray, memoryview, torch.Tensor]


def generate_key() -> bytes:
    """A fresh 32-byte key (``bytes``) from the operating system's CSPRNG (``secrets``)."""
    return secrets.token_bytes(KEY_BYTES)


# -- argument handling ---------------------------------------------------------------------------


def host_bytes_tensor(
    value: BytesLike, name: str, length: Optional[int] = None, where: str = "featperm.crypto"
) -> torch.Tensor:
    """A CPU uint8 tensor of the bytes of ``value`` (bytes-like or uint8 tensor), length-checked."""
    if isinstance(value, torch.Tensor):
        if value.dtype != torch.uint8:
            raise TypeError(f"{where}: {name} must be bytes or a uint8 tensor, got a {value.dtype} tensor")
        t = value.detach().reshape(-1)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytearray(value)  # a private, writable copy for torch.frombuffer
        t = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    else:
        raise TypeError(f"{where}: {name} must be bytes-like or a uint8 tensor, got {type(value).__name__}")
    if length is not None and t.numel() != length:
        raise ValueError(f"{where}: {name} must be exactly {length} bytes, got {t.numel()}")
    return t


def as_bytes(value: BytesLike, name: str, where: str = "featperm.crypto") -> bytes:
    """The bytes of a bytes-like value or uint8 tensor (TypeError for anything else, ints included)."""
    if isinstance(value, torch.Tensor):
        return host_bytes_tensor(value.cpu(), name, where=where).numpy().tobytes()
    return _checks.byte_string(where, name, value)


def key_tensor(key: BytesLike, device: torch.device, where: str = "featperm.crypto") -> torch.Tensor:
    """The key as the ops take it: a host tensor (read on the host), or a uint8 tensor already on
    the data's device (read by the kernel: no host synchronisation)."""
    if isinstance(key, torch.Tensor) and key.device == device and key.device.type != "cpu":
        if key.dtype != torch.uint8:
            raise TypeError(f"{where}: key must be a uint8 tensor, got {key.dtype}")
        if key.numel() != KEY_BYTES:
            raise ValueError(f"{where}: key must be exactly {KEY_BYTES} bytes, got {key.numel()}")
        return key.detach().reshape(-1)
    return host_bytes_tensor(key if not isinstance(key, torch.Tensor) else key.cpu(), "key", KEY_BYTES, where)


def nonce_tensor(nonce: BytesLike, where: str = "featperm.crypto") -> torch.Tensor:
    """The nonce as a 12-byte host tensor."""
    return host_bytes_tensor(nonce if not isinstance(nonce, torch.Tensor) else nonce.cpu(), "nonce", NONCE_BYTES, where)


def check_message_bytes(n: int, where: str = "featperm.crypto") -> None:
    if n > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"{where}: message of {n} bytes exceeds RFC 8439's limit of {MAX_MESSAGE_BYTES} "
            "bytes (2^32-1 blocks of 64) for one (key, nonce); split it under several nonces"
        )


def tag_bytes(tag: BytesLike, where: str) -> bytes:
    if isinstance(tag, torch.Tensor):
        if tag.dtype != torch.uint8:
            raise TypeError(f"{where}: tag must be bytes or a uint8 tensor, got a {tag.dtype} tensor")
        tag = tag.detach().cpu().reshape(-1).numpy().tobytes()
    return _checks.byte_string(where, "tag", tag, TAG_BYTES)


_ZEROS_32 = torch.zeros(32, dtype=torch.uint8)  # read-only input of the one-time-key computation


def one_time_key(key_t: torch.Tensor, nonce_t: torch.Tensor) -> torch.Tensor:
    """Poly1305 key: the first 32 bytes of keystream block 0 (RFC 8439 section 2.6), on the host.

    Computed where the key is: a host key needs no GPU launch or synchronisation for it."""
    zeros = _ZEROS_32 if key_t.device.type == "cpu" else torch.zeros(32, dtype=torch.uint8, device=key_t.device)
    return torch.ops.featperm.chacha20_xor(zeros, key_t, nonce_t, 0).cpu()


def compute_tag(aad_t: torch.Tensor, ciphertext: torch.Tensor, otk: torch.Tensor) -> bytes:
    """The AEAD tag. A CUDA ciphertext stays on the GPU: its blocks are absorbed there in chunks
    and only the chunk sums (and at most 15 trailing bytes) come back to the host."""
    return torch.ops.featperm.chacha20_poly1305_tag(aad_t, ciphertext.reshape(-1), otk).numpy().tobytes()


# -- the AEAD --------------------------------------------------------------------------------


def aead_encrypt(
    data: torch.Tensor, key: BytesLike, nonce: BytesLike, aad: BytesLike = b""
) -> Tuple[torch.Tensor, bytes]:
    """RFC 8439 AEAD_CHACHA20_POLY1305 encryption of a uint8 tensor.

    Args:
        data: uint8 tensor, any shape, CPU or CUDA.
        key: 32 bytes (bytes-like, or a uint8 tensor; on data's CUDA device it is read there
            without a host round trip).
        nonce: 12 bytes; never use one twice with the same key (see :class:`~featperm.crypto.Sealer`).
        aad: associated data, authenticated but not encrypted.

    Returns:
        ``(ciphertext, tag)``: ciphertext is a contiguous uint8 tensor of data's shape on data's
        device; tag is 16 bytes. ``ciphertext.flatten()`` bytes + tag equal what any RFC 8439
        library returns for (key, nonce, data, aad).

    Raises:
        TypeError: data is not a uint8 tensor; key, nonce or aad is not bytes-like or uint8.
        ValueError: key is not 32 bytes or nonce not 12; data exceeds :data:`MAX_MESSAGE_BYTES`.
    """
    where = "aead_encrypt"
    data = _checks.tensor(where, "data", data)
    if data.dtype != torch.uint8:
        raise TypeError(
            f"{where}: data must be a uint8 tensor (use featperm.seal for tensors of other dtypes), got {data.dtype}"
        )
    check_message_bytes(data.numel(), where)
    key_t, nonce_t = key_tensor(key, data.device, where), nonce_tensor(nonce, where)
    ciphertext, tag = torch.ops.featperm.chacha20_poly1305_encrypt(
        data.detach(), key_t, nonce_t, host_bytes_tensor(aad, "aad", where=where)
    )
    return ciphertext, tag.numpy().tobytes()


def aead_decrypt(
    ciphertext: torch.Tensor, tag: BytesLike, key: BytesLike, nonce: BytesLike, aad: BytesLike = b""
) -> torch.Tensor:
    """RFC 8439 AEAD_CHACHA20_POLY1305 decryption; the inverse of :func:`aead_encrypt`.

    The tag is checked (in constant time) before any plaintext is computed; on mismatch
    :class:`~featperm.errors.AuthenticationError` is raised. Returns a uint8 tensor of
    ciphertext's shape on ciphertext's device. The same TypeError/ValueError rules as
    :func:`aead_encrypt`, and ValueError for a tag that is not 16 bytes.
    """
    where = "aead_decrypt"
    ciphertext = _checks.tensor(where, "ciphertext", ciphertext)
    if ciphertext.dtype != torch.uint8:
        raise TypeError(f"{where}: ciphertext must be a uint8 tensor, got {ciphertext.dtype}")
    check_message_bytes(ciphertext.numel(), where)
    expected = tag_bytes(tag, where)
    key_t, nonce_t = key_tensor(key, ciphertext.device, where), nonce_tensor(nonce, where)
    aad_t = host_bytes_tensor(aad, "aad", where=where)
    computed = compute_tag(aad_t, ciphertext.detach(), one_time_key(key_t, nonce_t))
    if not hmac.compare_digest(computed, expected):
        raise AuthenticationError(
            f"{where}: authentication failed (wrong key, nonce or associated "
            "data, or the ciphertext or tag was modified)"
        )
    return torch.ops.featperm.chacha20_xor(ciphertext.detach(), key_t, nonce_t, 1)


# -- registration for torch.compile / torch.export -----------------------------------------------


@torch.library.register_fake("featperm::chacha20_xor")
def _chacha20_xor_fake(data, key, nonce, counter):
    return data.new_empty(data.shape)


@torch.library.register_fake("featperm::poly1305_mac")
def _poly1305_mac_fake(message, key):
    return key.new_empty(TAG_BYTES)


@torch.library.register_fake("featperm::chacha20_poly1305_tag")
def _chacha20_poly1305_tag_fake(aad, ciphertext, one_time_key):
    return one_time_key.new_empty(TAG_BYTES)


@torch.library.register_fake("featperm::_poly1305_chunk_sums")
def _poly1305_chunk_sums_fake(message, one_time_key, chunk_blocks):
    chunks = (message.numel() // 16 + chunk_blocks - 1) // chunk_blocks
    return message.new_empty((chunks, 3), dtype=torch.int64)
