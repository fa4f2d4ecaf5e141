"""Block-wise input transforms with a secret key (the baselines of AprilPyone & Kiya 2021).

Each transform cuts an image batch (N, C, H, W) (or one image (C, H, W)) into M x M blocks and
transforms every block, flattened in the order of the authors' code (row in block, column in
block, channel; channel fastest: ``k = (r*M + c)*C + ch``), with the same key for every block:

* :class:`BlockPixelShuffle` (SHF): permutes the C*M*M values of each block (the block shuffle op).
* :class:`NegativePositive` (NP): at key-selected positions, a value x becomes 1 - x (255 - x for
  uint8 images). Format-preserving on [0, 1] (and on 0..255); it is its own inverse.
* :class:`FFX`: format-preserving Feistel encryption of 8-bit pixel values: a balanced Feistel
  network on the two 4-bit halves of a byte, keyed per block position by HMAC-SHA256 of a
  secret. Every position gets a permutation of 0..255, so ciphertexts are valid 8-bit pixels.

All keys come from ``secrets``. Each transform has ``forward`` (also ``__call__``) and ``inverse``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Union

import torch

from featperm.block import BlockKey, block_shuffle, block_unshuffle, from_blocks, to_blocks

__all__ = ["BlockPixelShuffle", "NegativePositive", "NPKey", "FFX", "FFXKey"]


def _as_batch(x: torch.Tensor, op: str):
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() == 4:
        return x, False
    raise ValueError(f"{op}: expected an image (C, H, W) or a batch (N, C, H, W), got shape {tuple(x.shape)}")


def _check_geometry(op: str, x: torch.Tensor, channels: int, block_size: int) -> None:
    if x.shape[1] != channels:
        raise ValueError(f"{op}: image has {x.shape[1]} channels, the key is for {channels}")
    if x.shape[2] % block_size or x.shape[3] % block_size:
        raise ValueError(f"{op}: block_size {block_size} must divide H={x.shape[2]} and W={x.shape[3]}")


class BlockPixelShuffle:
    """SHF: block-wise pixel shuffle, the block shuffle op applied to images (C=3 for RGB)."""

    def __init__(self, key: BlockKey):
        if not isinstance(key, BlockKey):
            raise TypeError(f"BlockPixelShuffle: key must be a BlockKey, got {type(key).__name__}")
        self.key = key

    @classmethod
    def generate(cls, block_size: int, channels: int = 3) -> "BlockPixelShuffle":
        return cls(BlockKey.generate(channels=channels, block_size=block_size))

    def _apply(self, x: torch.Tensor, fn) -> torch.Tensor:
        batch, single = _as_batch(x, "BlockPixelShuffle")
        _check_geometry("BlockPixelShuffle", batch, self.key.channels, self.key.block_size)
        out = fn(batch, self.key)
        return out[0] if single else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, block_shuffle)

    __call__ = forward

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(y, block_unshuffle)

    def __repr__(self) -> str:
        return f"BlockPixelShuffle(channels={self.key.channels}, block_size={self.key.block_size})"


class NPKey:
    """Which of the C*M*M block positions NP negates (a bool mask; repr shows no key material)."""

    __slots__ = ("_mask", "channels", "block_size")

    def __init__(self, mask: Union[torch.Tensor, list], *, channels: int, block_size: int):
        mask = torch.as_tensor(mask).detach().to("cpu")
        n = int(channels) * int(block_size) ** 2
        if mask.dim() != 1 or mask.numel() != n:
            raise ValueError(f"NPKey: mask must have shape (C*M*M,) = ({n},), got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            if mask.is_floating_point() or not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("NPKey: mask must be bool (or 0/1 integers)")
            mask = mask.to(torch.bool)
        self._mask = mask.clone()
        self.channels, self.block_size = int(channels), int(block_size)

    @classmethod
    def generate(cls, *, channels: int, block_size: int) -> "NPKey":
        n = int(channels) * int(block_size) ** 2
        return cls(torch.tensor([secrets.randbits(1) for _ in range(n)], dtype=torch.bool),
                   channels=channels, block_size=block_size)

    def mask(self) -> torch.Tensor:
        return self._mask.clone()

    def __eq__(self, other):
        if not isinstance(other, NPKey):
            return NotImplemented
        return (self.channels, self.block_size) == (other.channels, other.block_size) and \
            bool(torch.equal(self._mask, other._mask))

    __hash__ = None

    def __repr__(self):
        return f"NPKey(channels={self.channels}, block_size={self.block_size})"


class NegativePositive:
    """NP: ``x -> 1 - x`` (``255 - x`` for uint8) at the key's positions of every block.

    Inputs are expected in [0, 1] (float) or 0..255 (uint8); the output stays in that range.
    The transform is an involution: ``inverse`` is the transform itself."""

    def __init__(self, key: NPKey):
        if not isinstance(key, NPKey):
            raise TypeError(f"NegativePositive: key must be an NPKey, got {type(key).__name__}")
        self.key = key

    @classmethod
    def generate(cls, block_size: int, channels: int = 3) -> "NegativePositive":
        return cls(NPKey.generate(channels=channels, block_size=block_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, single = _as_batch(x, "NegativePositive")
        _check_geometry("NegativePositive", batch, self.key.channels, self.key.block_size)
        m = self.key.block_size
        blocks = to_blocks(batch, m)
        top = 255 if batch.dtype == torch.uint8 else 1
        out = torch.where(self.key._mask.to(batch.device), top - blocks, blocks)
        out = from_blocks(out, self.key.channels, m)
        return out[0] if single else out

    __call__ = forward
    inverse = forward

    def __repr__(self) -> str:
        return f"NegativePositive(channels={self.key.channels}, block_size={self.key.block_size})"


class FFXKey:
    """A secret (32 random bytes) for :class:`FFX`, with the block geometry and round count."""

    __slots__ = ("_secret", "channels", "block_size", "rounds")

    def __init__(self, secret: bytes, *, channels: int, block_size: int, rounds: int = 8):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise ValueError("FFXKey: secret must be at least 16 bytes")
        if rounds < 2 or rounds % 2:
            raise ValueError(f"FFXKey: rounds must be an even number >= 2, got {rounds}")
        self._secret = bytes(secret)
        self.channels, self.block_size, self.rounds = int(channels), int(block_size), int(rounds)

    @classmethod
    def generate(cls, *, channels: int, block_size: int, rounds: int = 8) -> "FFXKey":
        return cls(secrets.token_bytes(32), channels=channels, block_size=block_size, rounds=rounds)

    def __eq__(self, other):
        if not isinstance(other, FFXKey):
            return NotImplemented
        return (self.channels, self.block_size, self.rounds) == (other.channels, other.block_size, other.rounds) \
            and hmac.compare_digest(self._secret, other._secret)

    __hash__ = None

    def __repr__(self):
        return f"FFXKey(channels={self.channels}, block_size={self.block_size}, rounds={self.rounds})"

    def tables(self) -> torch.Tensor:
        """(C*M*M, 256) uint8: the Feistel permutation of 0..255 at each block position."""
        positions = self.channels * self.block_size ** 2
        values = torch.arange(256, dtype=torch.int64)
        left, right = values >> 4, values & 15
        rows = []
        for pos in range(positions):
            lo, ro = left.clone(), right.clone()
            for rnd in range(self.rounds):
                # Round function: a keyed table of 16 nibbles per (position, round).
                digest = hmac.new(self._secret, b"featperm-ffx/%d/%d" % (pos, rnd), hashlib.sha256).digest()
                f = torch.tensor([b & 15 for b in digest[:16]], dtype=torch.int64)
                lo, ro = ro, lo ^ f[ro]  # balanced Feistel: (L, R) -> (R, L xor F(R))
            rows.append((lo << 4) | ro)
        return torch.stack(rows).to(torch.uint8)


class FFX:
    """Format-preserving Feistel encryption of 8-bit pixel values, per block position.

    uint8 images are encrypted exactly; float images in [0, 1] are first quantised to 8 bits
    (round(255 x)) and returned as float ``value / 255``, so ``inverse(forward(x))`` equals x for
    images that are 8-bit values scaled to [0, 1] (e.g. from ``ToTensor``)."""

    def __init__(self, key: FFXKey):
        if not isinstance(key, FFXKey):
            raise TypeError(f"FFX: key must be an FFXKey, got {type(key).__name__}")
        self.key = key
        self._forward_table = key.tables()                                    # (P, 256)
        self._inverse_table = torch.argsort(self._forward_table.to(torch.int64), dim=1).to(torch.uint8)

    @classmethod
    def generate(cls, block_size: int, channels: int = 3) -> "FFX":
        return cls(FFXKey.generate(channels=channels, block_size=block_size))

    def _apply(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        batch, single = _as_batch(x, "FFX")
        _check_geometry("FFX", batch, self.key.channels, self.key.block_size)
        if batch.dtype == torch.uint8:
            values = batch
        elif batch.is_floating_point():
            values = torch.round(batch.clamp(0, 1) * 255).to(torch.uint8)
        else:
            raise TypeError(f"FFX: expected a uint8 or float image, got dtype {batch.dtype}")
        blocks = to_blocks(values, self.key.block_size).to(torch.int64)         # (N, HB, WB, P)
        positions = table.shape[0]
        flat_index = torch.arange(positions, device=batch.device) * 256 + blocks
        out = table.to(batch.device).reshape(-1)[flat_index]
        out = from_blocks(out, self.key.channels, self.key.block_size)
        if batch.dtype != torch.uint8:
            out = out.to(batch.dtype) / 255
        return out[0] if single else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, self._forward_table)

    __call__ = forward

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(y, self._inverse_table)

    def __repr__(self) -> str:
        return f"FFX(channels={self.key.channels}, block_size={self.key.block_size}, rounds={self.key.rounds})"
