"""Block-shuffle keys (:class:`BlockKey`): a permutation of the C*M*M positions of a block."""

from __future__ import annotations

from typing import Sequence, Union

import torch

from featperm import _checks
from featperm.keys._permutation import PermutationKey, random_permutation
from featperm.keys.derivation import Text, derive_permutation

__all__ = ["BlockKey", "derive_block_key", "MAX_BLOCK_SIZE"]

# The largest block size whose M*M fits in 31 bits (the C++ ops' kMaxBlockSize).
MAX_BLOCK_SIZE = 46340


def check_block_size(where: str, block_size: object) -> int:
    """``block_size`` as an int: TypeError unless an integer, ValueError outside [1, MAX_BLOCK_SIZE]."""
    return _checks.integer(where, "block_size", block_size, minimum=1, maximum=MAX_BLOCK_SIZE)


def check_geometry(where: str, channels: object, block_size: object) -> tuple:
    """(channels, block_size) as ints: TypeError unless integers, ValueError unless
    channels >= 1 and 1 <= block_size <= MAX_BLOCK_SIZE."""
    c = _checks.integer(where, "channels", channels, minimum=1)
    return c, check_block_size(where, block_size)


class BlockKey(PermutationKey):
    """A block-shuffle key: a permutation ``v`` of the ``C*M*M`` positions of a block.

    ``BlockKey(v, channels=C, block_size=M)``; ``v[k]`` is the input position that lands at output
    position ``k`` (``out[k] = in[v[k]]``, flatten order ``k = (r*M + c)*C + ch``). The repr shows
    no key material; :meth:`permutation` returns it explicitly. Pickling a key pickles ``v``.
    """

    __slots__ = ("_channels", "_block_size")

    def __init__(self, v: Union[Sequence[int], torch.Tensor], *, channels: int, block_size: int):
        channels, block_size = check_geometry("BlockKey", channels, block_size)
        perm = _checks.key_tensor("BlockKey", "v", v).detach()
        n = channels * block_size * block_size
        if perm.dim() != 1 or perm.numel() != n:
            raise ValueError(
                f"BlockKey: v must have shape (channels*block_size**2,) = ({n},) for "
                f"channels={channels}, block_size={block_size}, got shape {tuple(perm.shape)}"
            )
        perm = perm.to("cpu", torch.int64).contiguous().clone()
        _checks.permutation_rows("BlockKey: v", perm)
        self._set_permutation(perm)
        self._channels = channels
        self._block_size = block_size

    @classmethod
    def generate(cls, *, channels: int, block_size: int) -> "BlockKey":
        """A uniformly random key from the operating system's CSPRNG (``secrets``)."""
        channels, block_size = check_geometry("BlockKey.generate", channels, block_size)
        perm = random_permutation(channels * block_size * block_size)
        return cls(torch.tensor(perm, dtype=torch.int64), channels=channels, block_size=block_size)

    @classmethod
    def derive(cls, secret: bytes, label: Text, context: Text = b"", *, channels: int, block_size: int) -> "BlockKey":
        """The key derived from a master secret for (label, context): HKDF-SHA256 driving
        Fisher-Yates, domain-separated from every other kind and shape (see
        :mod:`featperm.keys.derivation`). The same inputs always give the same key."""
        c, m = check_geometry("BlockKey.derive", channels, block_size)
        v = derive_permutation(secret, label, context, n=c * m * m, kind="BlockKey", shape=(c, m))
        return cls(torch.tensor(v, dtype=torch.int64), channels=c, block_size=m)

    @property
    def channels(self) -> int:
        """C: the channel count of the feature maps this key shuffles."""
        return self._channels

    @property
    def block_size(self) -> int:
        """M: the side of the M x M blocks; H and W of the feature map must be multiples of it."""
        return self._block_size

    def inverse(self) -> "BlockKey":
        """The key that undoes this one: ``block_shuffle(y, k.inverse()) == block_unshuffle(y, k)``."""
        inv = torch.empty_like(self._perm)
        inv[self._perm] = torch.arange(self._perm.numel())
        return BlockKey(inv, channels=self._channels, block_size=self._block_size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockKey):
            return NotImplemented
        return (
            self._channels == other._channels
            and self._block_size == other._block_size
            and self._same_permutation(other)
        )

    def __repr__(self) -> str:
        return f"BlockKey(channels={self._channels}, block_size={self._block_size})"

    def __reduce__(self):
        # Rebuilt through the constructor (which validates v); the device cache is not pickled.
        return (_rebuild_block_key, (self._perm, self._channels, self._block_size))


def _rebuild_block_key(perm, channels, block_size):
    return BlockKey(perm, channels=channels, block_size=block_size)


def derive_block_key(secret: bytes, label: Text, context: Text = b"", *, channels: int, block_size: int) -> BlockKey:
    """:meth:`BlockKey.derive` as a function."""
    return BlockKey.derive(secret, label, context, channels=channels, block_size=block_size)
