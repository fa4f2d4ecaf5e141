"""Pure-PyTorch reference implementations: the definitions every kernel is tested against.

Written for obviousness, not speed: one shift-and-mask per bit position. ``shuffle_bits_table``
is the fastest pure-PyTorch formulation we know (byte tables and a gather), the peer that the
benchmarks run under torch.compile. Depends on torch and the key layer only (not on the compiled
library), so the references run where the extension is not built.
"""

from __future__ import annotations

import torch

from featperm.keys.bit_key import integer_view_dtype, word_bits

__all__ = [
    "shuffle_bits_reference", "unshuffle_bits_reference", "shuffle_bits_table",
    "block_shuffle_reference", "block_unshuffle_reference",
    "chacha20_quarter_round", "chacha20_block_reference", "chacha20_keystream_reference",
    "chacha20_xor_reference", "poly1305_reference", "chacha20_poly1305_mac_data",
    "chacha20_poly1305_encrypt_reference",
]


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
    """Inverse of :func:`shuffle_bits_reference`: input bit f(i) goes back to bit i."""
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
    """Inverse of :func:`block_shuffle_reference`: out_block[v[k]] = y_block[k]."""
    return block_shuffle_reference(y, key, block_size, inverse=True)

# -- ChaCha20 and Poly1305 (RFC 8439) ------------------------------------------------------------
#
# The definitions the compiled crypto kernels are tested against: the block function and Poly1305
# on Python integers, line by line from RFC 8439 sections 2.1-2.8, and a pure-PyTorch keystream
# (the same block function on int64 tensors, all blocks at once) that is fast enough to check
# megabytes.

_CHACHA_CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
_M32 = 0xFFFFFFFF


def chacha20_quarter_round(a: int, b: int, c: int, d: int):
    """RFC 8439 section 2.1 on Python ints."""
    a = (a + b) & _M32; d ^= a; d = ((d << 16) | (d >> 16)) & _M32
    c = (c + d) & _M32; b ^= c; b = ((b << 12) | (b >> 20)) & _M32
    a = (a + b) & _M32; d ^= a; d = ((d << 8) | (d >> 24)) & _M32
    c = (c + d) & _M32; b ^= c; b = ((b << 7) | (b >> 25)) & _M32
    return a, b, c, d


_QUARTER_ROUNDS = ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                   (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14))


def chacha20_block_reference(key: bytes, counter: int, nonce: bytes) -> bytes:
    """The 64-byte ChaCha20 block (RFC 8439 section 2.3) on Python ints."""
    assert len(key) == 32 and len(nonce) == 12 and 0 <= counter <= _M32
    state = list(_CHACHA_CONSTANTS) + [int.from_bytes(key[4 * i:4 * i + 4], "little") for i in range(8)] \
        + [counter] + [int.from_bytes(nonce[4 * i:4 * i + 4], "little") for i in range(3)]
    x = list(state)
    for _ in range(10):
        for i, j, k, m in _QUARTER_ROUNDS:
            x[i], x[j], x[k], x[m] = chacha20_quarter_round(x[i], x[j], x[k], x[m])
    return b"".join(((x[i] + state[i]) & _M32).to_bytes(4, "little") for i in range(16))


def chacha20_keystream_reference(key: bytes, nonce: bytes, counter: int, nbytes: int,
                                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``nbytes`` bytes of keystream from block ``counter`` as a uint8 tensor, in pure PyTorch:
    the block function on int64 tensors (values kept in [0, 2^32)), every block at once."""
    blocks = (nbytes + 63) // 64
    if counter + blocks > 2**32:
        raise ValueError("keystream would wrap the 32-bit block counter")
    key_words = [int.from_bytes(key[4 * i:4 * i + 4], "little") for i in range(8)]
    nonce_words = [int.from_bytes(nonce[4 * i:4 * i + 4], "little") for i in range(3)]
    ones = torch.ones(blocks, dtype=torch.int64, device=device)
    state = [ones * w for w in _CHACHA_CONSTANTS] + [ones * w for w in key_words] \
        + [torch.arange(counter, counter + blocks, dtype=torch.int64, device=device)] \
        + [ones * w for w in nonce_words]

    def rotl(v, n):
        return ((v << n) | (v >> (32 - n))) & _M32

    x = [s.clone() for s in state]
    for _ in range(10):
        for a, b, c, d in _QUARTER_ROUNDS:
            x[a] = (x[a] + x[b]) & _M32; x[d] = rotl(x[d] ^ x[a], 16)
            x[c] = (x[c] + x[d]) & _M32; x[b] = rotl(x[b] ^ x[c], 12)
            x[a] = (x[a] + x[b]) & _M32; x[d] = rotl(x[d] ^ x[a], 8)
            x[c] = (x[c] + x[d]) & _M32; x[b] = rotl(x[b] ^ x[c], 7)
    words = torch.stack([(x[i] + state[i]) & _M32 for i in range(16)], dim=1)  # (blocks, 16)
    shifts = torch.tensor([0, 8, 16, 24], dtype=torch.int64, device=device)
    stream = ((words.unsqueeze(-1) >> shifts) & 0xFF).to(torch.uint8)  # little-endian bytes
    return stream.reshape(-1)[:nbytes]


def chacha20_xor_reference(data: torch.Tensor, key: bytes, nonce: bytes, counter: int) -> torch.Tensor:
    """RFC 8439 section 2.4 ChaCha20 encryption of a uint8 tensor (any shape), pure PyTorch."""
    flat = data.reshape(-1)
    stream = chacha20_keystream_reference(key, nonce, counter, flat.numel(), data.device)
    return (flat ^ stream).reshape(data.shape)


def poly1305_reference(message: bytes, key: bytes) -> bytes:
    """RFC 8439 section 2.5.1 on Python ints."""
    assert len(key) == 32
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(message), 16):
        chunk = message[i:i + 16]
        acc = ((acc + int.from_bytes(chunk + b"\x01", "little")) * r) % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def chacha20_poly1305_mac_data(aad: bytes, ciphertext: bytes) -> bytes:
    """The Poly1305 input of the AEAD (RFC 8439 section 2.8)."""
    def pad16(b):
        return b"\x00" * (-len(b) % 16)
    return aad + pad16(aad) + ciphertext + pad16(ciphertext) + len(aad).to_bytes(8, "little") \
        + len(ciphertext).to_bytes(8, "little")


def chacha20_poly1305_encrypt_reference(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b""):
    """RFC 8439 section 2.8 AEAD encryption: returns (ciphertext, tag) as bytes."""
    otk = chacha20_block_reference(key, 0, nonce)[:32]
    data = torch.frombuffer(bytearray(plaintext), dtype=torch.uint8) if plaintext else torch.empty(0, dtype=torch.uint8)
    ciphertext = chacha20_xor_reference(data, key, nonce, 1).numpy().tobytes()
    return ciphertext, poly1305_reference(chacha20_poly1305_mac_data(aad, ciphertext), otk)
