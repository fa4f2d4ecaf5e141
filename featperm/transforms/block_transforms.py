"""Block-wise input transforms with a secret key (the baselines of AprilPyone & Kiya 2021).

Each transform cuts an image batch (N, C, H, W) (or one image (C, H, W)) into M x M blocks and
transforms every block, flattened in the order of the authors' code (row in block, column in
block, channel; channel fastest: ``k = (r*M + c)*C + ch``), with the same key for every block:

* :class:`BlockPixelShuffle` (SHF): permutes the C*M*M values of each block (the block shuffle op).
* :class:`NegativePositive` (NP): at key-selected positions, a value x becomes 255 - x (integer
  images of 8-bit pixel values: exact, its own inverse) or 1 - x (float images in [0, 1]).
* :class:`FFX`: format-preserving Feistel encryption of 8-bit pixel values: a balanced Feistel
  network on the two 4-bit halves of a byte, keyed per block position by HKDF-SHA256 output of
  a secret. Every position gets a permutation of 0..255, so ciphertexts are valid 8-bit pixels.

Keys (:class:`~featperm.keys.BlockKey`, :class:`~featperm.keys.NPKey`,
:class:`~featperm.keys.FFXKey`) live in :mod:`featperm.keys`: generated from ``secrets``,
derivable from a master secret, savable as key files. Each transform has ``forward`` (also
``__call__``) and ``inverse``.
"""

from __future__ import annotations

from typing import Callable, Tuple

import torch

from featperm import _checks
from featperm.keys import BlockKey, FFXKey, NPKey
from featperm.ops.block_shuffle import block_shuffle, block_unshuffle, from_blocks, to_blocks

__all__ = ["BlockPixelShuffle", "NegativePositive", "FFX"]


def _as_batch(x: torch.Tensor, op: str) -> Tuple[torch.Tensor, bool]:
    x = _checks.tensor(op, "x", x)
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
        """SHF under a fresh :class:`~featperm.keys.BlockKey` from the OS CSPRNG for images of
        ``channels`` channels and M = ``block_size``."""
        return cls(BlockKey.generate(channels=channels, block_size=block_size))

    def _apply(self, x: torch.Tensor, fn: Callable[[torch.Tensor, BlockKey], torch.Tensor]) -> torch.Tensor:
        batch, single = _as_batch(x, "BlockPixelShuffle")
        _check_geometry("BlockPixelShuffle", batch, self.key.channels, self.key.block_size)
        out = fn(batch, self.key)
        return out[0] if single else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shuffle every M x M block of ``x``: an image (C, H, W) or a batch (N, C, H, W) of any
        dtype (values move unchanged), C = the key's channels, H and W multiples of M. Returns
        the same shape and dtype. ValueError for another rank, channel count or block size."""
        return self._apply(x, block_shuffle)

    __call__ = forward

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward` exactly (same shapes and errors)."""
        return self._apply(y, block_unshuffle)

    def __repr__(self) -> str:
        return f"BlockPixelShuffle(channels={self.key.channels}, block_size={self.key.block_size})"


class NegativePositive:
    """NP: ``x -> 255 - x`` (integer images) or ``x -> 1 - x`` (float images) at the key's positions
    of every block.

    Integer images (uint8, or any integer dtype holding 8-bit pixel values 0..255; other values
    are refused) are transformed exactly and NP is its own inverse: ``inverse(forward(x)) == x``
    bit for bit. Float images are expected in [0, 1] and stay there, but ``1 - (1 - x)`` is not
    always ``x`` in floating point: for float32 it differs by at most 2**-24 (one half unit in
    the last place of 1.0; 127 of the 256 values k/255 differ), for float64 by at most 2**-53.
    For exact round trips, transform 8-bit images before converting them to float."""

    def __init__(self, key: NPKey):
        if not isinstance(key, NPKey):
            raise TypeError(f"NegativePositive: key must be an NPKey, got {type(key).__name__}")
        self.key = key

    @classmethod
    def generate(cls, block_size: int, channels: int = 3) -> "NegativePositive":
        """NP under a fresh :class:`~featperm.keys.NPKey` (a random mask from the OS CSPRNG) for
        images of ``channels`` channels and M = ``block_size``."""
        return cls(NPKey.generate(channels=channels, block_size=block_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Negate the key's positions of every M x M block of ``x`` (C, H, W) or (N, C, H, W):
        ``255 - x`` for integer images, ``1 - x`` for float images; same shape and dtype.
        ``inverse`` is this same function. TypeError for bool, int8 or complex images; ValueError
        for integer values outside 0..255, another rank, channel count or block size."""
        batch, single = _as_batch(x, "NegativePositive")
        _check_geometry("NegativePositive", batch, self.key.channels, self.key.block_size)
        if batch.is_floating_point():
            top: int = 1
        elif batch.dtype not in (torch.bool, torch.int8) and not batch.is_complex():
            top = 255
            if batch.dtype != torch.uint8 and bool(((batch < 0) | (batch > 255)).any()):
                raise ValueError(
                    f"NegativePositive: an integer image must hold 8-bit pixel values "
                    f"0..255, got values in [{int(batch.min())}, {int(batch.max())}]"
                )
        else:
            raise TypeError(
                f"NegativePositive: expected a float image or an integer image that can hold "
                f"0..255, got dtype {batch.dtype}"
            )
        m = self.key.block_size
        blocks = to_blocks(batch, m)
        out = torch.where(self.key._mask.to(batch.device), top - blocks, blocks)
        out = from_blocks(out, self.key.channels, m)
        return out[0] if single else out

    __call__ = forward
    inverse = forward

    def __repr__(self) -> str:
        return f"NegativePositive(channels={self.key.channels}, block_size={self.key.block_size})"


class FFX:
    """Format-preserving Feistel encryption of 8-bit pixel values, per block position.

    uint8 images are encrypted exactly; float images in [0, 1] are first quantised to 8 bits
    (round(255 x), values outside [0, 1] clamped) and returned as float ``value / 255``, so
    ``inverse(forward(x))`` equals x for images that are 8-bit values scaled to [0, 1] (e.g. from
    ``ToTensor``). Non-finite values (NaN, infinities) are refused: no pixel value stands for them."""

    def __init__(self, key: FFXKey):
        if not isinstance(key, FFXKey):
            raise TypeError(f"FFX: key must be an FFXKey, got {type(key).__name__}")
        self.key = key
        self._forward_table = key.tables()  # (P, 256)
        self._inverse_table = torch.argsort(self._forward_table.to(torch.int64), dim=1).to(torch.uint8)

    @classmethod
    def generate(cls, block_size: int, channels: int = 3) -> "FFX":
        """FFX under a fresh :class:`~featperm.keys.FFXKey` (a 32-byte secret from the OS CSPRNG,
        8 rounds) for images of ``channels`` channels and M = ``block_size``."""
        return cls(FFXKey.generate(channels=channels, block_size=block_size))

    def _apply(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        batch, single = _as_batch(x, "FFX")
        _check_geometry("FFX", batch, self.key.channels, self.key.block_size)
        if batch.dtype == torch.uint8:
            values = batch
        elif batch.is_floating_point():
            if not bool(torch.isfinite(batch).all()):
                raise ValueError("FFX: x holds NaN or infinite values; expected pixel values in [0, 1]")
            values = torch.round(batch.clamp(0, 1) * 255).to(torch.uint8)
        else:
            raise TypeError(f"FFX: expected a uint8 or float image, got dtype {batch.dtype}")
        blocks = to_blocks(values, self.key.block_size).to(torch.int64)  # (N, HB, WB, P)
        positions = table.shape[0]
        flat_index = torch.arange(positions, device=batch.device) * 256 + blocks
        out = table.to(batch.device).reshape(-1)[flat_index]
        out = from_blocks(out, self.key.channels, self.key.block_size)
        if batch.dtype != torch.uint8:
            out = out.to(batch.dtype) / 255
        return out[0] if single else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encrypt every pixel value of ``x`` (C, H, W) or (N, C, H, W) with its block
        position's permutation of 0..255: uint8 in, uint8 out; float in [0, 1] in, float
        ``value / 255`` out. TypeError for other dtypes; ValueError for NaN or infinities,
        another rank, channel count or block size."""
        return self._apply(x, self._forward_table)

    __call__ = forward

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Decrypt what :meth:`forward` produced (same shapes, dtypes and errors); exact on
        uint8 images and on float images of 8-bit values scaled to [0, 1]."""
        return self._apply(y, self._inverse_table)

    def __repr__(self) -> str:
        return f"FFX(channels={self.key.channels}, block_size={self.key.block_size}, rounds={self.key.rounds})"
