"""Block-wise feature-map shuffle: kernels against two references, properties, registration."""

import os
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import featperm
from featperm.reference import block_shuffle_reference, block_unshuffle_reference

from tests.conftest import CPU_VARIANTS, devices, needs_cuda, selected_cpu_variants

INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int64]


def paper_block_shuffle(x: torch.Tensor, v, m: int) -> torch.Tensor:
    """The paper's four steps, literally: split x into M x M blocks; flatten each block in
    (row in block, column in block, channel) order; permute it, out[k] = in[v[k]]; put it back."""
    n, c, h, w = x.shape
    v = [int(i) for i in v]
    out = torch.empty_like(x)
    for s in range(n):
        for bi in range(h // m):
            for bj in range(w // m):
                block = x[s, :, bi * m:(bi + 1) * m, bj * m:(bj + 1) * m]        # step 1
                flat = [block[ch, r, col] for r in range(m) for col in range(m) for ch in range(c)]  # step 2
                permuted = [flat[v[k]] for k in range(len(flat))]                  # step 3
                for k, value in enumerate(permuted):                               # step 4
                    r, col, ch = k // (m * c), (k // c) % m, k % c
                    out[s, ch, bi * m + r, bj * m + col] = value
    return out


def bits(t: torch.Tensor) -> torch.Tensor:
    """The bit patterns of t (so that comparisons are bit-exact, NaN payloads included)."""
    return t.contiguous().view(INT_VIEW[t.element_size()])


def random_words(shape, dtype, device="cpu", seed=0) -> torch.Tensor:
    """Random bit patterns of dtype (floats include NaNs, infinities, subnormals)."""
    g = torch.Generator().manual_seed(seed)
    size = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(-2**62, 2**62, shape, generator=g, dtype=torch.int64)
    return raw.to(INT_VIEW[size]).view(dtype).to(device) if size < 8 else raw.view(dtype).to(device)


def as_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# -- references agree with each other and with the kernels --------------------------------------

def test_reference_matches_paper_transcription():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    key = featperm.BlockKey.generate(channels=3, block_size=2)
    v = key.permutation()
    expected = paper_block_shuffle(x, v, 2)
    assert torch.equal(block_shuffle_reference(x, v, 2), expected)
    assert torch.equal(block_unshuffle_reference(expected, v, 2), x)


def test_flatten_order_is_row_column_channel():
    # Key "swap positions 0 and 1": with channel fastest, these are channels 0 and 1 of the
    # block's top-left pixel; every other value stays.
    c, m = 2, 2
    v = list(range(c * m * m))
    v[0], v[1] = 1, 0
    x = torch.arange(1 * c * 4 * 4, dtype=torch.float32).reshape(1, c, 4, 4)
    y = featperm.block_shuffle(x, featperm.BlockKey(v, channels=c, block_size=m))
    expected = x.clone()
    expected[0, 0, ::2, ::2], expected[0, 1, ::2, ::2] = x[0, 1, ::2, ::2], x[0, 0, ::2, ::2]
    assert torch.equal(y, expected)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_match_both_references_bit_exactly(device, channels_last, dtype):
    n, c, m, h, w = 2, 3, 2, 4, 6
    key = featperm.BlockKey.generate(channels=c, block_size=m)
    x = as_format(random_words((n, c, h, w), dtype, device, seed=1), channels_last)
    y = featperm.block_shuffle(x, key)
    assert torch.equal(bits(y.cpu()), bits(paper_block_shuffle(x.cpu(), key.permutation(), m)))
    assert torch.equal(bits(y.cpu()), bits(block_shuffle_reference(x.cpu(), key.permutation(), m)))
    assert torch.equal(bits(featperm.block_unshuffle(x, key).cpu()),
                       bits(block_unshuffle_reference(x.cpu(), key.permutation(), m)))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 3), c=st.integers(1, 9), m=st.integers(1, 4),
       hb=st.integers(1, 3), wb=st.integers(1, 4), dtype=st.sampled_from(DTYPES),
       channels_last=st.booleans(), device=st.sampled_from(devices()), isa=st.sampled_from(CPU_VARIANTS["block_shuffle"]))
def test_property_matches_reference_and_round_trips(data, n, c, m, hb, wb, dtype, channels_last, device, isa):
    with selected_cpu_variants(block_shuffle=isa):  # the CPU kernel variant (no effect on CUDA)
        check_matches_reference_and_round_trips(data, n, c, m, hb, wb, dtype, channels_last, device)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), c=st.integers(1, 40), m=st.sampled_from([1, 2, 4, 8]), hb=st.integers(1, 3),
       wb=st.integers(1, 24), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(["contiguous", "channels_last", "sliced", "strided"]), isa=st.sampled_from(CPU_VARIANTS["block_shuffle"]))
def test_property_cpu_wide_rows_and_views(data, c, m, hb, wb, dtype, layout, isa):
    """The CPU loops on rows up to 24 blocks wide (several 64-byte chunks, with tails), on views
    whose rows are not adjacent (a slice of wider rows) or not unit-stride, in both directions and
    in place, where only the view's elements may change."""
    v = data.draw(st.permutations(range(c * m * m)), label="key")
    key = featperm.BlockKey(v, channels=c, block_size=m)
    shape = (2, c, hb * m, wb * m)
    base = as_format(random_words(shape[:3] + (2 * shape[3],), dtype, seed=c * 10 + m),
                     layout == "channels_last")
    x = {"sliced": base[..., : shape[3]], "strided": base[..., ::2]}.get(layout, base[..., : shape[3]].clone())
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    with selected_cpu_variants(block_shuffle=isa):
        for op, inverse in ((featperm.block_shuffle, False), (featperm.block_unshuffle, True)):
            assert torch.equal(bits(op(x, key)), bits(block_shuffle_reference(x, v, m, inverse=inverse)))
        before, base_before = x.clone(), base.clone()
        featperm.block_shuffle_(x, key)
        assert torch.equal(bits(x), bits(block_shuffle_reference(before, v, m)))
        featperm.block_unshuffle_(x, key)
        assert torch.equal(bits(x), bits(before))
        # For "sliced" and "strided", x is a view of base: the rest of base is untouched (for
        # the other layouts x is a copy and base never changed).
        assert torch.equal(bits(base), bits(base_before))


def check_matches_reference_and_round_trips(data, n, c, m, hb, wb, dtype, channels_last, device):
    v = data.draw(st.permutations(range(c * m * m)), label="key")
    key = featperm.BlockKey(v, channels=c, block_size=m)
    x = as_format(random_words((n, c, hb * m, wb * m), dtype, device, seed=n * 100 + c), channels_last)
    y = featperm.block_shuffle(x, key)
    assert y.stride() == x.stride() and y.dtype == x.dtype and y.device == x.device
    assert torch.equal(bits(y.cpu()), bits(block_shuffle_reference(x.cpu(), key.permutation(), m)))
    # inverse, and the inverse key
    assert torch.equal(bits(featperm.block_unshuffle(y, key)), bits(x))
    assert torch.equal(bits(featperm.block_shuffle(y, key.inverse())), bits(x))
    # in place == out of place, in both directions
    z = x.clone()
    assert featperm.block_shuffle_(z, key) is z
    assert torch.equal(bits(z), bits(y)) and z.stride() == x.stride()
    featperm.block_unshuffle_(z, key)
    assert torch.equal(bits(z), bits(x))


@pytest.mark.parametrize("device", devices())
def test_strided_inputs_without_copy(device):
    key = featperm.BlockKey.generate(channels=4, block_size=2)
    base = torch.randn(2, 4, 6, 12, device=device)
    x = base[:, :, 1:5, ::3]  # non-dense view
    y = featperm.block_shuffle(x, key)
    assert torch.equal(y.cpu(), block_shuffle_reference(x.cpu(), key.permutation(), 2))
    # in place on the view touches exactly the view's elements
    expected = base.clone()
    expected[:, :, 1:5, ::3] = y
    featperm.block_shuffle_(x, key)
    assert torch.equal(base, expected)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("channels_last", [False, True])
def test_large_block_global_memory_path(device, channels_last):
    # C*M*M = 32768 values: more than a thread block's shared memory on any GPU.
    c, m = 2048, 4
    key = featperm.BlockKey.generate(channels=c, block_size=m)
    x = as_format(torch.randn(2, c, 8, 4, device=device), channels_last)
    y = featperm.block_shuffle(x, key)
    assert torch.equal(y.cpu(), block_shuffle_reference(x.cpu(), key.permutation(), m))
    z = x.clone()
    featperm.block_unshuffle_(featperm.block_shuffle_(z, key), key)
    assert torch.equal(z, x)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape, m", [
    ((1, 2048, 2, 40), 2),   # CPU: tiles of 8 blocks along a row of 20, the last one partial
    ((2, 3, 14, 6), 2),      # CPU: one tile of 7 full-width block rows
    ((1, 64, 22, 64), 2),    # CPU: tiles of 8 block rows out of 11, the last one partial
    ((1, 1, 9, 9), 3),       # one channel
])
def test_tile_edges(device, channels_last, shape, m):
    key = featperm.BlockKey.generate(channels=shape[1], block_size=m)
    x = as_format(random_words(shape, torch.float32, device, seed=7), channels_last)
    for op, inverse in ((featperm.block_shuffle, False), (featperm.block_unshuffle, True)):
        expected = block_shuffle_reference(x.cpu(), key.permutation(), m, inverse=inverse)
        assert torch.equal(bits(op(x, key).cpu()), bits(expected))
    z = x.clone()
    featperm.block_shuffle_(z, key)
    assert torch.equal(bits(z.cpu()), bits(block_shuffle_reference(x.cpu(), key.permutation(), m)))
    featperm.block_unshuffle_(z, key)
    assert torch.equal(bits(z), bits(x))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape, m, dtype", [
    ((4, 64, 32, 32), 4, torch.float32),   # CUDA gather: tiles of several blocks, 16-byte runs
    ((2, 256, 8, 8), 4, torch.float32),    # one block per tile (16 KiB), table through L1
    ((2, 5, 12, 12), 3, torch.float32),    # runs of one element (NCHW tile rows of 12 or 3)
    ((2, 8, 16, 48), 2, torch.float16),    # 8-element runs
    ((3, 16, 8, 32), 4, torch.uint8),      # 16-element runs
    ((2, 6, 4, 20), 2, torch.float64),     # 2-element runs, W/M = 10
])
def test_dense_layout_shapes(device, channels_last, shape, m, dtype):
    key = featperm.BlockKey.generate(channels=shape[1], block_size=m)
    x = as_format(random_words(shape, dtype, device, seed=3), channels_last)
    # The same values one element into their storage: dense strides, unaligned data pointer.
    unaligned = torch.empty(x.numel() + 1, dtype=dtype, device=device)[1:].as_strided(x.shape, x.stride())
    unaligned.copy_(x)
    for source in (x, unaligned):
        for op, inverse in ((featperm.block_shuffle, False), (featperm.block_unshuffle, True)):
            expected = block_shuffle_reference(x.cpu(), key.permutation(), m, inverse=inverse)
            assert torch.equal(bits(op(source, key).cpu()), bits(expected))
    z = x.clone()
    featperm.block_unshuffle_(featperm.block_shuffle_(z, key), key)
    assert torch.equal(bits(z), bits(x))


@pytest.mark.parametrize("device", devices())
def test_empty_tensor(device):
    key = featperm.BlockKey.generate(channels=3, block_size=2)
    x = torch.empty(0, 3, 4, 4, device=device)
    assert featperm.block_shuffle(x, key).shape == x.shape
    featperm.block_shuffle_(x, key)


@pytest.fixture(params=CPU_VARIANTS["block_shuffle"])
def cpu_isa(request):
    """Each CPU kernel variant in turn (the AVX-512 one is skipped where the processor lacks it)."""
    with selected_cpu_variants(block_shuffle=request.param):
        yield request.param


# Each case aims at one loop of the CPU kernel (csrc/ops/cpu/block_shuffle_kernel.cpp); with
# AVX-512 VBMI, NCHW rows take the chunked loops, whose piece size is (64 / R bytes) / M for
# R = 64 / row bytes rows packed to a chunk (R = 1 for wide or unpackable rows).
CPU_PATH_CASES = [
    ((2, 16, 8, 8), 2, torch.float32),     # rows of 32 bytes: 2 rows per chunk, pieces of 16 bytes
    ((2, 16, 8, 4), 4, torch.float32),     # rows of 16 bytes: 4 rows per chunk, pieces of 4 bytes
    ((2, 8, 8, 16), 4, torch.uint8),       # 1-byte words, 4 rows per chunk
    ((1, 2, 16, 8), 8, torch.uint8),       # rows of 8 bytes: 8 rows per chunk, pieces of 1 byte
    ((1, 2, 16, 16), 8, torch.uint8),      # pieces of 2 bytes
    ((2, 8, 4, 16), 2, torch.bfloat16),    # 2-byte words, rows of 32 bytes
    ((2, 8, 6, 12), 2, torch.float32),     # rows of 48 bytes: padded to one chunk, a tail each
    ((2, 8, 4, 20), 2, torch.float32),     # rows of 80 bytes: a full chunk and a tail
    ((2, 3, 4, 4), 1, torch.float32),      # M=1: whole chunks (pieces of 64 bytes)
    ((2, 4, 8, 64), 8, torch.float64),     # M=8, 8-byte words: pieces of 8 bytes
    ((1, 2, 32, 32), 16, torch.float32),   # M=16, the largest chunked M for 4-byte words
    ((1, 1, 64, 64), 32, torch.uint8),     # M=32 > 16: portable loops under AVX-512 too
    ((2, 5, 12, 12), 3, torch.float32),    # M=3 does not divide a chunk: portable loops
    ((1, 1024, 4, 48), 4, torch.float32),  # blocks of 64 KiB: 4 per tile, rows split in tiles
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("shape, m, dtype", CPU_PATH_CASES)
def test_cpu_kernel_paths(cpu_isa, shape, m, dtype, channels_last):
    key = featperm.BlockKey.generate(channels=shape[1], block_size=m)
    x = as_format(random_words(shape, dtype, seed=11), channels_last)
    # Also the same values one element into their storage (unaligned rows) and a non-dense view.
    unaligned = torch.empty(x.numel() + 1, dtype=dtype)[1:].as_strided(x.shape, x.stride())
    unaligned.copy_(x)
    wide = as_format(random_words(shape[:3] + (2 * shape[3],), dtype, seed=12), channels_last)
    strided = wide[..., ::2]
    # Rows of unit stride that are not adjacent (a slice of wider rows): packed chunks load each
    # row on its own, and in place the rows do not pack.
    sliced_base = as_format(random_words(shape[:3] + (2 * shape[3],), dtype, seed=13), channels_last)
    sliced = sliced_base[..., : shape[3]]
    for source in (x, unaligned, strided, sliced):
        for op, inverse in ((featperm.block_shuffle, False), (featperm.block_unshuffle, True)):
            expected = block_shuffle_reference(source, key.permutation(), m, inverse=inverse)
            assert torch.equal(bits(op(source, key)), bits(expected))
        before = source.clone()
        featperm.block_shuffle_(source, key)
        assert torch.equal(bits(source), bits(block_shuffle_reference(before, key.permutation(), m)))
        featperm.block_unshuffle_(source, key)
        assert torch.equal(bits(source), bits(before))
    # the in-place ops touched exactly the views' elements
    untouched = {12: wide[..., 1::2], 13: sliced_base[..., shape[3]:]}
    for seed, rest in untouched.items():
        original = as_format(random_words(shape[:3] + (2 * shape[3],), dtype, seed=seed), channels_last)
        assert torch.equal(bits(rest), bits(original[..., 1::2] if seed == 12 else original[..., shape[3]:]))


@needs_cuda
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_equals_cuda(channels_last, dtype):
    # Tiles of several blocks (with a partial last tile), one block per tile in shared memory
    # (above 48 KiB for 8-byte dtypes: C*M*M = 9216), and global-memory staging (C*M*M = 32768).
    for c, m, h, w in [(3, 2, 8, 8), (64, 4, 16, 32), (512, 2, 8, 8), (1024, 3, 3, 6), (2048, 4, 4, 8)]:
        key = featperm.BlockKey.generate(channels=c, block_size=m)
        x = as_format(random_words((2, c, h, w), dtype, seed=c), channels_last)
        for op in (featperm.block_shuffle, featperm.block_unshuffle):
            assert torch.equal(bits(op(x, key)), bits(op(x.cuda(), key).cpu()))
        z = x.cuda()
        featperm.block_shuffle_(z, key)
        assert torch.equal(bits(z.cpu()), bits(featperm.block_shuffle(x, key)))


@needs_cuda
def test_cuda_graph_capture():
    # No host synchronisation and no pageable copies: the ops can be captured and replayed.
    key = featperm.BlockKey.generate(channels=8, block_size=2)
    x = torch.randn(2, 8, 8, 8, device="cuda")
    expected = featperm.block_shuffle(x, key)  # also caches the key's device copy
    static = torch.zeros_like(x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs advises
        featperm.block_shuffle(static, key)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = featperm.block_shuffle(static, key)
        featperm.block_unshuffle_(out, key)
        again = featperm.block_shuffle(out, key)
    static.copy_(x)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, x) and torch.equal(again, expected)


@needs_cuda
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_no_full_size_temporaries(channels_last):
    key = featperm.BlockKey.generate(channels=64, block_size=2)
    x = as_format(torch.randn(16, 64, 32, 32, device="cuda"), channels_last)  # 4 MiB
    featperm.block_shuffle_(x, key)  # warm-up: key copy, allocator
    torch.cuda.synchronize()
    nbytes = x.numel() * x.element_size()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    featperm.block_shuffle_(x, key)
    assert torch.cuda.max_memory_allocated() - base < nbytes // 8  # scratch: C*M*M table entries
    torch.cuda.reset_peak_memory_stats()
    y = featperm.block_shuffle(x, key)
    assert torch.cuda.max_memory_allocated() - base < nbytes + nbytes // 8  # the output, no copy of x
    assert y.stride() == x.stride()


# -- registration: opcheck, autograd, torch.compile, export ------------------------------------

@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck(device, channels_last):
    key = featperm.BlockKey.generate(channels=3, block_size=2).tensor(device)
    for op in (torch.ops.featperm.block_shuffle, torch.ops.featperm.block_unshuffle):
        x = as_format(torch.randn(2, 3, 4, 6, device=device, dtype=torch.float64), channels_last)
        torch.library.opcheck(op.default, (x.requires_grad_(), key, 2))
    for op in (torch.ops.featperm.block_shuffle_, torch.ops.featperm.block_unshuffle_):
        x = as_format(torch.randn(2, 3, 4, 6, device=device), channels_last)
        torch.library.opcheck(op.default, (x, key, 2))


@pytest.mark.parametrize("device", devices())
def test_opcheck_strided_views(device):
    # Non-dense inputs: the fake kernel must predict the real output strides here too.
    key = featperm.BlockKey.generate(channels=3, block_size=2).tensor(device)
    base = torch.randn(2, 3, 6, 12, device=device, dtype=torch.float64)
    views = [base[:, :, 1:5, ::3], base.transpose(2, 3)[:, :, :4, :6],
             base.contiguous(memory_format=torch.channels_last)[:, :, :4, 2:8]]
    for x in views:
        torch.library.opcheck(torch.ops.featperm.block_shuffle.default, (x, key, 2))
        torch.library.opcheck(torch.ops.featperm.block_unshuffle.default, (x, key, 2))


@pytest.mark.parametrize("device", devices())
def test_gradcheck_and_gradgradcheck(device):
    key = featperm.BlockKey.generate(channels=2, block_size=2)
    x = torch.randn(2, 2, 4, 4, device=device, dtype=torch.float64, requires_grad=True)
    for op in (featperm.block_shuffle, featperm.block_unshuffle):
        assert torch.autograd.gradcheck(lambda t: op(t, key), (x,))
        assert torch.autograd.gradgradcheck(lambda t: op(t, key), (x,))


def test_gradient_is_the_inverse_shuffle():
    key = featperm.BlockKey.generate(channels=3, block_size=2)
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    g = torch.randn(1, 3, 4, 4)
    featperm.block_shuffle(x, key).backward(g)
    assert torch.equal(x.grad, featperm.block_unshuffle(g, key))


def test_torch_compile_fullgraph_forward_and_backward():
    key = featperm.BlockKey.generate(channels=4, block_size=2)
    k = key.tensor()

    def f(x):
        return (featperm.block_unshuffle(torch.ops.featperm.block_shuffle(x * 2, k, 2), key) + 1).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 4, 4, 8, requires_grad=True)
    loss = compiled(x)
    loss.backward()
    assert torch.allclose(loss, f(x.detach()))
    assert torch.equal(x.grad, torch.full_like(x, 2.0))

    def g(x):
        y = x.clone()
        torch.ops.featperm.block_shuffle_(y, k, 2)
        return y

    x = torch.randn(2, 4, 4, 8).contiguous(memory_format=torch.channels_last)
    assert torch.equal(torch.compile(g, fullgraph=True, backend="aot_eager")(x),
                       featperm.block_shuffle(x, key))


def test_torch_export():
    key = featperm.BlockKey.generate(channels=3, block_size=2)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("key", key.tensor(), persistent=False)

        def forward(self, x):
            return torch.ops.featperm.block_shuffle(x, self.key, 2)

    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    exported = torch.export.export(M(), (x,))
    y = exported.module()(x)
    assert torch.equal(y, featperm.block_shuffle(x, key))


# -- keys ---------------------------------------------------------------------------------------

def test_block_key():
    key = featperm.BlockKey.generate(channels=5, block_size=3)
    v = key.permutation()
    assert v.dtype == torch.int64 and v.device.type == "cpu" and v.shape == (45,)
    assert torch.equal(torch.sort(v).values, torch.arange(45))
    assert key.channels == 5 and key.block_size == 3
    v[0] = -1  # a copy: the key is unchanged
    assert int(key.permutation()[0]) != -1
    assert key == featperm.BlockKey(key.permutation(), channels=5, block_size=3)
    assert key != key.inverse() or torch.equal(key.permutation(), torch.arange(45))
    assert key.inverse().inverse() == key
    assert repr(key) == "BlockKey(channels=5, block_size=3)"
    assert pickle.loads(pickle.dumps(key)) == key
    assert key.tensor() is key.tensor()
    # Keys differ between draws (45! possibilities; a collision means a broken generator).
    assert featperm.BlockKey.generate(channels=5, block_size=3) != key


def test_block_key_errors():
    with pytest.raises(ValueError, match=r"shape \(channels\*block_size\*\*2,\) = \(12,\)"):
        featperm.BlockKey(list(range(11)), channels=3, block_size=2)
    with pytest.raises(ValueError, match="not a permutation of 0..11"):
        featperm.BlockKey([0] * 12, channels=3, block_size=2)
    with pytest.raises(TypeError, match="integer positions"):
        featperm.BlockKey(torch.arange(12.0), channels=3, block_size=2)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        featperm.BlockKey([], channels=3, block_size=0)


# -- errors -------------------------------------------------------------------------------------

def test_errors_name_the_argument_and_expectation():
    key = featperm.BlockKey.generate(channels=3, block_size=2)
    k = key.tensor()
    with pytest.raises(ValueError, match=r"block_shuffle: x must have shape \(N, C, H, W\)"):
        torch.ops.featperm.block_shuffle(torch.randn(3, 4, 4), k, 2)
    with pytest.raises(ValueError, match="block_size 2 must divide the height and width of x, got H=5, W=4"):
        torch.ops.featperm.block_shuffle(torch.randn(1, 3, 5, 4), k, 2)
    with pytest.raises(ValueError, match=r"key must have shape \(C\*M\*M,\) = \(16,\) for C=4"):
        torch.ops.featperm.block_shuffle(torch.randn(1, 4, 4, 4), k, 2)
    with pytest.raises(ValueError, match=r"block_unshuffle: key is not a permutation of 0..11 \(position 1 holds 0"):
        torch.ops.featperm.block_unshuffle(torch.randn(1, 3, 4, 4), torch.zeros(12, dtype=torch.int64), 2)
    with pytest.raises(TypeError, match="key must be an integer tensor"):
        torch.ops.featperm.block_shuffle(torch.randn(1, 3, 4, 4), k.double(), 2)
    with pytest.raises(TypeError, match="x has dtype ComplexDouble of 16 bytes"):
        torch.ops.featperm.block_shuffle(torch.randn(1, 3, 4, 4, dtype=torch.complex128), k, 2)
    with pytest.raises(ValueError, match="block_shuffle_: x requires grad"):
        torch.ops.featperm.block_shuffle_(torch.randn(1, 3, 4, 4, requires_grad=True), k, 2)
    with pytest.raises(ValueError, match="block_shuffle_: x has elements that share memory"):
        torch.ops.featperm.block_shuffle_(torch.randn(1, 3, 4, 1).expand(1, 3, 4, 4), k, 2)
    with pytest.raises(ValueError, match="x has 4 channels .* but the key is for channels=3"):
        featperm.block_shuffle(torch.randn(1, 4, 4, 4), key)
    with pytest.raises(ValueError, match="block_size=4 disagrees with the key's block_size 2"):
        featperm.block_shuffle(torch.randn(1, 3, 4, 4), key, 4)
    with pytest.raises(TypeError, match="block_size is required"):
        featperm.block_shuffle(torch.randn(1, 3, 4, 4), k)


@needs_cuda
def test_device_errors():
    key = featperm.BlockKey.generate(channels=3, block_size=2)
    with pytest.raises(ValueError, match="key is on cpu but x is on cuda:0"):
        torch.ops.featperm.block_shuffle(torch.randn(1, 3, 4, 4, device="cuda"), key.tensor(), 2)
    with pytest.raises(ValueError, match="block_shuffle: key is not a permutation of 0..11"):
        featperm.block_shuffle(torch.randn(1, 3, 4, 4, device="cuda"),
                               torch.zeros(12, dtype=torch.int64, device="cuda"), 2)


def test_cuda_kernels_registered_when_built():
    # A CUDA build registers the CUDA kernel of every block-shuffle and bit-shuffle op beside the
    # CPU one, and a CPU-only build none of them: has_cuda_kernels() (which asks shuffle_bits)
    # speaks for all eight ops.
    ops = ("block_shuffle", "block_unshuffle", "block_shuffle_", "block_unshuffle_",
           "shuffle_bits", "unshuffle_bits", "shuffle_bits_", "unshuffle_bits_")
    for op in ops:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"featperm::{op}", "CPU"), op
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"featperm::{op}", "CUDA") == \
            featperm.has_cuda_kernels(), op
    # Whoever builds with FEATPERM_CUDA=1 (tools/gpu_check.sh does) and keeps it set for the tests
    # expects the CUDA kernels: a build that silently lost them would otherwise skip every CUDA
    # test and pass. FEATPERM_CUDA=0 promises a CPU-only build.
    configured = os.environ.get("FEATPERM_CUDA", "auto").lower()
    if configured == "1":
        assert featperm.has_cuda_kernels(), "FEATPERM_CUDA=1 but this build has no CUDA kernels"
    elif configured == "0":
        assert not featperm.has_cuda_kernels(), "FEATPERM_CUDA=0 but this build has CUDA kernels"
