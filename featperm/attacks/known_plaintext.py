"""Known-plaintext attack on ShuffleBits: a few (plaintext, ciphertext) words reveal the key.

A bit permutation maps input bit ``i`` of every word to output bit ``f(i)``. Every known word
pair removes the output positions whose bit disagrees with input bit ``i``; bits whose columns
agree in every known word cannot be told apart. Measured results: ``docs/keys.md`` and
``benchmarks/results/known_plaintext_*.json``.

Inputs are tensors of the same number of words (``ciphertexts = shuffle_bits(plaintexts, key)``,
float or integer view); any shape.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple

import torch

from featperm.keys import BitKey, integer_view_dtype, word_bits

__all__ = ["bit_key_candidates", "recover_bit_key", "consistent_bit_key", "words_to_recover"]


def _unsigned_words(x: torch.Tensor) -> Tuple[List[int], int]:
    bits = word_bits(x.dtype)
    mask = (1 << bits) - 1
    words = x.detach().reshape(-1).view(integer_view_dtype(x.dtype)).tolist()
    return [w & mask for w in words], bits


def _candidate_masks(plaintexts: torch.Tensor, ciphertexts: torch.Tensor) -> Iterator[Tuple[int, List[int]]]:
    xs, bits = _unsigned_words(plaintexts)
    ys, y_bits = _unsigned_words(ciphertexts)
    if bits != y_bits or len(xs) != len(ys):
        raise ValueError(
            f"plaintexts ({len(xs)} words of {bits} bits) and ciphertexts "
            f"({len(ys)} words of {y_bits} bits) must have the same number and width"
        )
    full = (1 << bits) - 1
    masks = [full] * bits  # masks[i] bit j set: f(i) = j is still possible
    for count, (x, y) in enumerate(zip(xs, ys), start=1):
        for i in range(bits):
            # output bit f(i) equals input bit i: keep the output positions that agree
            masks[i] &= y if (x >> i) & 1 else ~y & full
        if not all(masks):
            raise ValueError(
                f"the plaintext/ciphertext pairs are not consistent with any bit permutation (word {count - 1})"
            )
        yield count, masks


def bit_key_candidates(plaintexts: torch.Tensor, ciphertexts: torch.Tensor) -> List[List[int]]:
    """For each input bit i, the output bit positions f(i) consistent with the known pairs.

    Bits whose columns agree in every known word cannot be told apart, so they keep the same
    candidates."""
    bits = word_bits(plaintexts.dtype)
    masks = [(1 << bits) - 1] * bits
    for _, current in _candidate_masks(plaintexts, ciphertexts):
        masks = current
    return [[j for j in range(len(masks)) if (m >> j) & 1] for m in masks]


def words_to_recover(plaintexts: torch.Tensor, ciphertexts: torch.Tensor) -> Optional[int]:
    """How many of the known words (taken in order) pin the key down uniquely; None if all of
    them do not."""
    for count, masks in _candidate_masks(plaintexts, ciphertexts):
        if all(m & (m - 1) == 0 for m in masks):  # every candidate set is a single position
            return count
    return None


def recover_bit_key(plaintexts: torch.Tensor, ciphertexts: torch.Tensor) -> Optional[BitKey]:
    """The BitKey with ``shuffle_bits(plaintexts, key) == ciphertexts``, or None if the known
    words leave more than one candidate."""
    candidates = bit_key_candidates(plaintexts, ciphertexts)
    if any(len(c) != 1 for c in candidates):
        return None
    return BitKey([c[0] for c in candidates])


def consistent_bit_key(plaintexts: torch.Tensor, ciphertexts: torch.Tensor) -> BitKey:
    """A BitKey consistent with every known pair, even when they leave several candidates.

    Input bits whose columns agree in every known word have the same candidate set (the output
    positions with that column); they are assigned to it in order. Such a key decrypts every
    word in which those bits agree too, so on real features it is usually as good as the key."""
    candidates = bit_key_candidates(plaintexts, ciphertexts)
    taken: Dict[Tuple[int, ...], int] = {}
    f = []
    for c in candidates:
        group = tuple(c)
        f.append(c[taken.get(group, 0)])
        taken[group] = taken.get(group, 0) + 1
    return BitKey(f)
