"""Deprecated module path (before 0.1.0's layered package): ``featperm.block`` names now live in
:mod:`featperm.keys` (BlockKey) and :mod:`featperm.ops` (the ops). Kept so that old imports and
old pickles of a BlockKey (which name ``featperm.block._rebuild_block_key``) keep loading."""

from featperm.keys.block_key import BlockKey, _rebuild_block_key
from featperm.ops.block_shuffle import (
    block_shuffle,
    block_shuffle_,
    block_unshuffle,
    block_unshuffle_,
    from_blocks,
    to_blocks,
)

__all__ = [
    "BlockKey",
    "block_shuffle",
    "block_unshuffle",
    "block_shuffle_",
    "block_unshuffle_",
    "to_blocks",
    "from_blocks",
    "_rebuild_block_key",
]
