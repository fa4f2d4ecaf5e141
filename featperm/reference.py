"""Pure-PyTorch reference implementations: the definitions every kernel is tested against.

Written for obviousness, not speed: one shift-and-mask per bit position. ``shuffle_bits_table``
is the fastest pure-PyTorch formulation we know (byte tables and a gather), the peer that the
benchmarks run under torch.compile.
"""

from __future__ import annotations

import torch

from featperm.bits import integer_view_dtype, word_bits

__all__ = ["shuffle_bits_reference", "unshuffle_bits_reference", "shuffle_bits_table",
           "block_shuffle_reference", "block_unshuffle_reference"]


def _words_as_int64(x: torch.Tensor) -> torch.Tensor:
    """The words of x as non-negative int64 values (the raw 64-bit pattern for 64-bit words)."""
    n = word_bits(x.dtype)
    w = x.view(integer_view_dtype(x.dtype)).to(torch.int64)
    return w if n == 64 else w & ((1 << n) - 1)


def _int64_as_words(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    n = word_bits(dtype)
    int_dtype = integer_view_dtype(dtype)
    if n < 64 and int_dtype != torch.uint8:
        w = torch.where(w >= (1 << (n - 1)), w - (1 << n), w)  # two's complement, exactly
    return w.to(int_dtype).view(dtype)


def _per_word_key(key: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """key (n,) or (N, n) -> (n, N or 1, 1, ...) broadcastable against x's words."""
    key = torch.as_tensor(key, dtype=torch.int64, device=x.device)
    if key.dim() == 1:
        return key.reshape((-1,) + (1,) * x.dim())
    return key.t().reshape((key.shape[1], key.shape[0]) + (1,) * (x.dim() - 1))


def shuffle_bits_reference(x: torch.Tensor, key, inverse: bool = False) -> torch.Tensor:
    """Output bit f(i) = input bit i for every word (f^-1 when ``inverse``)."""
    n = word_bits(x.dtype)
    f = _per_word_key(key, x)
    if inverse:
        inv = torch.empty_like(f)
        inv.scatter_(0, f, torch.arange(n, device=x.device).reshape((n,) + (1,) * (f.dim() - 1)).expand_as(f))
        f = inv
    w = _words_as_int64(x)
    out = torch.zeros_like(w)
    for i in range(n):
        out |= ((w >> i) & 1) << f[i]
    return _int64_as_words(out, x.dtype)


def unshuffle_bits_reference(y: torch.Tensor, key) -> torch.Tensor:
    return shuffle_bits_reference(y, key, inverse=True)


def byte_tables(key: torch.Tensor) -> torch.Tensor:
    """(n/8 * 256,) int64 table for one key: entry [c*256 + v] = contribution of byte c = v."""
    key = torch.as_tensor(key, dtype=torch.int64).reshape(-1)
    n = key.numel()
    values = torch.arange(256, dtype=torch.int64)
    table = torch.zeros(n // 8, 256, dtype=torch.int64)
    for c in range(n // 8):
        for b in range(8):
            table[c] |= ((values >> b) & 1) << key[8 * c + b]
    return table.reshape(-1)


def shuffle_bits_table(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """ShuffleBits as byte-table lookups (table from :func:`byte_tables`, on x's device).

    The contributions of different bytes occupy disjoint bits, so their sum is their OR."""
    n = word_bits(x.dtype)
    nbytes = n // 8
    b = x.reshape(-1).view(torch.uint8).reshape(-1, nbytes).to(torch.int64)
    offsets = torch.arange(nbytes, device=x.device, dtype=torch.int64) * 256
    w = table[b + offsets].sum(dim=1)
    return _int64_as_words(w, x.dtype).reshape(x.shape)


# -- block-wise feature-map shuffle (AprilPyone & Kiya 2021) ------------------------------------

def block_shuffle_reference(x: torch.Tensor, key, block_size: int, inverse: bool = False) -> torch.Tensor:
    """Block shuffle as view/permute/index_select/permute: out_block[k] = x_block[v[k]] with
    k = (r*M + c)*C + ch (``inverse``: out_block[v[k]] = x_block[k]). Also the pure-PyTorch peer
    that the benchmarks run eagerly and under torch.compile. Returns a contiguous tensor."""
    n, c, h, w = x.shape
    m = int(block_size)
    v = torch.as_tensor(key, dtype=torch.int64, device=x.device).reshape(-1)
    if inverse:
        v = torch.empty_like(v).scatter_(0, v, torch.arange(v.numel(), device=v.device))
    blocks = x.reshape(n, c, h // m, m, w // m, m).permute(0, 2, 4, 3, 5, 1).reshape(n, h // m, w // m, m * m * c)
    out = blocks.index_select(3, v)
    return out.reshape(n, h // m, w // m, m, m, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, h, w)


def block_unshuffle_reference(y: torch.Tensor, key, block_size: int) -> torch.Tensor:
    return block_shuffle_reference(y, key, block_size, inverse=True)
