"""Authenticated encryption of tensors: ChaCha20-Poly1305 (RFC 8439) computed where the tensor is.

ShuffleBits alone is obfuscation. This package gives featperm a real authenticated cipher whose
keystream is computed on the tensor's device (a CUDA kernel on the GPU, AVX-512 or portable C++
on the CPU), so that only ciphertext leaves the GPU. Its output is plain RFC 8439
AEAD_CHACHA20_POLY1305: any standard library decrypts it.

* :mod:`~featperm.crypto.aead` — :func:`aead_encrypt` / :func:`aead_decrypt` on uint8 tensors.
* :mod:`~featperm.crypto.sealed` — :func:`seal` / :func:`open_sealed`: any tensor to a
  self-describing container whose header is authenticated (wire format in ``docs/crypto.md``).
* :mod:`~featperm.crypto.host_transfer` — the CUDA half of :func:`seal` (pinned container,
  asynchronous copy, tag on the GPU for long messages).
* :mod:`~featperm.crypto.nonces` — :class:`NonceSequence`, :class:`Sealer` (never reuses a nonce).
* :mod:`~featperm.crypto.cascade` — :func:`seal_shuffled` / :func:`open_shuffled`.

Where the work happens: the ChaCha20 keystream XOR runs on the data's device; Poly1305 runs over
the ciphertext where the ciphertext is: on the CPU, or for a CUDA ciphertext in chunks on the GPU
that the host joins. Sealing a CUDA tensor therefore moves only ciphertext to host memory,
:func:`aead_encrypt` of a CUDA tensor brings back only the tag, and :func:`open_sealed` with
``device="cuda"`` decrypts on the GPU, so the plaintext never exists in host memory.
"""

from featperm.crypto.aead import (
    KEY_BYTES,
    MAX_MESSAGE_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    aead_decrypt,
    aead_encrypt,
    generate_key,
)
from featperm.crypto.cascade import open_shuffled, seal_shuffled
from featperm.crypto.nonces import NonceSequence, Sealer
from featperm.crypto.sealed import open_sealed, seal, sealed_header
from featperm.errors import AuthenticationError, MalformedSealedError, NonceReuseError

__all__ = [
    "AuthenticationError",
    "MalformedSealedError",
    "NonceReuseError",
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
