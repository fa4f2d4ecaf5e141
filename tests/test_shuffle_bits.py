"""ShuffleBits: every kernel (CPU table, CPU AVX-512/GFNI, CUDA) against the pure-PyTorch reference."""

import pickle
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import featperm
from featperm.reference import byte_tables, shuffle_bits_reference, shuffle_bits_table, unshuffle_bits_reference
from tests.conftest import CPU_VARIANTS, SUPPORTED_CPU_VARIANTS, devices, needs_cuda, selected_cpu_variants

WORD_DTYPES = [torch.uint8, torch.int8, torch.float16, torch.bfloat16, torch.int16, torch.float32,
               torch.int32, torch.float64, torch.int64]
CPU_ISAS = CPU_VARIANTS["shuffle_bits"]  # byte tables; AVX-512 VBMI + GFNI


@pytest.fixture(params=CPU_ISAS)
def cpu_isa(request):
    """Runs a test once per CPU kernel variant (skipped where the processor lacks it)."""
    with selected_cpu_variants(shuffle_bits=request.param):
        yield request.param


def random_words(shape, dtype, device="cpu", generator=None):
    """Uniformly random bit patterns of dtype's width (NaNs, infinities, subnormals included)."""
    bits = featperm.word_bits(dtype)
    int_dtype = featperm.integer_view_dtype(dtype)
    lo, hi = (0, 256) if int_dtype == torch.uint8 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    w = torch.randint(lo, hi, shape, dtype=int_dtype, generator=generator)
    if bits == 64:  # randint's high bound excludes the top value; flip some to cover all patterns
        w = w ^ torch.randint(0, 2, shape, dtype=torch.int64, generator=generator) << 63
    return w.view(dtype).to(device)


def bits_of(t):
    return t.view(featperm.integer_view_dtype(t.dtype))


def assert_bits_equal(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert torch.equal(bits_of(actual).cpu(), bits_of(expected).cpu())


# --- table-driven exact expectations ------------------------------------------------------------

REVERSE32 = list(range(31, -1, -1))
ROTATE_LEFT_1_32 = [(i + 1) % 32 for i in range(32)]
SWAP_BYTES16 = [(i + 8) % 16 for i in range(16)]

EXACT_CASES = [
    # (dtype, key, input word, expected output word) as unsigned integers
    (torch.float32, REVERSE32, 0x3F800000, 0x000001FC),         # 1.0f bit-reversed
    (torch.float32, ROTATE_LEFT_1_32, 0x80000001, 0x00000003),  # sign bit wraps to bit 0
    (torch.float32, ROTATE_LEFT_1_32, 0x7FC00001, 0xFF800002),  # quiet NaN with payload
    (torch.float32, list(range(32)), 0x7F800001, 0x7F800001),  # identity keeps a signalling NaN
    (torch.float16, SWAP_BYTES16, 0x3C00, 0x003C),              # 1.0h with its bytes swapped
    (torch.bfloat16, SWAP_BYTES16, 0x8000, 0x0080),             # -0.0
    (torch.float64, list(range(63, -1, -1)), 0x3FF0000000000000, 0x0000000000000FFC),
    (torch.float64, [(i + 1) % 64 for i in range(64)], 0x8000000000000000, 0x1),
    (torch.uint8, [7, 6, 5, 4, 3, 2, 1, 0], 0x01, 0x80),
]


def _word_tensor(value, dtype):
    bits = featperm.word_bits(dtype)
    int_dtype = featperm.integer_view_dtype(dtype)
    if int_dtype != torch.uint8 and value >= 2 ** (bits - 1):
        value -= 2 ** bits
    return torch.tensor([value], dtype=int_dtype).view(dtype)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype,key,word,expected", EXACT_CASES)
def test_exact_table(dtype, key, word, expected, device, cpu_isa):
    x = _word_tensor(word, dtype).to(device)
    y = featperm.shuffle_bits(x, key)
    assert_bits_equal(y, _word_tensor(expected, dtype))
    assert_bits_equal(featperm.unshuffle_bits(y, key), x)
    assert_bits_equal(shuffle_bits_reference(x.cpu(), key), _word_tensor(expected, dtype))


# --- against the reference ----------------------------------------------------------------------

@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", WORD_DTYPES)
def test_matches_reference_random_bits(dtype, device, cpu_isa):
    g = torch.Generator().manual_seed(1234)
    # 1000 x 37 words: many 64-byte vectors plus a ragged tail.
    x = random_words((1000, 37), dtype, device, g)
    key = featperm.BitKey.generate(featperm.word_bits(dtype))
    y = featperm.shuffle_bits(x, key)
    assert_bits_equal(y, shuffle_bits_reference(x.cpu(), key.permutation()))
    assert_bits_equal(featperm.unshuffle_bits(y, key), x)
    assert_bits_equal(featperm.unshuffle_bits(x, key), unshuffle_bits_reference(x.cpu(), key.permutation()))


SPECIAL_FLOAT32 = [0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F800000, 0xFF800000,
                   0x7FC00000, 0x7F800001, 0xFFBFFFFF, 0x7FFFFFFF, 0x3F800000, 0x00800000]


@pytest.mark.parametrize("device", devices())
def test_special_values_survive_exactly(device, cpu_isa):
    # Signalling NaNs and NaN payloads are destroyed by a single float cast; the kernels must not.
    x = torch.tensor([v - 2 ** 32 if v >= 2 ** 31 else v for v in SPECIAL_FLOAT32],
                     dtype=torch.int32).view(torch.float32).to(device)
    key = featperm.BitKey.generate(32)
    y = featperm.shuffle_bits(x, key, as_integer=True)
    assert y.dtype == torch.int32
    assert_bits_equal(y, shuffle_bits_reference(x.cpu(), key.permutation()).view(torch.int32))
    back = featperm.unshuffle_bits(y, key, dtype=torch.float32)
    assert back.dtype == torch.float32
    assert_bits_equal(back, x)


def test_ciphertext_survives_serialisation_as_integers(tmp_path):
    x = torch.randn(64, 16)
    key = featperm.BitKey.generate(32)
    y = featperm.shuffle_bits(x, key, as_integer=True)
    torch.save(y, tmp_path / "ct.pt")
    loaded = torch.load(tmp_path / "ct.pt")
    assert_bits_equal(featperm.unshuffle_bits(loaded, key, dtype=torch.float32), x)


# --- property tests -----------------------------------------------------------------------------

@st.composite
def tensors_and_keys(draw, device="cpu"):
    dtype = draw(st.sampled_from(WORD_DTYPES))
    shape = draw(st.lists(st.integers(0, 9), min_size=0, max_size=4))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = random_words(tuple(shape) + (draw(st.integers(1, 40)),), dtype, device, g)
    layout = draw(st.sampled_from(["contiguous", "transposed", "sliced", "offset"]))
    if layout == "transposed":
        x = x.transpose(0, -1)
    elif layout == "sliced":
        x = x[..., ::2]
    elif layout == "offset" and x.numel() > 1:
        x = x.reshape(-1)[1:]
    bits = featperm.word_bits(dtype)
    perm = torch.randperm(bits, generator=g)
    return x, perm


@settings(max_examples=150, deadline=None)
@given(data=tensors_and_keys())
def test_property_round_trip_and_reference(data):
    x, perm = data
    for isa in SUPPORTED_CPU_VARIANTS["shuffle_bits"]:
        with featperm.ops.use_cpu_kernels(shuffle_bits=isa):
            y = featperm.shuffle_bits(x, perm)
            assert y.shape == x.shape
            assert_bits_equal(y, shuffle_bits_reference(x, perm))
            assert_bits_equal(featperm.unshuffle_bits(y, perm), x)
            # in place == out of place, also on strided views
            z = x.clone() if x.is_contiguous() else x.transpose(0, -1).clone().transpose(0, -1)
            if x.dim() == 0:
                z = x.clone()
            featperm.shuffle_bits_(z, perm)
            assert_bits_equal(z, y)
            featperm.unshuffle_bits_(z, perm)
            assert_bits_equal(z, x)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.uint8])
@pytest.mark.parametrize("shape", [(5, 3), (4, 17, 3), (3, 1), (2, 0), (7, 128)])
def test_per_sample_keys_equal_loop_of_single_keys(dtype, shape, device, cpu_isa):
    x = random_words(shape, dtype, device)
    keys = featperm.BitKey.generate(featperm.word_bits(dtype), samples=shape[0])
    y = featperm.shuffle_bits(x, keys)
    perms = keys.permutation()
    for k in range(shape[0]):
        assert_bits_equal(y[k], featperm.shuffle_bits(x[k], perms[k]))
    assert_bits_equal(y, shuffle_bits_reference(x.cpu(), perms))
    assert_bits_equal(featperm.unshuffle_bits(y, keys), x)


@pytest.mark.parametrize("device", devices())
def test_per_sample_keys_on_layouts_where_samples_are_not_contiguous(device, cpu_isa):
    # Six samples of shape (10, 4) laid out so that no sample x[k] is one run of storage beside
    # the next: the kernels must not take the one-pass path, which assigns keys by storage run.
    g = torch.Generator().manual_seed(5)
    keys = featperm.BitKey.generate(32, samples=6)
    perms = keys.permutation()
    views = {
        # samples interleaved with stride 4: storage holds (10, 6, 4)
        "transposed": random_words((10, 6, 4), torch.float32, device, g).transpose(0, 1),
        # every other sample of twelve, and every other row of twenty
        "stepped": random_words((12, 20, 4), torch.float32, device, g)[::2, ::2],
        # the sample dimension innermost (stride 1): storage holds (10, 4, 6)
        "permuted": random_words((10, 4, 6), torch.float32, device, g).permute(2, 0, 1),
    }
    for name, view in views.items():
        assert view.shape == (6, 10, 4), name
        assert not view.is_contiguous(), name
        assert view.stride(0) != 10 * 4, name  # x[k + 1] does not start where x[k] ends
        y = featperm.shuffle_bits(view, keys)
        for k in range(6):
            assert_bits_equal(y[k], featperm.shuffle_bits(view[k].contiguous(), perms[k]))
        assert_bits_equal(y, shuffle_bits_reference(view.cpu(), perms))
        assert_bits_equal(featperm.unshuffle_bits(y, keys), view)
        # in place on the view itself, with the same keys
        before = view.clone()
        assert featperm.shuffle_bits_(view, keys) is view
        assert_bits_equal(view, y)
        featperm.unshuffle_bits_(view, keys)
        assert_bits_equal(view, before)


# --- compatibility with the authors' code -------------------------------------------------------

def authors_shuffle_float32(value_bits: int, index) -> int:
    """Literal transcription of the authors' per-value procedure: an MSB-first binary string of the
    float's bits, rebuilt character by character as out[i] = in[index[i]]."""
    s = format(value_bits, "032b")
    return int("".join(s[index[i]] for i in range(32)), 2)


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(range(32))), st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=20))
def test_reference_index_reproduces_the_authors_ciphertext(index, words):
    key = featperm.BitKey.from_reference_index(index)
    x = torch.tensor([w - 2 ** 32 if w >= 2 ** 31 else w for w in words], dtype=torch.int32).view(torch.float32)
    y = featperm.shuffle_bits(x, key, as_integer=True)
    expected = [authors_shuffle_float32(w, index) for w in words]
    assert [v & 0xFFFFFFFF for v in y.tolist()] == expected
    assert key.to_reference_index().tolist() == list(index)


def test_reference_index_example_from_struct():
    # The authors take the bits with struct: check our bit numbering against it for 1.5f.
    index = list(range(31, -1, -1))  # string reversal
    (bits,) = struct.unpack("!I", struct.pack("!f", 1.5))
    y = featperm.shuffle_bits(torch.tensor([1.5]), featperm.BitKey.from_reference_index(index), as_integer=True)
    assert y.item() & 0xFFFFFFFF == int(format(bits, "032b")[::-1], 2)


# --- BitKey -------------------------------------------------------------------------------------

def test_bitkey_basics():
    key = featperm.BitKey.generate(32)
    assert key.bits == 32 and key.samples is None
    assert repr(key) == "BitKey(bits=32)"  # the whole repr: no key material
    assert key == featperm.BitKey(key.permutation())
    assert key.inverse().inverse() == key
    x = torch.randn(100)
    assert_bits_equal(featperm.shuffle_bits(featperm.shuffle_bits(x, key), key.inverse()), x)
    assert pickle.loads(pickle.dumps(key)) == key
    keys = featperm.BitKey.generate(16, samples=3)
    assert repr(keys) == "BitKey(bits=16, samples=3)"
    # 20 fresh 32-bit keys are all different (collision chance ~ 20^2 / 32!).
    assert len({tuple(featperm.BitKey.generate(32).permutation().tolist()) for _ in range(20)}) == 20


@pytest.mark.parametrize("bad,error,match", [
    ([0, 1, 2], ValueError, "shape"),
    (list(range(31)) + [0], ValueError, "not a permutation"),
    ([[0.5] * 8], TypeError, "integer"),
    (torch.zeros(0, 32, dtype=torch.int64), ValueError, "at least one row"),
])
def test_bitkey_rejects_bad_keys(bad, error, match):
    with pytest.raises(error, match=match) as raised:
        featperm.BitKey(bad)
    assert type(raised.value) is error  # exactly: a TypeError is not a ValueError here


def test_bitkey_generate_rejects_bad_width():
    with pytest.raises(ValueError, match="bits must be one of"):
        featperm.BitKey.generate(12)


# --- argument errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("device", devices())
def test_errors_name_the_argument(device):
    x = torch.randn(4, 8, device=device)
    arange = lambda n: torch.arange(n, device=device)  # noqa: E731  (keys on x's device)
    with pytest.raises(ValueError, match="key has 16 positions but x has 32-bit words"):
        torch.ops.featperm.shuffle_bits(x, arange(16))
    with pytest.raises(ValueError, match="not a permutation"):
        torch.ops.featperm.shuffle_bits(x.cpu(), torch.zeros(32, dtype=torch.int64))  # host keys only
    with pytest.raises(ValueError, match="not a permutation"):
        featperm.shuffle_bits(x, torch.zeros(32, dtype=torch.int64, device=device))
    with pytest.raises(ValueError, match="per-sample key has 3 rows but x has 4 samples"):
        torch.ops.featperm.shuffle_bits(x, arange(32).repeat(3, 1))
    with pytest.raises(ValueError, match="key must have shape"):
        torch.ops.featperm.shuffle_bits(x, arange(32).reshape(1, 1, 32))
    with pytest.raises(TypeError, match="x has dtype ComplexFloat"):
        torch.ops.featperm.shuffle_bits(torch.zeros(3, dtype=torch.complex64, device=device), arange(64))
    with pytest.raises(TypeError, match="x has dtype Bool"):
        torch.ops.featperm.shuffle_bits(torch.zeros(3, dtype=torch.bool, device=device), arange(8))
    with pytest.raises(TypeError, match="key must be an integer tensor"):
        torch.ops.featperm.shuffle_bits(x, arange(32).float())
    with pytest.raises(ValueError, match="dtype torch.float16 has 16-bit words"):
        featperm.unshuffle_bits(x, torch.arange(32), dtype=torch.float16)
    if device != "cpu":
        with pytest.raises(ValueError, match="key is on cpu but x is on cuda"):
            torch.ops.featperm.shuffle_bits(x, torch.arange(32))


def test_in_place_errors():
    x = torch.randn(4, 8, requires_grad=True)
    with pytest.raises(ValueError, match="requires grad"):
        featperm.shuffle_bits_(x, torch.arange(32))
    expanded = torch.randn(1, 8).expand(4, 8)
    with pytest.raises(ValueError, match="share memory"):
        featperm.shuffle_bits_(expanded, torch.arange(32))


# Views of a (12, 7) tensor that the in-place ops accept: no two elements share memory.
IN_PLACE_VIEWS = {
    "rows_step_3": lambda t: t[::3],              # rows apart: not dense
    "first_3_columns": lambda t: t[:, :3],        # short rows of unit stride, not adjacent
    "transposed": lambda t: t.t(),                # dense, in another order
    "transposed_step_2": lambda t: t.t()[::2],    # neither
}


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16, torch.bfloat16, torch.float32,
                                   torch.int32, torch.float64, torch.int64], ids=str)
@pytest.mark.parametrize("view_name", list(IN_PLACE_VIEWS))
@pytest.mark.parametrize("per_sample", [False, True], ids=["one_key", "per_sample_keys"])
def test_in_place_on_views_changes_exactly_the_view(view_name, dtype, per_sample, device, cpu_isa):
    make_view = IN_PLACE_VIEWS[view_name]
    base = random_words((12, 7), dtype, device, torch.Generator().manual_seed(17))
    original = base.clone()
    view = make_view(base)
    assert view.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()  # a view of base
    bits = featperm.word_bits(dtype)
    key = featperm.BitKey.generate(bits, samples=view.shape[0] if per_sample else None)
    expected = featperm.shuffle_bits(view, key)  # out of place
    assert_bits_equal(expected, shuffle_bits_reference(view.cpu(), key.permutation()))
    outside = torch.ones(base.shape, dtype=torch.bool, device=device)
    make_view(outside).fill_(False)

    assert featperm.shuffle_bits_(view, key) is view
    assert_bits_equal(view, expected)
    assert torch.equal(bits_of(base)[outside], bits_of(original)[outside])
    assert featperm.unshuffle_bits_(view, key) is view
    assert_bits_equal(base, original)


def test_in_place_refuses_overlapping_unfold_windows():
    # Windows of 16 every 8 elements: each element but the first and last 8 is in two windows.
    x = torch.arange(40.0)
    windows = x.unfold(0, 16, 8)
    assert windows.shape == (4, 16) and windows.stride() == (8, 1)
    for op in (featperm.shuffle_bits_, featperm.unshuffle_bits_):
        with pytest.raises(ValueError, match="share memory"):
            op(windows, featperm.BitKey.generate(32))
    assert torch.equal(x, torch.arange(40.0))  # refused before anything was written


def test_no_gradient_and_a_clear_error_when_asked_for_one():
    key = featperm.BitKey.generate(32)
    x = torch.randn(4, 8, requires_grad=True)
    y = featperm.shuffle_bits(x, key)  # the forward pass works on inputs that require grad
    assert_bits_equal(y.detach(), featperm.shuffle_bits(x.detach(), key))
    with pytest.raises(RuntimeError, match="derivative for featperm::shuffle_bits is not implemented"):
        y.sum().backward()


# --- sizes, devices, compile, graphs ------------------------------------------------------------

@pytest.mark.parametrize("device", devices())
def test_empty_and_scalar(device):
    key = featperm.BitKey.generate(32)
    for x in (torch.empty(0, device=device), torch.empty(3, 0, 5, device=device), torch.tensor(1.5, device=device)):
        y = featperm.shuffle_bits(x, key)
        assert y.shape == x.shape
        assert_bits_equal(featperm.unshuffle_bits(y, key), x)


@pytest.mark.parametrize("device", devices())
def test_channels_last_keeps_strides(device):
    x = torch.randn(2, 3, 4, 5, device=device).to(memory_format=torch.channels_last)
    y = featperm.shuffle_bits(x, featperm.BitKey.generate(32))
    assert y.stride() == x.stride()


def test_more_than_2_31_elements_cpu(cpu_isa):
    # 64-bit indexing: 2^31 + 4099 one-byte words, permuted in place; check both ends.
    n = 2 ** 31 + 4099
    x = torch.empty(n, dtype=torch.uint8)
    head = torch.randint(0, 256, (4096,), dtype=torch.uint8)
    tail = torch.randint(0, 256, (8192,), dtype=torch.uint8)
    x[:4096] = head
    x[-8192:] = tail
    key = featperm.BitKey.generate(8)
    featperm.shuffle_bits_(x, key)
    assert_bits_equal(x[:4096], shuffle_bits_reference(head, key.permutation()))
    assert_bits_equal(x[-8192:], shuffle_bits_reference(tail, key.permutation()))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("op", ["shuffle_bits", "unshuffle_bits", "shuffle_bits_", "unshuffle_bits_"])
def test_opcheck(op, device):
    # Integer words: opcheck compares outputs with assert_close, for which NaN != NaN, and float
    # ciphertext is often NaN. The kernels are the same for every dtype of a width.
    key = featperm.BitKey.generate(32)
    samples = [
        (random_words((8, 33), torch.int32, device), key.tensor(device)),
        (random_words((6, 5), torch.int32, device).t(), key.tensor(device)),
        (random_words((4, 7), torch.int32, device), featperm.BitKey.generate(32, samples=4).tensor(device)),
        (random_words((3, 9), torch.int64, device), featperm.BitKey.generate(64).tensor(device)),
        (random_words((3, 9), torch.int16, device), featperm.BitKey.generate(16).tensor(device)),
    ]
    for args in samples:
        torch.library.opcheck(getattr(torch.ops.featperm, op), args)


@pytest.mark.parametrize("device", devices())
def test_torch_compile_fullgraph(device):
    key = featperm.BitKey.generate(32)
    key_t = key.tensor(device)

    def pipeline(x):
        y = featperm.shuffle_bits(torch.relu(x) * 2, key_t)
        return featperm.unshuffle_bits(y, key_t) + 1

    compiled = torch.compile(pipeline, fullgraph=True, backend="aot_eager" if device == "cpu" else "inductor")
    x = torch.randn(16, 40, device=device)
    assert torch.equal(compiled(x), torch.relu(x) * 2 + 1)


def test_torch_export():
    key = featperm.BitKey.generate(32)

    class Encrypt(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("key", key.tensor(), persistent=False)

        def forward(self, x):
            return torch.ops.featperm.shuffle_bits(x, self.key)

    ep = torch.export.export(Encrypt(), (torch.randn(4, 8),))
    assert "featperm.shuffle_bits" in str(ep.graph)
    x = torch.randn(4, 8)
    assert_bits_equal(ep.module()(x), featperm.shuffle_bits(x, key))


@needs_cuda
def test_cuda_matches_cpu_all_dtypes():
    for dtype in WORD_DTYPES:
        x = random_words((333, 65), dtype)
        key = featperm.BitKey.generate(featperm.word_bits(dtype), samples=333)
        assert_bits_equal(featperm.shuffle_bits(x.cuda(), key), featperm.shuffle_bits(x, key))
        single = featperm.BitKey.generate(featperm.word_bits(dtype))
        assert_bits_equal(featperm.unshuffle_bits(x.cuda(), single), featperm.unshuffle_bits(x, single))


@needs_cuda
def test_cuda_unaligned_and_mismatched_alignment():
    key = featperm.BitKey.generate(16)
    base = random_words((10000,), torch.float16, "cuda")
    for src_off, dst_off in [(1, 1), (3, 0), (0, 5), (7, 7)]:
        src = base[src_off:src_off + 4001]
        out = torch.empty(4100, dtype=torch.float16, device="cuda")[dst_off:dst_off + 4001]
        out.copy_(src)
        featperm.shuffle_bits_(out, key)
        assert_bits_equal(out, shuffle_bits_reference(src.cpu(), key.permutation()))
        assert_bits_equal(featperm.shuffle_bits(src, key), out)


@needs_cuda
def test_cuda_other_device_and_current_stream():
    key = featperm.BitKey.generate(32)
    x = torch.randn(1 << 20, device="cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y = featperm.shuffle_bits(x, key)
    stream.synchronize()
    assert_bits_equal(y, featperm.shuffle_bits(x.cpu(), key))
    if torch.cuda.device_count() > 1:
        x1 = x.to("cuda:1")
        assert_bits_equal(featperm.shuffle_bits(x1, key), featperm.shuffle_bits(x.cpu(), key))


@needs_cuda
def test_cuda_graph_capture():
    key = featperm.BitKey.generate(32, samples=8)
    x = torch.randn(8, 4096, device="cuda")
    key_t = key.tensor("cuda")  # cached on the device before capture: no copy inside the graph
    static_out = torch.empty_like(x)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):  # warm-up outside capture
            static_out.copy_(featperm.shuffle_bits(x, key_t))
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out.copy_(featperm.shuffle_bits(x, key))
        featperm.unshuffle_bits_(static_out, key)
        featperm.shuffle_bits_(static_out, key)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    assert_bits_equal(static_out, featperm.shuffle_bits(x.cpu(), key))


@needs_cuda
def test_cuda_more_than_2_31_elements():
    n = 2 ** 31 + 4099
    x = torch.randint(0, 256, (n,), dtype=torch.uint8, device="cuda")
    head, tail = x[:4096].cpu(), x[-8192:].cpu()
    key = featperm.BitKey.generate(8)
    featperm.shuffle_bits_(x, key)
    assert_bits_equal(x[:4096], shuffle_bits_reference(head, key.permutation()))
    assert_bits_equal(x[-8192:], shuffle_bits_reference(tail, key.permutation()))
    del x
    torch.cuda.empty_cache()


# --- the benchmark peer is itself correct ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_table_peer_matches_reference(dtype):
    x = random_words((100, 7), dtype)
    key = featperm.BitKey.generate(featperm.word_bits(dtype))
    assert_bits_equal(shuffle_bits_table(x, byte_tables(key.permutation())), shuffle_bits_reference(x, key.permutation()))
