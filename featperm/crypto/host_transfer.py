"""Sealing a CUDA tensor into host memory: keystream on the GPU, one asynchronous copy of the
ciphertext into a page-locked container, the tag where it is cheapest, one synchronisation.

:func:`seal_to_host` is the CUDA half of :func:`featperm.crypto.seal`. Its tuning knobs are the
attributes of :data:`options` (tests and benchmarks change them; users need not):

* ``device_tag_min_bytes`` (default 1 MiB): above it, a CUDA ciphertext's tag is computed on the
  GPU (chunk sums joined on the host); below it, on the host copy once it has landed.
* ``copy_on_side_stream`` (default True): for GPU tags, copy the ciphertext to the host on a side
  stream so that the DMA overlaps the GPU Poly1305; False queues both on the current stream.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Dict, Optional

import torch

from featperm.crypto.aead import NONCE_BYTES, TAG_BYTES, compute_tag, host_bytes_tensor, one_time_key

__all__ = ["TransferOptions", "options", "CT_ALIGN", "container_tensor", "fill_container", "seal_to_host"]


@dataclass
class TransferOptions:
    """The tuning knobs of :func:`seal_to_host` (one shared instance: :data:`options`).

    ``device_tag_min_bytes``: a CUDA ciphertext of at least this many bytes (default 1 MiB) gets
    its Poly1305 tag on the GPU (chunk sums joined on the host); a shorter one on the host copy.
    ``copy_on_side_stream``: for GPU tags, copy the ciphertext to the host on a per-device side
    stream so the DMA overlaps the GPU Poly1305 (default True). Neither changes a single output
    byte, only where the work runs."""

    device_tag_min_bytes: int = 1 << 20
    copy_on_side_stream: bool = True


options = TransferOptions()

# Offset of the ciphertext inside a CUDA seal's page-locked allocation: the container starts a
# few bytes in so that the device-to-host copy lands on a 64-byte boundary.
CT_ALIGN = 64

_SIDE_STREAMS: Dict[Optional[int], "torch.cuda.Stream"] = {}
_SIDE_STREAMS_LOCK = threading.Lock()


def _side_stream(device: torch.device) -> "torch.cuda.Stream":
    """One side stream per CUDA device for seal()'s copies (created once, shared by threads: each
    waits only for its own work through events, and synchronising it waits at most for theirs)."""
    with _SIDE_STREAMS_LOCK:
        stream = _SIDE_STREAMS.get(device.index)
        if stream is None:
            stream = _SIDE_STREAMS[device.index] = torch.cuda.Stream(device=device)
    return stream


def container_tensor(total: int, ct_offset: int, pin_memory: bool) -> torch.Tensor:
    """An uninitialised flat uint8 CPU tensor of ``total`` bytes whose byte ``ct_offset`` (where the
    ciphertext goes) is ``CT_ALIGN``-aligned. With ``pin_memory`` it comes from torch's pinned
    (page-locked) caching host allocator: cached blocks are reused without a new cudaHostAlloc, and
    the block goes back to that cache when the last reference to the container is dropped."""
    pad = (-ct_offset) % CT_ALIGN
    try:
        raw = torch.empty(pad + total, dtype=torch.uint8, pin_memory=pin_memory)
    except RuntimeError as exc:  # e.g. page-locking refused (memlock limit): correct, only slower
        if not pin_memory:
            raise
        warnings.warn(
            f"featperm.seal: page-locked host memory unavailable ({exc}); the container "
            "uses ordinary memory and the device-to-host copy is slower",
            RuntimeWarning,
            stacklevel=3,
        )
        raw = torch.empty(pad + total, dtype=torch.uint8)
    return raw[pad:]


def fill_container(out: torch.Tensor, header: bytes, nonce: bytes) -> memoryview:
    """Write header and nonce into the container tensor ``out``; return a writable byte
    memoryview of all of it. The memoryview keeps ``out`` (and so its memory) alive."""
    view = out.numpy().data  # a memoryview: numpy holds a reference to the tensor, no copy, no dangling view
    body = len(header) + NONCE_BYTES
    view[: len(header)] = header
    view[len(header) : body] = nonce
    return view


def seal_to_host(
    plain: torch.Tensor, key_t: torch.Tensor, nonce_t: torch.Tensor, aad_b: bytes, header: bytes, nonce_b: bytes
) -> memoryview:
    """Seal the flat uint8 tensor ``plain`` into a pinned container (``header`` || nonce ||
    ciphertext || tag); ``aad_b`` is the AEAD's associated data (header and caller's aad).

    Host work that does not feed the copy (header, nonce, aad, Poly1305 key) runs while the GPU
    works. With a CPU ``plain`` the same steps run synchronously into unpinned memory (the tests
    use this to check the container assembly without a GPU; :func:`featperm.crypto.seal` keeps its
    ``bytearray`` path for CPU tensors)."""
    n = plain.numel()
    body = len(header) + NONCE_BYTES
    on_cuda = plain.device.type == "cuda"
    # The ops and copy_ set the device themselves; the stream is the current one of plain's device.
    stream = torch.cuda.current_stream(plain.device) if on_cuda else None
    device_tag = n > options.device_tag_min_bytes
    copy_stream = _side_stream(plain.device) if on_cuda and device_tag and options.copy_on_side_stream else stream
    ciphertext = torch.ops.featperm.chacha20_xor(plain, key_t, nonce_t, 1)  # queued on `stream`
    out = container_tensor(body + n + TAG_BYTES, body, pin_memory=on_cuda)
    ct_host = out[body : body + n]
    if n:
        # Page-locked destination: a true asynchronous DMA, straight into the container (no
        # staging buffer, no second host copy).
        flat = ciphertext.reshape(-1)
        if copy_stream is not stream:
            assert copy_stream is not None and stream is not None
            copy_stream.wait_stream(stream)  # starts once the keystream kernel has written flat
            with torch.cuda.stream(copy_stream):
                ct_host.copy_(flat, non_blocking=True)
            flat.record_stream(copy_stream)  # its memory is not reused before the copy has read it
        else:
            ct_host.copy_(flat, non_blocking=True)
    # In the copy's shadow: header and nonce (bytes the copy does not touch), aad, Poly1305 key.
    view = fill_container(out, header, nonce_b)
    aad_t = host_bytes_tensor(aad_b, "aad", where="seal")
    otk = one_time_key(key_t, nonce_t)  # on the host for a host key: no launch, no sync
    if not device_tag:
        # Short messages: authenticate the host copy once it has landed (no GPU Poly1305 launch,
        # no second synchronisation).
        if stream is not None:
            stream.synchronize()
        tag = compute_tag(aad_t, ct_host, otk)
    else:
        # Long messages: Poly1305 in chunks on the GPU (current stream; only chunk sums come back,
        # joined on the host) while the copy runs on the side stream, or after it on one stream.
        tag = compute_tag(aad_t, ciphertext, otk)
        if copy_stream is not None:
            copy_stream.synchronize()  # the copy has completed before the container is handed out
    view[body + n :] = tag
    return view
