"""Nonces that never repeat under one key: :class:`NonceSequence` and :class:`Sealer`."""

from __future__ import annotations

import os
import secrets
import threading
from typing import Optional, Set, Tuple, Union

import torch

from featperm import _checks
from featperm.crypto.aead import KEY_BYTES, NONCE_BYTES, BytesLike, aead_encrypt, as_bytes, generate_key, nonce_tensor
from featperm.crypto.sealed import SealedBytes, open_sealed, seal
from featperm.errors import NonceReuseError

__all__ = ["NonceSequence", "Sealer"]

SENDER_ID_BYTES = 4


class NonceSequence:
    """Issues 96-bit nonces ``sender_id (4 bytes) || counter (8 bytes, little-endian)``.

    Within one sequence the counter never repeats; the sequence refuses to go past ``limit``
    messages (default and maximum 2^64, the counter space). Several senders that share a key must
    use distinct ``sender_id`` values (RFC 8439 section 2.3 suggests exactly this partition). The
    default ``sender_id`` is random: then s independent sequences under one key share an id with
    probability below s^2 / 2^33, so give them explicit distinct ids when you can.
    """

    def __init__(self, sender_id: Optional[bytes] = None, *, start: int = 0, limit: int = 2**64):
        where = "NonceSequence"
        if sender_id is None:
            sender_id = secrets.token_bytes(SENDER_ID_BYTES)
        self.sender_id = _checks.byte_string(where, "sender_id", sender_id, SENDER_ID_BYTES)
        self.limit = _checks.integer(where, "limit", limit, minimum=1, maximum=2**64)
        self._start = _checks.integer(where, "start", start, minimum=0, maximum=self.limit)
        self._next = self._start
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def issued(self) -> int:
        """How many nonces this sequence has issued."""
        return self._next - self._start

    def __next__(self) -> bytes:
        if os.getpid() != self._pid:
            # After fork() parent and child hold the same counter: their nonces would repeat.
            raise NonceReuseError(
                "NonceSequence: used in a child process after fork(); the parent and "
                "the child would issue the same nonces. Create the Sealer or sequence "
                "in each process (with distinct sender_id values)"
            )
        with self._lock:
            if self._next >= self.limit:
                raise RuntimeError(f"NonceSequence: exhausted after {self.limit} nonces; use a new key")
            counter = self._next
            self._next += 1
        return self.sender_id + counter.to_bytes(8, "little")

    def __iter__(self) -> "NonceSequence":
        return self

    def was_issued(self, nonce: bytes) -> bool:
        """True when this sequence has already handed out ``nonce``."""
        nonce = bytes(nonce)
        if len(nonce) != NONCE_BYTES or nonce[:SENDER_ID_BYTES] != self.sender_id:
            return False
        return self._start <= int.from_bytes(nonce[SENDER_ID_BYTES:], "little") < self._next

    def __repr__(self) -> str:
        return f"NonceSequence(issued={self.issued}, limit={self.limit})"


class Sealer:
    """Holds a key and seals tensors under nonces it issues itself, so that no nonce is reused.

    ``seal(x)`` takes the next nonce of its :class:`NonceSequence`. A nonce may be passed
    explicitly (e.g. one derived from a protocol counter), but the Sealer refuses any nonce it has
    issued or been given before (:class:`~featperm.errors.NonceReuseError`), and its own sequence
    skips every nonce that was given explicitly: no mix of explicit and automatic nonces can
    repeat one (it remembers each explicit nonce: 12 bytes and a set entry each). After
    ``fork()`` a Sealer refuses to issue nonces in the child (parent and child would repeat each
    other's): make one per process. ``open(sealed)`` opens containers made under its key.
    Thread-safe.

    The key is never shown by ``repr``.
    """

    def __init__(self, key: Optional[BytesLike] = None, *, sender_id: Optional[bytes] = None, limit: int = 2**64):
        self._key = generate_key() if key is None else as_bytes(key, "key", "Sealer")
        if len(self._key) != KEY_BYTES:
            raise ValueError(f"Sealer: key must be exactly {KEY_BYTES} bytes, got {len(self._key)}")
        self.nonces = NonceSequence(sender_id, limit=limit)
        self._explicit: Set[bytes] = set()
        self._lock = threading.Lock()

    def key(self) -> bytes:
        """The key material, explicitly."""
        return self._key

    def _claim(self, nonce: Optional[BytesLike], where: str) -> bytes:
        with self._lock:
            if nonce is None:
                while True:  # skip the nonces that were given explicitly
                    issued = next(self.nonces)
                    if issued not in self._explicit:
                        return issued
            claimed = nonce_tensor(nonce, where).numpy().tobytes()
            if claimed in self._explicit or self.nonces.was_issued(claimed):
                raise NonceReuseError(
                    f"{where}: this nonce was already used with this key; reusing a "
                    "nonce reveals the XOR of two plaintexts and allows forgeries"
                )
            self._explicit.add(claimed)
            return claimed

    def seal(self, tensor: torch.Tensor, aad: BytesLike = b"", *, nonce: Optional[BytesLike] = None) -> SealedBytes:
        """:func:`~featperm.crypto.seal` under this Sealer's key and a fresh nonce."""
        return seal(tensor, self._key, self._claim(nonce, "Sealer.seal"), aad)

    def encrypt(
        self, data: torch.Tensor, aad: BytesLike = b"", *, nonce: Optional[BytesLike] = None
    ) -> Tuple[bytes, torch.Tensor, bytes]:
        """:func:`~featperm.crypto.aead_encrypt` under a fresh nonce; returns ``(nonce, ciphertext, tag)``."""
        used = self._claim(nonce, "Sealer.encrypt")
        ciphertext, tag = aead_encrypt(data, self._key, used, aad)
        return used, ciphertext, tag

    def open(
        self, sealed: BytesLike, aad: BytesLike = b"", device: Union[torch.device, str, None] = None
    ) -> torch.Tensor:
        """:func:`~featperm.crypto.open_sealed` under this Sealer's key."""
        return open_sealed(sealed, self._key, aad, device)

    def __repr__(self) -> str:
        return f"Sealer(nonces={self.nonces!r})"
