"""CPU benchmarks of featperm's ChaCha20 keystream and Poly1305 (pytest-benchmark; never pass/fail).

Single-threaded (torch.set_num_threads(1)), so that featperm's kernels and OpenSSL's (through
`cryptography`, which is single-threaded) are compared like for like. Each benchmark records its
throughput in GB/s (10^9 bytes of plaintext per second) in ``extra_info``.

    python -m pytest benchmarks/test_bench_crypto_cpu.py --benchmark-only \
        --benchmark-columns=median,ops --benchmark-sort=name [--benchmark-json results.json]

The 1 MiB buffers stay in the L2 cache, so the figures measure the ciphers, not DRAM; at 8 KiB
(one 2048-float feature vector) the fixed cost of a call dominates. The
ChaCha20 and Poly1305 kernels are timed in each of their variants (featperm.ops.use_cpu_kernels);
the AEAD and seal benchmarks use the best variants this processor runs. `featperm bench` runs this
file and keeps the JSON (featperm/bench.py).

Two groups time what the CUDA sealing path costs on the host (docs/crypto.md, "Sealing a CUDA
tensor"): the host-side steps of a 64 MiB container, and the host-side part of sealing one
2048-float vector (``featperm.crypto.host_transfer.seal_to_host`` run on a CPU tensor, the same
steps as for a CUDA tensor with unpinned memory) with its largest pieces.
"""

import ctypes
import os

import pytest
import torch

import featperm
from featperm import crypto

SIZES = {"8KiB": 8 << 10, "64KiB": 64 << 10, "1MiB": 1 << 20}  # 8 KiB: one 2048-float vector


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _variant_params(kernel):
    """Every variant of a CPU kernel (featperm.ops.VECTOR_VARIANTS); those this processor cannot
    run are skipped, visibly."""
    return ["portable", featperm.ops.VECTOR_VARIANTS[kernel]]


def _require(kernel, variant):
    if variant not in featperm.ops.cpu_kernel_variants()[kernel]:
        pytest.skip(f"this processor cannot run the {variant} variant of {kernel}")


def _record(benchmark, nbytes):
    benchmark.extra_info["bytes"] = nbytes
    if benchmark.stats is None:  # --benchmark-disable: the body ran once, untimed
        return
    benchmark.extra_info["GB/s"] = round(nbytes / benchmark.stats.stats.median / 1e9, 3)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("variant", _variant_params("chacha20"))
def test_featperm_chacha20_keystream(benchmark, size, variant):
    _require("chacha20", variant)
    nbytes = SIZES[size]
    data = torch.randint(0, 256, (nbytes,), dtype=torch.uint8)
    key = torch.tensor(list(os.urandom(32)), dtype=torch.uint8)
    nonce = torch.tensor(list(os.urandom(12)), dtype=torch.uint8)
    with featperm.ops.use_cpu_kernels(chacha20=variant):
        benchmark(torch.ops.featperm.chacha20_xor, data, key, nonce, 1)
    benchmark.extra_info["kernel_variant"] = variant
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
@pytest.mark.parametrize("variant", _variant_params("poly1305"))
def test_featperm_poly1305(benchmark, size, variant):
    _require("poly1305", variant)
    nbytes = SIZES[size]
    data = torch.randint(0, 256, (nbytes,), dtype=torch.uint8)
    key = torch.tensor(list(os.urandom(32)), dtype=torch.uint8)
    with featperm.ops.use_cpu_kernels(poly1305=variant):
        benchmark(torch.ops.featperm.poly1305_mac, data, key)
    benchmark.extra_info["kernel_variant"] = variant
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


# -- what the CUDA sealing path costs on the host ----------------------------------------------

MiB64 = 64 << 20


def _host_steps():
    src = torch.empty(MiB64, dtype=torch.uint8).fill_(1)
    dst = torch.empty(MiB64, dtype=torch.uint8).fill_(2)
    view = memoryview(src.numpy())
    return {
        "bytearray": lambda: bytearray(MiB64),  # zero-filled, first-touch page faults
        "torch.empty": lambda: torch.empty(MiB64, dtype=torch.uint8),
        "torch.empty+fill_": lambda: torch.empty(MiB64, dtype=torch.uint8).fill_(0),
        "memoryview-of-numpy": lambda: memoryview(torch.empty(MiB64 + 20, dtype=torch.uint8)[20:].numpy()),
        "memcpy-between-touched-buffers": lambda: ctypes.memmove(dst.data_ptr(), src.data_ptr(), MiB64),
        "bytes-of-memoryview": lambda: bytes(view),
    }


@pytest.mark.parametrize("step", list(_host_steps()))
def test_host_step_64mib(benchmark, step):
    benchmark.group = "host-side steps, 64 MiB"
    benchmark(_host_steps()[step])
    _record(benchmark, MiB64)


def _vector_pieces():
    from featperm.crypto import aead, host_transfer
    from featperm.crypto.sealed import sealed_header, tensor_bytes

    x = torch.randn(2048)
    key_b, nonce_b = os.urandom(32), os.urandom(12)
    key_t, nonce_t = aead.key_tensor(key_b, x.device), aead.nonce_tensor(nonce_b)
    header = sealed_header(x.dtype, x.shape)
    plain = tensor_bytes(x)
    ct = torch.ops.featperm.chacha20_xor(plain, key_t, nonce_t, 1)
    otk = aead.one_time_key(key_t, nonce_t)
    aad_t = aead.host_bytes_tensor(header, "aad")
    body = len(header) + aead.NONCE_BYTES
    total = body + plain.numel() + aead.TAG_BYTES
    return {
        "seal_to_host-on-a-CPU-tensor": lambda: host_transfer.seal_to_host(plain, key_t, nonce_t, header, header,
                                                                           nonce_b),
        "keystream-op": lambda: torch.ops.featperm.chacha20_xor(plain, key_t, nonce_t, 1),
        "poly1305-tag-on-host": lambda: aead.compute_tag(aad_t, ct, otk),
        "one-time-key": lambda: aead.one_time_key(key_t, nonce_t),
        "container-allocation": lambda: host_transfer.container_tensor(total, body, pin_memory=False),
    }


@pytest.mark.parametrize("piece", list(_vector_pieces()))
def test_seal_vector_host_side(benchmark, piece):
    benchmark.group = "host side of sealing one 2048-float vector (8 KiB)"
    benchmark(_vector_pieces()[piece])
    _record(benchmark, 8192)
