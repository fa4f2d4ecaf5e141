"""One rule per mistake (featperm._checks): the same bad argument raises the same exception type
from every entry point of both op families (the Python functions, the in-place forms and the raw
torch.ops), on every device, and the message names the function and the argument."""

import pytest
import torch

import featperm
from tests.conftest import devices

SHUFFLE_BITS_ENTRIES = {
    "shuffle_bits": lambda x, k: featperm.shuffle_bits(x, k),
    "unshuffle_bits": lambda x, k: featperm.unshuffle_bits(x, k),
    "shuffle_bits_": lambda x, k: featperm.shuffle_bits_(x, k),
    "unshuffle_bits_": lambda x, k: featperm.unshuffle_bits_(x, k),
    "torch.ops.featperm.shuffle_bits": lambda x, k: torch.ops.featperm.shuffle_bits(x, k),
    "torch.ops.featperm.unshuffle_bits_": lambda x, k: torch.ops.featperm.unshuffle_bits_(x, k),
}
BLOCK_ENTRIES = {
    "block_shuffle": lambda x, k, m: featperm.block_shuffle(x, k, m),
    "block_unshuffle": lambda x, k, m: featperm.block_unshuffle(x, k, m),
    "block_shuffle_": lambda x, k, m: featperm.block_shuffle_(x, k, m),
    "block_unshuffle_": lambda x, k, m: featperm.block_unshuffle_(x, k, m),
    "torch.ops.featperm.block_shuffle": lambda x, k, m: torch.ops.featperm.block_shuffle(x, k, m),
    "torch.ops.featperm.block_unshuffle_": lambda x, k, m: torch.ops.featperm.block_unshuffle_(x, k, m),
}


def _op_name(entry):
    return entry.rsplit(".", 1)[-1]


# (mistake, make x on device, make key on device, expected exception, message fragment)
BIT_MISTAKES = [
    ("float key", lambda d: torch.randn(4, 8, device=d), lambda d: torch.arange(32, device=d).float(),
     TypeError, "key must be an integer tensor"),
    ("bool key", lambda d: torch.randn(4, 8, device=d), lambda d: torch.ones(32, dtype=torch.bool, device=d),
     TypeError, "key must be an integer tensor"),
    ("unsupported dtype", lambda d: torch.zeros(3, dtype=torch.complex64, device=d), lambda d: torch.arange(64, device=d),
     TypeError, "x has dtype ComplexFloat"),
    ("wrong width", lambda d: torch.randn(4, 8, device=d), lambda d: torch.arange(31, device=d),
     ValueError, "key has 31 positions but x has 32-bit words"),
    ("wrong rows", lambda d: torch.randn(4, 8, device=d), lambda d: torch.arange(32, device=d).repeat(3, 1),
     ValueError, "per-sample key has 3 rows but x has 4 samples"),
    ("wrong shape", lambda d: torch.randn(4, 8, device=d), lambda d: torch.arange(32, device=d).reshape(1, 1, 32),
     ValueError, "key must have shape"),
    ("not a permutation", lambda d: torch.randn(4, 8, device=d), lambda d: torch.zeros(32, dtype=torch.int64),
     ValueError, "not a permutation"),
    ("overlapping x", lambda d: torch.randn(1, 8, device=d).expand(4, 8), lambda d: torch.arange(32, device=d),
     ValueError, "share memory"),
    ("x requires grad", lambda d: torch.randn(4, 8, device=d, requires_grad=True), lambda d: torch.arange(32, device=d),
     ValueError, "requires grad"),
]

BLOCK_MISTAKES = [
    ("float key", lambda d: torch.randn(1, 3, 4, 4, device=d), lambda d: torch.arange(12, device=d).float(), 2,
     TypeError, "key must be an integer tensor"),
    ("bool key", lambda d: torch.randn(1, 1, 4, 4, device=d), lambda d: torch.ones(4, dtype=torch.bool, device=d), 2,
     TypeError, "key must be an integer tensor"),
    ("unsupported dtype", lambda d: torch.zeros(1, 3, 4, 4, dtype=torch.complex128, device=d),
     lambda d: torch.arange(12, device=d), 2, TypeError, "x has dtype ComplexDouble"),
    ("wrong key length", lambda d: torch.randn(1, 4, 4, 4, device=d), lambda d: torch.arange(12, device=d), 2,
     ValueError, r"key must have shape \(C\*M\*M,\)"),
    ("x not 4-D", lambda d: torch.randn(3, 4, 4, device=d), lambda d: torch.arange(12, device=d), 2,
     ValueError, r"x must have shape \(N, C, H, W\)"),
    ("block size does not divide", lambda d: torch.randn(1, 3, 5, 4, device=d), lambda d: torch.arange(12, device=d), 2,
     ValueError, "must divide the height and width"),
    ("block size zero", lambda d: torch.randn(1, 3, 4, 4, device=d), lambda d: torch.arange(12, device=d), 0,
     ValueError, "block_size must be"),
    ("block size huge", lambda d: torch.randn(1, 1, 0, 0, device=d), lambda d: torch.arange(1, device=d), 2**32,
     ValueError, "block_size must be"),
    ("not a permutation", lambda d: torch.randn(1, 3, 4, 4, device=d), lambda d: torch.zeros(12, dtype=torch.int64), 2,
     ValueError, "not a permutation"),
    ("overlapping x", lambda d: torch.randn(1, 3, 4, 1, device=d).expand(1, 3, 4, 4), lambda d: torch.arange(12, device=d),
     2, ValueError, "share memory"),
    ("x requires grad", lambda d: torch.randn(1, 3, 4, 4, device=d, requires_grad=True),
     lambda d: torch.arange(12, device=d), 2, ValueError, "requires grad"),
]


def _applies(entry, mistake):
    in_place = entry.endswith("_")
    if mistake in ("overlapping x", "x requires grad"):
        return in_place  # only the in-place forms refuse these
    return True


def _expect_same_exception(entry, mistake, call, make_x, make_key, device, error, match):
    if not _applies(entry, mistake):
        pytest.skip("the out-of-place op accepts this")
    if mistake == "not a permutation" and entry.startswith("torch.ops") and device != "cpu":
        pytest.skip("the raw op checks host keys only; the Python functions check device keys")
    x, key = make_x(device), make_key(device).to(device)
    with pytest.raises(error, match=match) as raised:
        call(x, key)
    assert type(raised.value) is error
    assert _op_name(entry) in str(raised.value)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("mistake,make_x,make_key,error,match", BIT_MISTAKES, ids=[m[0] for m in BIT_MISTAKES])
@pytest.mark.parametrize("entry", list(SHUFFLE_BITS_ENTRIES))
def test_shuffle_bits_same_mistake_same_exception(entry, mistake, make_x, make_key, error, match, device):
    _expect_same_exception(entry, mistake, SHUFFLE_BITS_ENTRIES[entry], make_x, make_key, device, error, match)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("mistake,make_x,make_key,m,error,match", BLOCK_MISTAKES, ids=[m[0] for m in BLOCK_MISTAKES])
@pytest.mark.parametrize("entry", list(BLOCK_ENTRIES))
def test_block_shuffle_same_mistake_same_exception(entry, mistake, make_x, make_key, m, error, match, device):
    call = lambda x, key: BLOCK_ENTRIES[entry](x, key, m)  # noqa: E731
    _expect_same_exception(entry, mistake, call, make_x, make_key, device, error, match)


@pytest.mark.parametrize("entry", list(SHUFFLE_BITS_ENTRIES) + list(BLOCK_ENTRIES))
def test_a_key_on_another_device_is_refused_by_both_families(entry):
    if not torch.cuda.is_available() or not featperm.has_cuda_kernels():
        pytest.skip("needs a CUDA GPU and featperm's CUDA kernels")
    if entry in SHUFFLE_BITS_ENTRIES:
        call = lambda: SHUFFLE_BITS_ENTRIES[entry](torch.randn(4, 8, device="cuda"), torch.arange(32))  # noqa: E731
    else:
        call = lambda: BLOCK_ENTRIES[entry](torch.randn(1, 3, 4, 4, device="cuda"), torch.arange(12), 2)  # noqa: E731
    with pytest.raises(ValueError, match="key is on cpu but x is on cuda") as raised:
        call()
    assert type(raised.value) is ValueError


def test_key_objects_move_themselves_to_the_device_of_x():
    if not torch.cuda.is_available() or not featperm.has_cuda_kernels():
        pytest.skip("needs a CUDA GPU and featperm's CUDA kernels")
    x = torch.randn(1, 3, 4, 4, device="cuda")
    bit_key, block_key = featperm.BitKey.generate(32), featperm.BlockKey.generate(channels=3, block_size=2)
    assert featperm.unshuffle_bits(featperm.shuffle_bits(x, bit_key), bit_key).equal(x)
    assert featperm.block_unshuffle(featperm.block_shuffle(x, block_key), block_key).equal(x)


def test_the_rules_are_written_down_in_one_place():
    doc = featperm._checks.__doc__
    for rule in ("TypeError", "ValueError", "another device", "share memory"):
        assert rule in doc
