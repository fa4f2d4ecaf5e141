"""Deprecated module path (before 0.1.0's layered package): ``featperm.bits`` names now live in
:mod:`featperm.keys` (BitKey, word widths) and :mod:`featperm.ops` (the ops). Kept so that old
imports and old pickles of a BitKey (which name ``featperm.bits.BitKey``) keep loading."""

from featperm.keys.bit_key import BitKey, integer_view_dtype, word_bits
from featperm.ops.shuffle_bits import shuffle_bits, shuffle_bits_, unshuffle_bits, unshuffle_bits_

__all__ = [
    "BitKey",
    "shuffle_bits",
    "unshuffle_bits",
    "shuffle_bits_",
    "unshuffle_bits_",
    "word_bits",
    "integer_view_dtype",
]
