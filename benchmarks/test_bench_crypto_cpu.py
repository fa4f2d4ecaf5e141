"""CPU benchmarks of featperm's ChaCha20 keystream and Poly1305 (pytest-benchmark; never pass/fail).

Single-threaded (torch.set_num_threads(1)), so that featperm's kernels and OpenSSL's (through
`cryptography`, which is single-threaded) are compared like for like. Each benchmark records its
throughput in GB/s (10^9 bytes of plaintext per second) in ``extra_info``.

    python -m pytest benchmarks/test_bench_crypto_cpu.py --benchmark-only \
        --benchmark-columns=median,ops --benchmark-sort=name

The 1 MiB buffers stay in the L2 cache, so the figures measure the ciphers, not DRAM.
"""

import os

import pytest
import torch

import featperm
from featperm import crypto

SIZES = {"64KiB": 64 << 10, "1MiB": 1 << 20}


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _isa_available(isa: int) -> bool:
    before = featperm.cpu_isa()
    try:
        featperm.cpu_isa(isa)
        return True
    except RuntimeError:
        return False
    finally:
        featperm.cpu_isa(before)


def _record(benchmark, nbytes):
    benchmark.extra_info["bytes"] = nbytes
    benchmark.extra_info["GB/s"] = round(nbytes / benchmark.stats.stats.median / 1e9, 3)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("isa", [0, 1], ids=["portable", "avx512"])
def test_featperm_chacha20_keystream(benchmark, size, isa):
    if not _isa_available(isa):
        pytest.skip("this processor lacks the AVX-512 kernel's features")
    nbytes = SIZES[size]
    data = torch.randint(0, 256, (nbytes,), dtype=torch.uint8)
    key = torch.tensor(list(os.urandom(32)), dtype=torch.uint8)
    nonce = torch.tensor(list(os.urandom(12)), dtype=torch.uint8)
    before = featperm.cpu_isa()
    featperm.cpu_isa(isa)
    try:
        benchmark(torch.ops.featperm.chacha20_xor, data, key, nonce, 1)
    finally:
        featperm.cpu_isa(before)
    _record(benchmark, nbytes)


@pytest.mark.parametrize("size", list(SIZES))
def test_cryptography_chacha20_keystream(benchmark, size):
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    nbytes = SIZES[size]
    data = os.urandom(nbytes)
    out = bytearray(nbytes)
    encryptor = Cipher(algorithms.ChaCha20(os.urandom(32), bytes(16)), None).encryptor()
    benchmark(encryptor.update_into, data, out)  # into a preallocated buffer, like featperm's out
    _record(benchmark, nbytes)


@pytest.mark.parametrize("size", list(SIZES))
def test_featperm_poly1305(benchmark, size):
    nbytes = SIZES[size]
    data = torch.randint(0, 256, (nbytes,), dtype=torch.uint8)
    key = torch.tensor(list(os.urandom(32)), dtype=torch.uint8)
    benchmark(torch.ops.featperm.poly1305_mac, data, key)
    _record(benchmark, nbytes)


@pytest.mark.parametrize("size", list(SIZES))
def test_featperm_aead_encrypt(benchmark, size):
    nbytes = SIZES[size]
    data = torch.randint(0, 256, (nbytes,), dtype=torch.uint8)
    key, nonce = os.urandom(32), os.urandom(12)
    benchmark(crypto.aead_encrypt, data, key, nonce, b"")
    _record(benchmark, nbytes)


@pytest.mark.parametrize("size", list(SIZES))
def test_cryptography_aead_encrypt(benchmark, size):
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    nbytes = SIZES[size]
    data = os.urandom(nbytes)
    aead, nonce = ChaCha20Poly1305(os.urandom(32)), os.urandom(12)
    benchmark(aead.encrypt, nonce, data, b"")
    _record(benchmark, nbytes)


def test_featperm_seal_feature_vector(benchmark):
    x = torch.randn(2048)
    key, nonce = os.urandom(32), os.urandom(12)
    benchmark(featperm.seal, x, key, nonce)
    _record(benchmark, x.numel() * 4)
