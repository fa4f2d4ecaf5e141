"""Sealed tensors: any tensor (dtype, shape, exact bytes) in a self-describing container whose
header is authenticated with the ciphertext (ChaCha20-Poly1305, RFC 8439).

Wire format (also in ``docs/crypto.md``)::

    offset          size      field
    0               4         magic b"FPSL"
    4               1         version (1)
    5               1         dtype code (DTYPE_CODES)
    6               1         ndim (0..64)
    7               1         reserved, 0
    8               8*ndim    shape, uint64 little-endian each
    H = 8+8*ndim    12        nonce
    H+12            n         ciphertext, n = numel * itemsize: the tensor's bytes in C order,
                              little-endian elements
    H+12+n          16        tag

AEAD inputs: key, nonce, plaintext = the tensor's bytes, associated data = bytes [0, H) (the
header) followed by the caller's aad (which is not stored).
"""

from __future__ import annotations

import hmac
import struct
import sys
import warnings
from typing import Dict, Sequence, Tuple, Union

import torch

from featperm import _checks
from featperm.crypto import host_transfer
from featperm.crypto.aead import (
    NONCE_BYTES,
    TAG_BYTES,
    BytesLike,
    as_bytes,
    check_message_bytes,
    compute_tag,
    host_bytes_tensor,
    key_tensor,
    nonce_tensor,
    one_time_key,
)
from featperm.errors import AuthenticationError, MalformedSealedError

__all__ = ["seal", "open_sealed", "sealed_header", "tensor_bytes", "DTYPE_CODES", "WIRE_VERSION", "SealedBytes"]

_MAGIC = b"FPSL"
WIRE_VERSION = 1
_MAX_NDIM = 64
_FIXED_HEADER = struct.Struct("<4sBBBB")

_DTYPE_NAMES = [  # code = index + 1; append only: codes are part of the wire format
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "uint16",
    "uint32",
    "uint64",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "complex32",
]
DTYPE_CODES: Dict[torch.dtype, int] = {
    getattr(torch, n): i + 1 for i, n in enumerate(_DTYPE_NAMES) if hasattr(torch, n)
}
_CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}
_SAME_WIDTH_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}

SealedBytes = Union[bytearray, memoryview]


def tensor_bytes(t: torch.Tensor) -> torch.Tensor:
    """The bytes of ``t`` in C order as a flat contiguous uint8 tensor (a view when t is
    contiguous). Values are moved only as integers, so every bit pattern survives."""
    if t.is_complex():
        t = torch.view_as_real(t.resolve_conj())  # same bytes; last dim (re, im) has stride 1
    if not t.is_contiguous():
        t = t.view(_SAME_WIDTH_INT[t.element_size()]).contiguous()
    return t.reshape(-1).view(torch.uint8)


def sealed_header(dtype: torch.dtype, shape: Sequence[int]) -> bytes:
    """The authenticated header (``8 + 8 * len(shape)`` bytes) for a tensor of ``dtype`` and
    ``shape`` (see the wire format). TypeError for a dtype without a wire code, ValueError for
    more than 64 dimensions or a negative size."""
    try:
        code = DTYPE_CODES[dtype]
    except KeyError:
        raise TypeError(
            f"seal: dtype {dtype} has no wire code; supported: {sorted(str(d) for d in DTYPE_CODES)}"
        ) from None
    dims = tuple(_checks.integer("seal", "shape entry", s, minimum=0) for s in shape)
    if len(dims) > _MAX_NDIM:
        raise ValueError(f"seal: tensors of at most {_MAX_NDIM} dimensions, got {len(dims)}")
    return _FIXED_HEADER.pack(_MAGIC, WIRE_VERSION, code, len(dims), 0) + struct.pack(f"<{len(dims)}Q", *dims)


def seal(tensor: torch.Tensor, key: BytesLike, nonce: BytesLike, aad: BytesLike = b"") -> SealedBytes:
    """Encrypt and authenticate a tensor of any dtype and shape into a self-describing container.

    The tensor's bytes are taken exactly (non-contiguous tensors are gathered as raw bytes; no
    value is converted). The keystream is computed on the tensor's device; only ciphertext is
    copied to host memory. dtype and shape travel in a header that is authenticated as part of
    the AEAD's associated data, together with ``aad`` (which is not stored: the opener must
    supply it again).

    Returns the container in the wire format of ``docs/crypto.md`` as a writable bytes-like object:

    * a CPU tensor gives a ``bytearray``;
    * a CUDA tensor gives a ``memoryview`` (format ``"B"``, one dimension) over page-locked host
      memory from torch's pinned caching allocator. The ciphertext is copied once from the GPU
      straight into it; header, nonce and tag are written around it. The memoryview owns that
      memory (it stays valid after later calls) and returns it to torch's pinned cache when it is
      dropped. ``bytes(sealed)`` makes an ordinary copy; :func:`open_sealed` and any RFC 8439
      library (e.g. ``cryptography``) accept the memoryview or slices of it directly.

    Never seal twice with one (key, nonce): use :class:`~featperm.crypto.Sealer` to have nonces
    issued for you.

    Raises:
        TypeError: tensor is not a tensor, or its dtype has no wire code; key, nonce or aad is
            not bytes-like or a uint8 tensor.
        ValueError: key is not 32 bytes, nonce not 12; more than 64 dimensions; more bytes than
            RFC 8439 allows under one nonce.
    """
    tensor = _checks.tensor("seal", "tensor", tensor)
    if sys.byteorder != "little":  # pragma: no cover - torch runs on little-endian hosts only
        raise RuntimeError("seal: the wire format stores little-endian elements")
    tensor = tensor.detach()
    header = sealed_header(tensor.dtype, tensor.shape)
    plain = tensor_bytes(tensor)
    n = plain.numel()
    check_message_bytes(n, "seal")
    key_t, nonce_t = key_tensor(key, tensor.device, "seal"), nonce_tensor(nonce, "seal")
    aad_b = header + as_bytes(aad, "aad", "seal")  # checked before anything is launched
    nonce_b = nonce_t.numpy().tobytes()
    if tensor.device.type == "cuda":
        return host_transfer.seal_to_host(plain, key_t, nonce_t, aad_b, header, nonce_b)

    # CPU (and any other device): one fused call, then one copy of the ciphertext into the container.
    body = len(header) + NONCE_BYTES
    ciphertext, tag_t = torch.ops.featperm.chacha20_poly1305_encrypt(
        plain, key_t, nonce_t, host_bytes_tensor(aad_b, "aad")
    )
    out = bytearray(body + n + TAG_BYTES)
    out[: len(header)] = header
    out[len(header) : body] = nonce_b
    if n:
        torch.frombuffer(out, dtype=torch.uint8)[body : body + n].copy_(ciphertext.reshape(-1))
    out[body + n :] = tag_t.numpy().tobytes()
    return out


def _parse_sealed(sealed: BytesLike) -> Tuple[memoryview, int, torch.dtype, Tuple[int, ...], int]:
    if isinstance(sealed, torch.Tensor):
        if sealed.dtype != torch.uint8:
            raise TypeError(f"open_sealed: sealed must be bytes-like or a uint8 tensor, got a {sealed.dtype} tensor")
        if sealed.device.type != "cpu":
            raise ValueError(f"open_sealed: a sealed container is host bytes; got a tensor on {sealed.device}")
        buf = sealed.contiguous().numpy().data.cast("B")
    elif isinstance(sealed, (bytes, bytearray, memoryview)):
        buf = memoryview(sealed).cast("B")
    else:
        raise TypeError(f"open_sealed: sealed must be bytes-like or a uint8 tensor, got {type(sealed).__name__}")
    if len(buf) < _FIXED_HEADER.size:
        raise MalformedSealedError(f"open_sealed: {len(buf)} bytes is too short for a sealed tensor")
    magic, version, code, ndim, reserved = _FIXED_HEADER.unpack_from(buf, 0)
    if magic != _MAGIC:
        raise MalformedSealedError(
            f"open_sealed: not a featperm sealed tensor (magic {bytes(magic)!r}, expected {_MAGIC!r})"
        )
    if version != WIRE_VERSION:
        raise MalformedSealedError(f"open_sealed: unsupported version {version} (this featperm reads {WIRE_VERSION})")
    if reserved != 0:
        raise MalformedSealedError(
            f"open_sealed: reserved header byte is {reserved}, expected 0 "
            "(the container was modified or is from a newer featperm)"
        )
    if code not in _CODE_DTYPES:
        raise MalformedSealedError(f"open_sealed: unknown dtype code {code}")
    if ndim > _MAX_NDIM:
        raise MalformedSealedError(f"open_sealed: ndim {ndim} exceeds {_MAX_NDIM}")
    header_len = _FIXED_HEADER.size + 8 * ndim
    if len(buf) < header_len + NONCE_BYTES + TAG_BYTES:
        raise MalformedSealedError("open_sealed: truncated container")
    shape = struct.unpack_from(f"<{ndim}Q", buf, _FIXED_HEADER.size)
    dtype = _CODE_DTYPES[code]
    itemsize = torch.empty((), dtype=dtype).element_size()
    numel = 1
    for s in shape:
        numel *= s
    n = numel * itemsize
    if len(buf) != header_len + NONCE_BYTES + n + TAG_BYTES:
        raise MalformedSealedError(
            f"open_sealed: container holds {len(buf)} bytes but its header describes "
            f"{header_len + NONCE_BYTES + n + TAG_BYTES} (shape {tuple(shape)}, {dtype})"
        )
    return buf, header_len, dtype, tuple(shape), n


def open_sealed(
    sealed: BytesLike, key: BytesLike, aad: BytesLike = b"", device: Union[torch.device, str, None] = None
) -> torch.Tensor:
    """Verify and decrypt a container made by :func:`seal`; returns the tensor, bit for bit.

    Args:
        sealed: the container (bytes-like, or a uint8 CPU tensor of it).
        key: the 32-byte key.
        aad: the associated data given to :func:`seal`.
        device: where to decrypt and return the tensor (default CPU). With a CUDA device the
            ciphertext is moved there and decrypted there: the plaintext never exists on the host.

    Raises:
        AuthenticationError: wrong key or aad, or any bit of the container was changed. Nothing
            is decrypted before the tag has been verified.
    """
    buf, header_len, dtype, shape, n = _parse_sealed(sealed)
    target = torch.device("cpu" if device is None else device)
    with warnings.catch_warnings():  # read-only buffers (bytes) are fine: nothing writes to them
        warnings.simplefilter("ignore", UserWarning)
        whole = torch.frombuffer(buf, dtype=torch.uint8)
    header = buf[:header_len].tobytes()
    nonce_t = whole[header_len : header_len + NONCE_BYTES]
    ct_host = whole[header_len + NONCE_BYTES : header_len + NONCE_BYTES + n]
    tag = buf[header_len + NONCE_BYTES + n :].tobytes()
    key_t = key_tensor(key, target, "open_sealed")
    aad_t = host_bytes_tensor(header + as_bytes(aad, "aad", "open_sealed"), "aad")
    computed = compute_tag(aad_t, ct_host, one_time_key(key_t, nonce_t))
    if not hmac.compare_digest(computed, tag):
        raise AuthenticationError(
            "open_sealed: authentication failed (wrong key or aad, or the sealed "
            "bytes were modified); nothing was decrypted"
        )
    plain = torch.ops.featperm.chacha20_xor(ct_host.to(target), key_t, nonce_t, 1)
    if dtype.is_complex:
        real = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, torch.float16)
        return torch.view_as_complex(plain.view(real).reshape(shape + (2,)))
    return plain.view(dtype).reshape(shape)
