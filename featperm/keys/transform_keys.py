"""Keys of the block-wise input transforms (AprilPyone & Kiya's baselines, featperm.transforms).

* :class:`NPKey`: which of the C*M*M block positions negative-positive transformation negates.
* :class:`FFXKey`: a 256-bit secret from which FFX derives its Feistel round tables.

The block-pixel-shuffle transform (SHF) uses a :class:`~featperm.keys.BlockKey`. All three are
generated from the OS CSPRNG, derived from a master secret with the same HKDF construction as
every featperm key (:mod:`featperm.keys.derivation`), and saved as key files.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Union

import torch

from featperm import _checks
from featperm.keys.block_key import check_geometry
from featperm.keys.derivation import Text, derive_bytes, hkdf_stream

__all__ = ["NPKey", "FFXKey", "FFX_SECRET_BYTES"]

FFX_SECRET_BYTES = 32


class NPKey:
    """Which of the C*M*M block positions NP negates (a bool mask; repr shows no key material)."""

    __slots__ = ("_mask", "channels", "block_size")

    def __init__(self, mask: Union[torch.Tensor, list], *, channels: int, block_size: int):
        self.channels, self.block_size = check_geometry("NPKey", channels, block_size)
        if isinstance(mask, torch.Tensor):
            tensor = mask.detach().to("cpu")
        else:
            tensor = torch.as_tensor(mask)
        n = self.channels * self.block_size**2
        if tensor.dim() != 1 or tensor.numel() != n:
            raise ValueError(f"NPKey: mask must have shape (C*M*M,) = ({n},), got {tuple(tensor.shape)}")
        if tensor.dtype != torch.bool:
            if tensor.is_floating_point() or tensor.is_complex():
                raise TypeError(f"NPKey: mask must be bool (or 0/1 integers), got dtype {tensor.dtype}")
            if not bool(((tensor == 0) | (tensor == 1)).all()):
                raise ValueError("NPKey: mask must be bool (or 0/1 integers), got other values")
            tensor = tensor.to(torch.bool)
        self._mask = tensor.clone()

    @classmethod
    def generate(cls, *, channels: int, block_size: int) -> "NPKey":
        """A uniformly random mask from the operating system's CSPRNG."""
        c, m = check_geometry("NPKey.generate", channels, block_size)
        n = c * m * m
        return cls(torch.tensor([secrets.randbits(1) for _ in range(n)], dtype=torch.bool), channels=c, block_size=m)

    @classmethod
    def derive(cls, secret: bytes, label: Text, context: Text = b"", *, channels: int, block_size: int) -> "NPKey":
        """The mask derived from a master secret (kind ``NPKey``, shape (C, M))."""
        c, m = check_geometry("NPKey.derive", channels, block_size)
        n = c * m * m
        raw = derive_bytes(secret, label, context, nbytes=(n + 7) // 8, kind="NPKey", shape=(c, m))
        bits = [(raw[k // 8] >> (k % 8)) & 1 for k in range(n)]
        return cls(torch.tensor(bits, dtype=torch.bool), channels=c, block_size=m)

    def mask(self) -> torch.Tensor:
        """A copy of the key material: (C*M*M,) bool on the CPU, True where NP negates."""
        return self._mask.clone()

    def __eq__(self, other):
        if not isinstance(other, NPKey):
            return NotImplemented
        return (self.channels, self.block_size) == (other.channels, other.block_size) and hmac.compare_digest(
            self._mask.numpy().tobytes(), other._mask.numpy().tobytes()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self):
        return f"NPKey(channels={self.channels}, block_size={self.block_size})"


class FFXKey:
    """A secret (32 random bytes) for :class:`~featperm.transforms.FFX`, with the block geometry
    and round count. The round tables are HKDF-SHA256 output of the secret (the STREAM of
    :mod:`featperm.keys.derivation` with kind ``FFX-rounds``, shape (C, M, rounds), label
    ``FFX rounds``): the low nibbles of 16 bytes per (position, round), in that order."""

    __slots__ = ("_secret", "channels", "block_size", "rounds")

    def __init__(self, secret: bytes, *, channels: int, block_size: int, rounds: int = 8):
        self._secret = _checks.secret("FFXKey", secret)
        self.channels, self.block_size = check_geometry("FFXKey", channels, block_size)
        self.rounds = _checks.integer("FFXKey", "rounds", rounds, minimum=2)
        if self.rounds % 2:
            raise ValueError(f"FFXKey: rounds must be an even number >= 2, got {rounds}")

    @classmethod
    def generate(cls, *, channels: int, block_size: int, rounds: int = 8) -> "FFXKey":
        """A key with a fresh 32-byte secret from the operating system's CSPRNG. TypeError or
        ValueError for a bad geometry or an odd or too small ``rounds`` (as the constructor)."""
        return cls(secrets.token_bytes(FFX_SECRET_BYTES), channels=channels, block_size=block_size, rounds=rounds)

    @classmethod
    def derive(
        cls, secret: bytes, label: Text, context: Text = b"", *, channels: int, block_size: int, rounds: int = 8
    ) -> "FFXKey":
        """The FFX secret derived from a master secret (kind ``FFXKey``, shape (C, M, rounds))."""
        c, m = check_geometry("FFXKey.derive", channels, block_size)
        r = _checks.integer("FFXKey.derive", "rounds", rounds, minimum=2)
        raw = derive_bytes(secret, label, context, nbytes=FFX_SECRET_BYTES, kind="FFXKey", shape=(c, m, r))
        return cls(raw, channels=c, block_size=m, rounds=r)

    def __eq__(self, other):
        if not isinstance(other, FFXKey):
            return NotImplemented
        return (self.channels, self.block_size, self.rounds) == (
            other.channels,
            other.block_size,
            other.rounds,
        ) and hmac.compare_digest(self._secret, other._secret)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self):
        return f"FFXKey(channels={self.channels}, block_size={self.block_size}, rounds={self.rounds})"

    def tables(self) -> torch.Tensor:
        """(C*M*M, 256) uint8: the Feistel permutation of 0..255 at each block position."""
        positions = self.channels * self.block_size**2
        stream = hkdf_stream(
            "FFXKey.tables",
            self._secret,
            "FFX rounds",
            b"",
            "FFX-rounds",
            (self.channels, self.block_size, self.rounds),
        )
        values = torch.arange(256, dtype=torch.int64)
        rows = []
        for _ in range(positions):
            left, right = values >> 4, values & 15
            for _ in range(self.rounds):
                # Round function: a keyed table of 16 nibbles per (position, round).
                f = torch.tensor([b & 15 for b in stream.read(16)], dtype=torch.int64)
                left, right = right, left ^ f[right]  # balanced Feistel: (L, R) -> (R, L xor F(R))
            rows.append((left << 4) | right)
        return torch.stack(rows).to(torch.uint8)
