"""Input transforms SHF, NP and FFX: flatten order, round trips, format preservation."""

import pytest
import torch

import featperm
from featperm.reference import block_shuffle_reference
from featperm.transforms import FFX, FFXKey, NegativePositive, NPKey

from tests.test_block_shuffle import paper_block_shuffle


def image_batch(seed=0, n=2, size=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_shf_is_the_block_shuffle_on_images():
    shf = featperm.transforms.BlockPixelShuffle.generate(block_size=4)
    x = image_batch().float() / 255
    y = shf(x)
    assert torch.equal(y, paper_block_shuffle(x, shf.key.permutation(), 4))
    assert torch.equal(shf.inverse(y), x)
    single = x[0]
    assert torch.equal(shf(single), y[0]) and torch.equal(shf.inverse(shf(single)), single)
    u8 = image_batch()
    assert torch.equal(shf.inverse(shf(u8)), u8)
    assert repr(shf) == "BlockPixelShuffle(channels=3, block_size=4)"


def paper_np(x, mask, m, top=1):
    """NP written out: in each block flattened in (row, column, channel) order, positions with
    mask set become top - x."""
    n, c, h, w = x.shape
    out = x.clone()
    for k in range(c * m * m):
        if mask[k]:
            r, col, ch = k // (m * c), (k // c) % m, k % c
            out[:, ch, r::m, col::m] = top - x[:, ch, r::m, col::m]
    return out


def test_np_matches_the_flatten_order_round_trips_and_preserves_the_range():
    np_ = NegativePositive.generate(block_size=2)
    x = image_batch(1).float() / 255
    y = np_(x)
    assert torch.equal(y, paper_np(x, np_.key.mask(), 2))
    assert not torch.equal(y, x) or not bool(np_.key.mask().any())
    assert bool((y >= 0).all() and (y <= 1).all())
    # 1 - (1 - x) rounds in floating point; exact on 8-bit pixels below.
    assert torch.allclose(np_.inverse(y), x, rtol=0, atol=1e-6)
    u8 = image_batch(2)
    y8 = np_(u8)
    assert y8.dtype == torch.uint8
    assert torch.equal(y8, paper_np(u8, np_.key.mask(), 2, top=255))
    assert torch.equal(np_.inverse(y8), u8)


def test_np_negates_exactly_the_key_positions():
    mask = torch.zeros(12, dtype=torch.bool)
    mask[[0, 5, 11]] = True  # k = (r*M + c)*C + ch: (0,0,0), (0,1,2), (1,1,2)
    x = torch.full((1, 3, 2, 2), 0.25)
    y = NegativePositive(NPKey(mask, channels=3, block_size=2))(x)
    negated = (y == 0.75).nonzero().tolist()
    assert negated == [[0, 0, 0, 0], [0, 2, 0, 1], [0, 2, 1, 1]]  # (n, ch, row, column)


def test_np_key():
    key = NPKey.generate(channels=3, block_size=4)
    assert key.mask().dtype == torch.bool and key.mask().shape == (48,)
    assert repr(key) == "NPKey(channels=3, block_size=4)"
    with pytest.raises(ValueError, match=r"shape \(C\*M\*M,\) = \(12,\)"):
        NPKey([1, 0], channels=3, block_size=2)
    with pytest.raises(ValueError, match="bool"):
        NPKey([2] * 12, channels=3, block_size=2)


def test_ffx_is_format_preserving_and_invertible():
    ffx = FFX.generate(block_size=2)
    tables = ffx.key.tables()
    assert tables.shape == (12, 256) and tables.dtype == torch.uint8
    # Every position's cipher is a permutation of 0..255: valid pixels in, valid pixels out.
    assert torch.equal(torch.sort(tables.to(torch.int64), dim=1).values, torch.arange(256).expand(12, 256))
    assert not torch.equal(tables[0], torch.arange(256, dtype=torch.uint8))
    u8 = image_batch(3)
    y = ffx(u8)
    assert y.dtype == torch.uint8 and not torch.equal(y, u8)
    assert torch.equal(ffx.inverse(y), u8)
    # Position k of each block (flatten order) uses table row k.
    blocks = featperm.ops.to_blocks(u8, 2).to(torch.int64)
    expected = tables.to(torch.int64)[torch.arange(12), blocks]
    assert torch.equal(featperm.ops.to_blocks(y, 2).to(torch.int64), expected)
    x = u8.float() / 255
    yf = ffx(x)
    assert yf.dtype == torch.float32 and bool((yf >= 0).all() and (yf <= 1).all())
    assert torch.equal(yf, y.float() / 255)
    assert torch.equal(ffx.inverse(yf), x)


def test_ffx_keys_differ_and_are_deterministic():
    key = FFXKey.generate(channels=3, block_size=2)
    assert torch.equal(key.tables(), FFXKey(key._secret, channels=3, block_size=2).tables())
    assert not torch.equal(key.tables(), FFXKey.generate(channels=3, block_size=2).tables())
    assert repr(key) == "FFXKey(channels=3, block_size=2, rounds=8)"
    with pytest.raises(ValueError, match="even number"):
        FFXKey(b"\0" * 32, channels=3, block_size=2, rounds=3)


def test_transform_errors():
    shf = featperm.transforms.BlockPixelShuffle.generate(block_size=4)
    with pytest.raises(ValueError, match="block_size 4 must divide H=6"):
        shf(torch.rand(3, 6, 8))
    with pytest.raises(ValueError, match="image has 1 channels, the key is for 3"):
        NegativePositive.generate(block_size=2)(torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match=r"expected an image \(C, H, W\)"):
        FFX.generate(block_size=2)(torch.rand(4, 4))


def test_shf_reference_agrees():
    shf = featperm.transforms.BlockPixelShuffle.generate(block_size=2)
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(shf(x), block_shuffle_reference(x, shf.key.permutation(), 2))
