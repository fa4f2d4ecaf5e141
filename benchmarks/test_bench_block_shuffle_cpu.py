"""CPU benchmark of the block shuffle against clone() (pytest-benchmark; never pass/fail on time).

    python -m pytest benchmarks/test_bench_block_shuffle_cpu.py --benchmark-columns=median,ops \
        --benchmark-group-by=param:shape,param:fmt

Each case first checks the result against the pure-PyTorch reference, then times one call.
Single-threaded (torch.set_num_threads(1)) by default so the figures do not depend on how busy a
shared machine is; set FEATPERM_BENCH_THREADS to change it. extra_info holds GB/s, counting one
read and one write of the tensor, as for clone().
"""

import os

import pytest
import torch

import featperm
from featperm.reference import block_shuffle_reference

SHAPES = {"256x64x32x32": (256, 64, 32, 32), "64x256x64x64": (64, 256, 64, 64), "128x512x8x8": (128, 512, 8, 8)}
# The GPU shapes are 64-256 MiB; on a CPU a quarter of the batch keeps a run short.
CPU_BATCH_DIVISOR = 4


@pytest.fixture(autouse=True)
def threads():
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("FEATPERM_BENCH_THREADS", "1")))
    yield
    torch.set_num_threads(before)


def make_input(shape, fmt):
    n, c, h, w = shape
    x = torch.randn(max(1, n // CPU_BATCH_DIVISOR), c, h, w)
    return x.contiguous(memory_format=torch.channels_last if fmt == "channels_last" else torch.contiguous_format)


def record(benchmark, x):
    benchmark.extra_info["MiB"] = x.numel() * x.element_size() / 2**20
    stats = benchmark.stats.stats if hasattr(benchmark.stats, "stats") else benchmark.stats
    benchmark.extra_info["GB/s"] = round(2 * x.numel() * x.element_size() / stats.median / 1e9, 2)


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_clone(benchmark, shape, fmt):
    x = make_input(SHAPES[shape], fmt)
    benchmark(x.clone)
    record(benchmark, x)


@pytest.mark.parametrize("op", ["block_shuffle", "block_unshuffle", "block_shuffle_"])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_block_shuffle(benchmark, shape, fmt, m, op):
    x = make_input(SHAPES[shape], fmt)
    key = featperm.BlockKey.generate(channels=x.shape[1], block_size=m)
    inverse = op == "block_unshuffle"
    expected = block_shuffle_reference(x, key.permutation(), m, inverse=inverse)
    if op == "block_shuffle_":
        y = x.clone()
        featperm.block_shuffle_(y, key)
        assert torch.equal(y, expected)
        fn = lambda: featperm.block_shuffle_(x, key)  # noqa: E731  (x cycles through keyed states)
    else:
        fn = lambda: getattr(featperm, op)(x, key)  # noqa: E731
        assert torch.equal(fn(), expected)
    benchmark(fn)
    record(benchmark, x)
