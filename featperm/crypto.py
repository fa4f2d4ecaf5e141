"""Authenticated encryption of tensors: ChaCha20-Poly1305 (RFC 8439) computed where the tensor is.

ShuffleBits alone is obfuscation. This module gives featperm a real authenticated cipher whose
keystream is computed on the tensor's device (a CUDA kernel on the GPU, AVX-512 or portable C++
on the CPU), so that only ciphertext leaves the GPU. Its output is plain RFC 8439
AEAD_CHACHA20_POLY1305: any standard library decrypts it.

Layers
------
* :func:`aead_encrypt` / :func:`aead_decrypt`: the AEAD on uint8 tensors (ciphertext, 16-byte tag).
* :func:`seal` / :func:`open_sealed`: any tensor (dtype, shape, exact bytes) to a self-describing
  container whose header is authenticated; see ``docs/crypto.md`` for the wire format.
* :class:`Sealer`: holds a key and issues a fresh nonce for every message (:class:`NonceSequence`),
  refusing to reuse one.
* :func:`seal_shuffled` / :func:`open_shuffled`: ShuffleBits, then sealing (the cascade the
  ShuffleBits paper suggests).

Where the work happens: the ChaCha20 keystream XOR runs on the data's device; Poly1305 runs over
the ciphertext (never the plaintext) where the ciphertext is: on the CPU, or for a CUDA
ciphertext in chunks on the GPU that the host joins. Sealing a CUDA tensor therefore moves only
ciphertext to host memory, :func:`aead_encrypt` of a CUDA tensor brings back only the tag, and
:func:`open_sealed` with ``device="cuda"`` decrypts on the GPU, so the plaintext never exists in
host memory.
"""

from __future__ import annotations

import hmac
import secrets
import struct
import sys
import threading
import warnings
from typing import Optional, Tuple, Union

import torch

from featperm import _library  # noqa: F401  (loads the compiled ops)

__all__ = [
    "AuthenticationError",
    "MalformedSealedError",
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "MAX_MESSAGE_BYTES",
    "aead_encrypt",
    "aead_decrypt",
    "seal",
    "open_sealed",
    "sealed_header",
    "NonceSequence",
    "Sealer",
    "seal_shuffled",
    "open_shuffled",
    "generate_key",
]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# The AEAD encrypts with block counters 1 .. 2^32-1 (block 0 makes the Poly1305 key).
MAX_MESSAGE_BYTES = (2**32 - 1) * 64

BytesLike = Union[bytes, bytearray, memoryview, torch.Tensor]


class AuthenticationError(ValueError):
    """The tag does not match: the ciphertext, tag, header, nonce, associated data or key is wrong
    (tampered with or corrupted). No plaintext is released."""


class MalformedSealedError(AuthenticationError):
    """A sealed container cannot even be parsed (bad magic, version, dtype code, or a length that
    disagrees with its header). A subclass of :class:`AuthenticationError`: a container changed in
    transit fails the same way whichever byte was hit."""


def generate_key() -> bytes:
    """A fresh 32-byte key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


# -- argument handling ---------------------------------------------------------------------------

def _host_bytes_tensor(value: BytesLike, name: str, length: Optional[int] = None) -> torch.Tensor:
    """A CPU uint8 tensor of the bytes of ``value`` (bytes-like or uint8 tensor), length-checked."""
    if isinstance(value, torch.Tensor):
        if value.dtype != torch.uint8:
            raise TypeError(f"{name} must be bytes or a uint8 tensor, got a {value.dtype} tensor")
        t = value.detach().reshape(-1)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytearray(value)  # a private, writable copy for torch.frombuffer
        t = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    else:
        raise TypeError(f"{name} must be bytes-like or a uint8 tensor, got {type(value).__name__}")
    if length is not None and t.numel() != length:
        raise ValueError(f"{name} must be exactly {length} bytes, got {t.numel()}")
    return t


def _as_bytes(value: BytesLike, name: str) -> bytes:
    if isinstance(value, torch.Tensor):
        return _host_bytes_tensor(value.cpu(), name).numpy().tobytes()
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes-like or a uint8 tensor, got {type(value).__name__}")
    return bytes(value)


def _key_tensor(key: BytesLike, device: torch.device) -> torch.Tensor:
    """The key as the ops take it: a host tensor (read on the host), or a uint8 tensor already on
    the data's device (read by the kernel: no host synchronisation)."""
    if isinstance(key, torch.Tensor) and key.device == device and key.device.type != "cpu":
        if key.dtype != torch.uint8 or key.numel() != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} uint8 values, got {key.numel()} of {key.dtype}")
        return key.detach().reshape(-1)
    return _host_bytes_tensor(key if not isinstance(key, torch.Tensor) else key.cpu(), "key", KEY_BYTES)


def _nonce_tensor(nonce: BytesLike) -> torch.Tensor:
    return _host_bytes_tensor(nonce if not isinstance(nonce, torch.Tensor) else nonce.cpu(), "nonce", NONCE_BYTES)


def _check_message_bytes(n: int) -> None:
    if n > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {n} bytes exceeds RFC 8439's limit of {MAX_MESSAGE_BYTES} bytes "
                         "(2^32-1 blocks of 64) for one (key, nonce); split it under several nonces")


def _tag_bytes(tag: BytesLike) -> bytes:
    if isinstance(tag, torch.Tensor):
        tag = tag.detach().cpu().reshape(-1).numpy().tobytes() if tag.dtype == torch.uint8 else None
        if tag is None:
            raise TypeError("tag must be bytes or a uint8 tensor")
    tag = bytes(tag)
    if len(tag) != TAG_BYTES:
        raise ValueError(f"tag must be exactly {TAG_BYTES} bytes, got {len(tag)}")
    return tag


def _one_time_key(key_t: torch.Tensor, nonce_t: torch.Tensor) -> torch.Tensor:
    """Poly1305 key: the first 32 bytes of keystream block 0 (RFC 8439 section 2.6), on the host.

    Computed where the key is: a host key needs no GPU launch or synchronisation for it."""
    zeros = _ZEROS_32 if key_t.device.type == "cpu" else torch.zeros(32, dtype=torch.uint8, device=key_t.device)
    return torch.ops.featperm.chacha20_xor(zeros, key_t, nonce_t, 0).cpu()


def _tag(aad_t: torch.Tensor, ciphertext: torch.Tensor, otk: torch.Tensor) -> bytes:
    """The AEAD tag. A CUDA ciphertext stays on the GPU: its blocks are absorbed there in chunks
    and only the chunk sums (and at most 15 trailing bytes) come back to the host."""
    return torch.ops.featperm.chacha20_poly1305_tag(aad_t, ciphertext.reshape(-1), otk).numpy().tobytes()


# -- the AEAD --------------------------------------------------------------------------------

def aead_encrypt(data: torch.Tensor, key: BytesLike, nonce: BytesLike,
                 aad: BytesLike = b"") -> Tuple[torch.Tensor, bytes]:
    """RFC 8439 AEAD_CHACHA20_POLY1305 encryption of a uint8 tensor.

    Args:
        data: uint8 tensor, any shape, CPU or CUDA.
        key: 32 bytes (bytes-like, or a uint8 tensor; on data's CUDA device it is read there
            without a host round trip).
        nonce: 12 bytes; never use one twice with the same key (see :class:`Sealer`).
        aad: associated data, authenticated but not encrypted.

    Returns:
        ``(ciphertext, tag)``: ciphertext is a contiguous uint8 tensor of data's shape on data's
        device; tag is 16 bytes. ``ciphertext.flatten()`` bytes + tag equal what any RFC 8439
        library returns for (key, nonce, data, aad).
    """
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        raise TypeError("aead_encrypt: data must be a uint8 tensor (use featperm.seal for tensors of "
                        f"other dtypes), got {type(data).__name__ if not isinstance(data, torch.Tensor) else data.dtype}")
    _check_message_bytes(data.numel())
    key_t, nonce_t = _key_tensor(key, data.device), _nonce_tensor(nonce)
    ciphertext, tag = torch.ops.featperm.chacha20_poly1305_encrypt(data.detach(), key_t, nonce_t,
                                                                   _host_bytes_tensor(aad, "aad"))
    return ciphertext, tag.numpy().tobytes()


def aead_decrypt(ciphertext: torch.Tensor, tag: BytesLike, key: BytesLike, nonce: BytesLike,
                 aad: BytesLike = b"") -> torch.Tensor:
    """RFC 8439 AEAD_CHACHA20_POLY1305 decryption; the inverse of :func:`aead_encrypt`.

    The tag is checked (in constant time) before any plaintext is computed; on mismatch
    :class:`AuthenticationError` is raised. Returns a uint8 tensor of ciphertext's shape on
    ciphertext's device.
    """
    if not isinstance(ciphertext, torch.Tensor) or ciphertext.dtype != torch.uint8:
        raise TypeError("aead_decrypt: ciphertext must be a uint8 tensor")
    _check_message_bytes(ciphertext.numel())
    expected = _tag_bytes(tag)
    key_t, nonce_t = _key_tensor(key, ciphertext.device), _nonce_tensor(nonce)
    aad_t = _host_bytes_tensor(aad, "aad")
    computed = _tag(aad_t, ciphertext.detach(), _one_time_key(key_t, nonce_t))
    if not hmac.compare_digest(computed, expected):
        raise AuthenticationError("aead_decrypt: authentication failed (wrong key, nonce or associated "
                                  "data, or the ciphertext or tag was modified)")
    return torch.ops.featperm.chacha20_xor(ciphertext.detach(), key_t, nonce_t, 1)


# -- sealed tensors: wire format ---------------------------------------------------------------
#
#   offset          size      field
#   0               4         magic b"FPSL"
#   4               1         version (1)
#   5               1         dtype code (_DTYPE_CODES)
#   6               1         ndim (0..64)
#   7               1         reserved, 0
#   8               8*ndim    shape, uint64 little-endian each
#   H = 8+8*ndim    12        nonce
#   H+12            n         ciphertext, n = numel * itemsize: the tensor's bytes in C order,
#                             little-endian elements
#   H+12+n          16        tag
#
# AEAD inputs: key, nonce, plaintext = the tensor's bytes, associated data = bytes [0, H) (the
# header) followed by the caller's aad (which is not stored).

_MAGIC = b"FPSL"
_VERSION = 1
_MAX_NDIM = 64
_FIXED_HEADER = struct.Struct("<4sBBBB")

_DTYPE_NAMES = [  # code = index + 1; append only: codes are part of the wire format
    "bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
    "float64", "complex64", "complex128", "uint16", "uint32", "uint64", "float8_e4m3fn",
    "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "complex32",
]
_DTYPE_CODES = {getattr(torch, n): i + 1 for i, n in enumerate(_DTYPE_NAMES) if hasattr(torch, n)}
_CODE_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}
_SAME_WIDTH_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
# seal(): above this many bytes a CUDA ciphertext's tag is computed on the GPU, below on the host.
_DEVICE_TAG_MIN_BYTES = 1 << 20


def _tensor_bytes(t: torch.Tensor) -> torch.Tensor:
    """The bytes of ``t`` in C order as a flat contiguous uint8 tensor (a view when t is
    contiguous). Values are moved only as integers, so every bit pattern survives."""
    if t.is_complex():
        t = torch.view_as_real(t.resolve_conj())  # same bytes; last dim (re, im) has stride 1
    if not t.is_contiguous():
        t = t.view(_SAME_WIDTH_INT[t.element_size()]).contiguous()
    return t.reshape(-1).view(torch.uint8)


def sealed_header(dtype: torch.dtype, shape) -> bytes:
    """The authenticated header for a tensor of ``dtype`` and ``shape`` (see the wire format)."""
    try:
        code = _DTYPE_CODES[dtype]
    except KeyError:
        raise ValueError(f"seal: dtype {dtype} has no wire code; supported: "
                         f"{sorted(str(d) for d in _DTYPE_CODES)}") from None
    shape = tuple(int(s) for s in shape)
    if len(shape) > _MAX_NDIM:
        raise ValueError(f"seal: tensors of at most {_MAX_NDIM} dimensions, got {len(shape)}")
    return _FIXED_HEADER.pack(_MAGIC, _VERSION, code, len(shape), 0) + struct.pack(f"<{len(shape)}Q", *shape)


# Offset of the ciphertext inside a CUDA seal's page-locked allocation: the container starts a
# few bytes in so that the device-to-host copy lands on a 64-byte boundary.
_CT_ALIGN = 64
# Read-only input of the one-time-key computation (the op allocates its output; nothing writes here).
_ZEROS_32 = torch.zeros(32, dtype=torch.uint8)

SealedBytes = Union[bytearray, memoryview]
# seal() of a CUDA tensor above _DEVICE_TAG_MIN_BYTES: copy the ciphertext to the host on a side
# stream, so that the DMA overlaps the GPU Poly1305 and the host join of its chunk sums. False:
# the copy and the tag are queued one after the other on the current stream.
_COPY_ON_SIDE_STREAM = True
_SIDE_STREAMS = {}
_SIDE_STREAMS_LOCK = threading.Lock()


def _side_stream(device: torch.device):
    """One side stream per CUDA device for seal()'s copies (created once, shared by threads: each
    waits only for its own work through events, and synchronising it waits at most for theirs)."""
    with _SIDE_STREAMS_LOCK:
        stream = _SIDE_STREAMS.get(device.index)
        if stream is None:
            stream = _SIDE_STREAMS[device.index] = torch.cuda.Stream(device=device)
    return stream


def _container_tensor(total: int, ct_offset: int, pin_memory: bool) -> torch.Tensor:
    """An uninitialised flat uint8 CPU tensor of ``total`` bytes whose byte ``ct_offset`` (where the
    ciphertext goes) is ``_CT_ALIGN``-aligned. With ``pin_memory`` it comes from torch's pinned
    (page-locked) caching host allocator: cached blocks are reused without a new cudaHostAlloc, and
    the block goes back to that cache when the last reference to the container is dropped."""
    pad = (-ct_offset) % _CT_ALIGN
    try:
        raw = torch.empty(pad + total, dtype=torch.uint8, pin_memory=pin_memory)
    except RuntimeError as exc:  # e.g. page-locking refused (memlock limit): correct, only slower
        if not pin_memory:
            raise
        warnings.warn(f"featperm.seal: page-locked host memory unavailable ({exc}); the container "
                      "uses ordinary memory and the device-to-host copy is slower", RuntimeWarning)
        raw = torch.empty(pad + total, dtype=torch.uint8)
    return raw[pad:]


def _fill_container(out: torch.Tensor, header: bytes, nonce: bytes) -> memoryview:
    """Write header and nonce into the container tensor ``out``; return a writable byte
    memoryview of all of it. The memoryview keeps ``out`` (and so its memory) alive."""
    view = memoryview(out.numpy())  # numpy holds a reference to the tensor: no copy, no dangling view
    body = len(header) + NONCE_BYTES
    view[:len(header)] = header
    view[len(header):body] = nonce
    return view


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

    Never seal twice with one (key, nonce): use :class:`Sealer` to have nonces issued for you.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"seal: tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if sys.byteorder != "little":  # pragma: no cover - torch runs on little-endian hosts only
        raise RuntimeError("seal: the wire format stores little-endian elements")
    tensor = tensor.detach()
    header = sealed_header(tensor.dtype, tensor.shape)
    plain = _tensor_bytes(tensor)
    n = plain.numel()
    _check_message_bytes(n)
    key_t, nonce_t = _key_tensor(key, tensor.device), _nonce_tensor(nonce)
    aad_b = header + _as_bytes(aad, "aad")  # checked before anything is launched
    nonce_b = nonce_t.numpy().tobytes()
    if tensor.device.type == "cuda":
        return _seal_to_host(plain, key_t, nonce_t, aad_b, header, nonce_b)

    # CPU (and any other device): one fused call, then one copy of the ciphertext into the container.
    body = len(header) + NONCE_BYTES
    ciphertext, tag_t = torch.ops.featperm.chacha20_poly1305_encrypt(plain, key_t, nonce_t,
                                                                   _host_bytes_tensor(aad_b, "aad"))
    out = bytearray(body + n + TAG_BYTES)
    out[:len(header)] = header
    out[len(header):body] = nonce_b
    if n:
        torch.frombuffer(out, dtype=torch.uint8)[body:body + n].copy_(ciphertext.reshape(-1))
    out[body + n:] = tag_t.numpy().tobytes()
    return out


def _seal_to_host(plain: torch.Tensor, key_t: torch.Tensor, nonce_t: torch.Tensor, aad_b: bytes,
                  header: bytes, nonce_b: bytes) -> memoryview:
    """The CUDA half of :func:`seal`: keystream on the GPU, one non-blocking copy of the ciphertext
    into a pinned container, the tag where it is cheapest, one synchronisation. Host work that does
    not feed the copy (header, nonce, aad, Poly1305 key) runs while the GPU works.

    With a CPU ``plain`` the same steps run synchronously into unpinned memory (the tests use this
    to check the container assembly without a GPU; :func:`seal` itself keeps its ``bytearray`` path
    for CPU tensors)."""
    n = plain.numel()
    body = len(header) + NONCE_BYTES
    on_cuda = plain.device.type == "cuda"
    # The ops and copy_ set the device themselves; the stream is the current one of plain's device.
    stream = torch.cuda.current_stream(plain.device) if on_cuda else None
    device_tag = n > _DEVICE_TAG_MIN_BYTES
    copy_stream = _side_stream(plain.device) if on_cuda and device_tag and _COPY_ON_SIDE_STREAM else stream
    ciphertext = torch.ops.featperm.chacha20_xor(plain, key_t, nonce_t, 1)  # queued on `stream`
    out = _container_tensor(body + n + TAG_BYTES, body, pin_memory=on_cuda)
    ct_host = out[body:body + n]
    if n:
        # Page-locked destination: a true asynchronous DMA, straight into the container (no
        # staging buffer, no second host copy).
        flat = ciphertext.reshape(-1)
        if copy_stream is not stream:
            copy_stream.wait_stream(stream)  # starts once the keystream kernel has written flat
            with torch.cuda.stream(copy_stream):
                ct_host.copy_(flat, non_blocking=True)
            flat.record_stream(copy_stream)  # its memory is not reused before the copy has read it
        else:
            ct_host.copy_(flat, non_blocking=True)
    # In the copy's shadow: header and nonce (bytes the copy does not touch), aad, Poly1305 key.
    view = _fill_container(out, header, nonce_b)
    aad_t = _host_bytes_tensor(aad_b, "aad")
    otk = _one_time_key(key_t, nonce_t)  # on the host for a host key: no launch, no sync
    if not device_tag:
        # Short messages: authenticate the host copy once it has landed (no GPU Poly1305 launch,
        # no second synchronisation).
        if stream is not None:
            stream.synchronize()
        tag = _tag(aad_t, ct_host, otk)
    else:
        # Long messages: Poly1305 in chunks on the GPU (current stream; only chunk sums come back,
        # joined on the host) while the copy runs on the side stream, or after it on one stream.
        tag = _tag(aad_t, ciphertext, otk)
        if copy_stream is not None:
            copy_stream.synchronize()  # the copy has completed before the container is handed out
    view[body + n:] = tag
    return view


def _parse_sealed(sealed: BytesLike):
    buf = memoryview(sealed.numpy() if isinstance(sealed, torch.Tensor) else sealed).cast("B")
    if len(buf) < _FIXED_HEADER.size:
        raise MalformedSealedError(f"open_sealed: {len(buf)} bytes is too short for a sealed tensor")
    magic, version, code, ndim, reserved = _FIXED_HEADER.unpack_from(buf, 0)
    if magic != _MAGIC:
        raise MalformedSealedError(f"open_sealed: not a featperm sealed tensor (magic {bytes(magic)!r}, expected {_MAGIC!r})")
    if version != _VERSION or reserved != 0:
        raise MalformedSealedError(f"open_sealed: unsupported version {version} (this featperm reads {_VERSION})")
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
        raise MalformedSealedError(f"open_sealed: container holds {len(buf)} bytes but its header describes "
                         f"{header_len + NONCE_BYTES + n + TAG_BYTES} (shape {tuple(shape)}, {dtype})")
    return buf, header_len, dtype, tuple(shape), n


def open_sealed(sealed: BytesLike, key: BytesLike, aad: BytesLike = b"",
                device: Union[torch.device, str, None] = None) -> torch.Tensor:
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
    device = torch.device("cpu" if device is None else device)
    with warnings.catch_warnings():  # read-only buffers (bytes) are fine: nothing writes to them
        warnings.simplefilter("ignore", UserWarning)
        whole = torch.frombuffer(buf, dtype=torch.uint8)
    header = buf[:header_len].tobytes()
    nonce_t = whole[header_len:header_len + NONCE_BYTES]
    ct_host = whole[header_len + NONCE_BYTES:header_len + NONCE_BYTES + n]
    tag = buf[header_len + NONCE_BYTES + n:].tobytes()
    key_t = _key_tensor(key, device)
    aad_t = _host_bytes_tensor(header + _as_bytes(aad, "aad"), "aad")
    computed = _tag(aad_t, ct_host, _one_time_key(key_t, nonce_t))
    if not hmac.compare_digest(computed, tag):
        raise AuthenticationError("open_sealed: authentication failed (wrong key or aad, or the sealed "
                                  "bytes were modified); nothing was decrypted")
    plain = torch.ops.featperm.chacha20_xor(ct_host.to(device), key_t, nonce_t, 1)
    if dtype.is_complex:
        real = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, torch.float16)
        return torch.view_as_complex(plain.view(real).reshape(shape + (2,)))
    return plain.view(dtype).reshape(shape)


# -- nonces ------------------------------------------------------------------------------------

class NonceSequence:
    """Issues 96-bit nonces ``sender_id (4 bytes) || counter (8 bytes, little-endian)``.

    Within one sequence the counter never repeats; the sequence refuses to go past ``limit``
    messages (default and maximum 2^64, the counter space). Several senders that share a key must
    use distinct ``sender_id`` values (RFC 8439 section 2.3 suggests exactly this partition). The
    default ``sender_id`` is random: then s independent sequences under one key share an id with
    probability below s^2 / 2^33, so give them explicit distinct ids when you can.
    """

    def __init__(self, sender_id: Optional[bytes] = None, *, start: int = 0, limit: int = 2**64):
        if sender_id is None:
            sender_id = secrets.token_bytes(4)
        sender_id = bytes(sender_id)
        if len(sender_id) != 4:
            raise ValueError(f"NonceSequence: sender_id must be 4 bytes, got {len(sender_id)}")
        if not 0 < limit <= 2**64:
            raise ValueError(f"NonceSequence: limit must be in [1, 2^64], got {limit}")
        if not 0 <= start <= limit:
            raise ValueError(f"NonceSequence: start must be in [0, limit={limit}], got {start}")
        self.sender_id = sender_id
        self.limit = limit
        self._next = start
        self._start = start
        self._lock = threading.Lock()

    @property
    def issued(self) -> int:
        """How many nonces this sequence has issued."""
        return self._next - self._start

    def __next__(self) -> bytes:
        with self._lock:
            if self._next >= self.limit:
                raise RuntimeError(f"NonceSequence: exhausted after {self.limit} nonces; use a new key")
            counter = self._next
            self._next += 1
        return self.sender_id + counter.to_bytes(8, "little")

    def __iter__(self):
        return self

    def was_issued(self, nonce: bytes) -> bool:
        """True when this sequence has already handed out ``nonce``."""
        nonce = bytes(nonce)
        if len(nonce) != NONCE_BYTES or nonce[:4] != self.sender_id:
            return False
        return self._start <= int.from_bytes(nonce[4:], "little") < self._next

    def __repr__(self) -> str:
        return f"NonceSequence(issued={self.issued}, limit={self.limit})"


class Sealer:
    """Holds a key and seals tensors under nonces it issues itself, so that no nonce is reused.

    ``seal(x)`` takes the next nonce of its :class:`NonceSequence`. A nonce may be passed
    explicitly (e.g. one derived from a protocol counter), but the Sealer refuses any nonce it has
    issued or been given before. ``open(sealed)`` opens containers made under its key.

    The key is never shown by ``repr``.
    """

    def __init__(self, key: Optional[BytesLike] = None, *, sender_id: Optional[bytes] = None,
                 limit: int = 2**64):
        self._key = generate_key() if key is None else _as_bytes(key, "key")
        if len(self._key) != KEY_BYTES:
            raise ValueError(f"Sealer: key must be exactly {KEY_BYTES} bytes, got {len(self._key)}")
        self.nonces = NonceSequence(sender_id, limit=limit)
        self._explicit = set()
        self._lock = threading.Lock()

    def key(self) -> bytes:
        """The key material, explicitly."""
        return self._key

    def _claim(self, nonce: Optional[BytesLike]) -> bytes:
        if nonce is None:
            return next(self.nonces)
        nonce = _nonce_tensor(nonce).numpy().tobytes()
        with self._lock:
            if nonce in self._explicit or self.nonces.was_issued(nonce):
                raise ValueError("Sealer: this nonce was already used with this key; reusing a nonce "
                                 "reveals the XOR of two plaintexts and allows forgeries")
            self._explicit.add(nonce)
        return nonce

    def seal(self, tensor: torch.Tensor, aad: BytesLike = b"", *, nonce: Optional[BytesLike] = None) -> SealedBytes:
        """:func:`seal` under this Sealer's key and a fresh nonce."""
        return seal(tensor, self._key, self._claim(nonce), aad)

    def encrypt(self, data: torch.Tensor, aad: BytesLike = b"", *,
                nonce: Optional[BytesLike] = None) -> Tuple[bytes, torch.Tensor, bytes]:
        """:func:`aead_encrypt` under a fresh nonce; returns ``(nonce, ciphertext, tag)``."""
        used = self._claim(nonce)
        ciphertext, tag = aead_encrypt(data, self._key, used, aad)
        return used, ciphertext, tag

    def open(self, sealed: BytesLike, aad: BytesLike = b"",
             device: Union[torch.device, str, None] = None) -> torch.Tensor:
        """:func:`open_sealed` under this Sealer's key."""
        return open_sealed(sealed, self._key, aad, device)

    def __repr__(self) -> str:
        return f"Sealer(nonces={self.nonces!r})"


# -- cascade -----------------------------------------------------------------------------------

def seal_shuffled(x: torch.Tensor, bit_key, aead_key: BytesLike, nonce: BytesLike,
                  aad: BytesLike = b"") -> SealedBytes:
    """``seal(shuffle_bits(x, bit_key), aead_key, nonce, aad)``: ShuffleBits, then real encryption.

    The ShuffleBits step (Ni, Huttunen, Rahtu 2021) is kept for compatibility with systems that
    expect bit-shuffled features after decryption; the confidentiality and integrity come from
    the ChaCha20-Poly1305 layer. Open with :func:`open_shuffled`.
    """
    from featperm.bits import shuffle_bits
    return seal(shuffle_bits(x, bit_key), aead_key, nonce, aad)


def open_shuffled(sealed: BytesLike, bit_key, aead_key: BytesLike, aad: BytesLike = b"",
                  device: Union[torch.device, str, None] = None) -> torch.Tensor:
    """Inverse of :func:`seal_shuffled`: verify and decrypt, then undo the bit permutation."""
    from featperm.bits import unshuffle_bits
    return unshuffle_bits(open_sealed(sealed, aead_key, aad, device), bit_key)


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
