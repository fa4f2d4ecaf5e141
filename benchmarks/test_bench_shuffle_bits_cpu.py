"""CPU benchmark of ShuffleBits (pytest-benchmark; not part of the test suite, never pass/fail).

Single thread, 64 MiB of float32, side by side in one run: clone(), featperm (AVX-512/GFNI and
portable table kernels, out of place and in place: every variant of the shuffle_bits CPU kernel
that this processor runs, chosen with featperm.ops.use_cpu_kernels), and the pure-PyTorch byte-table
formulation with a gather. Each variant's output is checked against the per-bit reference before
timing.

    python -m pytest benchmarks/test_bench_shuffle_bits_cpu.py --benchmark-columns=median,ops \
        --benchmark-sort=name [--benchmark-json results.json]

`featperm bench` runs it and keeps the JSON (featperm/bench.py).
"""

import pytest
import torch

import featperm
from featperm.reference import byte_tables, shuffle_bits_reference, shuffle_bits_table

NBYTES = 64 << 20


@pytest.fixture(scope="module")
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(NBYTES // 4, generator=g)
    key = featperm.BitKey.generate(32)
    probe = x[: 1 << 16]
    expected = shuffle_bits_reference(probe, key.permutation())
    yield x, key, probe, expected
    torch.set_num_threads(threads)


def _gbps(benchmark):
    # Bytes read + bytes written per call, over the median time.
    if benchmark.stats is None:  # --benchmark-disable: the body ran once, untimed
        return
    benchmark.extra_info["GB/s"] = round(2 * NBYTES / benchmark.stats.stats.median / 1e9, 2)


# Short names of the CPU kernel's variants (featperm.ops.cpu_kernel_variants()["shuffle_bits"]).
VARIANT_NAMES = {"avx512_vbmi_gfni": "gfni", "portable": "table"}


def _variants():
    # clone() pays page faults on its fresh 64 MiB output, as the out-of-place op does;
    # copy_ into a reused buffer is the memcpy speed that the in-place op competes with.
    out = [("clone", None, None), ("copy_-into-reused-buffer", None, True)]
    for variant in featperm.ops.cpu_kernel_variants()["shuffle_bits"]:
        name = VARIANT_NAMES.get(variant, variant)
        out += [(f"featperm-{name}-out-of-place", variant, False), (f"featperm-{name}-in-place", variant, True)]
    return out


@pytest.mark.parametrize("name,variant,in_place", _variants(), ids=[v[0] for v in _variants()])
def test_shuffle_bits_cpu(benchmark, setup, name, variant, in_place):
    x, key, probe, expected = setup
    benchmark.group = "shuffle_bits float32 64 MiB, 1 thread"
    if variant is None and in_place:
        y = torch.empty_like(x)
        benchmark(y.copy_, x)
    elif variant is None:
        benchmark(x.clone)
    else:
        benchmark.extra_info["kernel_variant"] = variant
        with featperm.ops.use_cpu_kernels(shuffle_bits=variant):
            assert torch.equal(featperm.shuffle_bits(probe, key).view(torch.int32), expected.view(torch.int32))
            y = x.clone()
            fn = (lambda: featperm.shuffle_bits_(y, key)) if in_place else (lambda: featperm.shuffle_bits(x, key))
            benchmark(fn)
    _gbps(benchmark)


def test_pure_pytorch_byte_table_eager(benchmark, setup):
    x, key, probe, expected = setup
    benchmark.group = "shuffle_bits float32 64 MiB, 1 thread"
    table = byte_tables(key.permutation())
    assert torch.equal(shuffle_bits_table(probe, table).view(torch.int32), expected.view(torch.int32))
    benchmark.pedantic(shuffle_bits_table, args=(x, table), rounds=3, iterations=1)
    _gbps(benchmark)
