"""GPU benchmark of featperm's ChaCha20-Poly1305 (not a test).

1. Correctness first: the CUDA keystream, AEAD (ciphertext + tag) and a sealed CUDA tensor are checked against
   `cryptography` (OpenSSL) when it is importable, else against featperm's CPU kernels.
2. Keystream XOR throughput on the GPU (CUDA events, warm-up, median of many; round-robin with
   clone() of the same bytes as the memory-bandwidth yardstick), for 1, 64 and 256 MiB.
   GB/s counts plaintext bytes (10^9 per second); the kernel moves twice that through memory.
3. End-to-end sealing of a 64 MiB CUDA tensor until ciphertext and tag are in host memory
   (featperm.seal), next to the common alternative: copy the plaintext to the host and encrypt it
   there with `cryptography` (or, without it, featperm's CPU path). Wall clock, median. Also the
   parts of featperm.seal, and aead_encrypt on the GPU (ciphertext stays on the device).
4. Latency of sealing one 2048-float feature vector on the GPU, next to copy + `cryptography`.

    python benchmarks/bench_crypto_gpu.py [--out results.json] [--reps 50]
"""

import argparse
import datetime
import json
import os
import statistics
import time

import torch

import featperm
from featperm import crypto
from timing import time_round_robin, wall_times_round_robin

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # the GPU machine may not have it
    HAVE_CRYPTOGRAPHY = False

MiB = 1 << 20


def u8(data: bytes, device="cpu") -> torch.Tensor:
    if not data:  # torch.frombuffer refuses an empty buffer on torch 2.11
        return torch.empty(0, dtype=torch.uint8, device=device)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)


def median_wall_ms(fns, reps, warmup=2):
    """Median wall-clock milliseconds of callables that end on the host (synchronous)."""
    times = wall_times_round_robin(fns, reps, warmup, sync=torch.cuda.synchronize)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def warm_up_gpu(seconds=1.0):
    a = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            a.clone()
        torch.cuda.synchronize()


def check_correctness(key: bytes, nonce: bytes):
    checked = []
    for nbytes in (1, 63, 64, 65, MiB + 13, 64 * MiB + 5):
        data = os.urandom(nbytes)
        got = torch.ops.featperm.chacha20_xor(u8(data, "cuda"), u8(key), u8(nonce), 1).cpu().numpy().tobytes()
        if HAVE_CRYPTOGRAPHY:
            want = Cipher(algorithms.ChaCha20(key, (1).to_bytes(4, "little") + nonce), None).encryptor().update(data)
        else:
            want = torch.ops.featperm.chacha20_xor(u8(data), u8(key), u8(nonce), 1).numpy().tobytes()
        if got != want:
            raise SystemExit(f"CUDA keystream differs from the reference at {nbytes} bytes")
        ct, tag = crypto.aead_encrypt(u8(data, "cuda"), key, nonce, b"aad")  # tag: Poly1305 on the GPU
        if HAVE_CRYPTOGRAPHY:
            want_sealed = ChaCha20Poly1305(key).encrypt(nonce, data, b"aad")
        else:
            cpu_ct, cpu_tag = crypto.aead_encrypt(u8(data), key, nonce, b"aad")
            want_sealed = cpu_ct.numpy().tobytes() + cpu_tag
        if ct.cpu().numpy().tobytes() + tag != want_sealed:
            raise SystemExit(f"CUDA AEAD (ciphertext + tag) differs from the reference at {nbytes} bytes")
        checked.append(nbytes)
    x = torch.randn(1000, 333, device="cuda")
    sealed = bytes(featperm.seal(x, key, nonce, b"bench"))
    if HAVE_CRYPTOGRAPHY:
        header_len = 8 + 8 * 2
        plain = ChaCha20Poly1305(key).decrypt(sealed[header_len:header_len + 12], sealed[header_len + 12:],
                                              sealed[:header_len] + b"bench")
        ok = plain == x.cpu().numpy().tobytes()
    else:
        ok = bytes(featperm.seal(x.cpu(), key, nonce, b"bench")) == sealed
    if not ok:
        raise SystemExit("sealed CUDA tensor does not match the reference")
    return {"keystream_sizes_checked": checked, "against": "cryptography" if HAVE_CRYPTOGRAPHY else "featperm CPU"}


def bench_keystream(key, nonce, reps):
    rows = []
    key_t, nonce_t = u8(key), u8(nonce)
    for mib in (1, 64, 256):
        n = mib * MiB
        x = torch.randint(0, 256, (n,), dtype=torch.uint8, device="cuda")
        ms = time_round_robin({
            "featperm chacha20_xor": lambda: torch.ops.featperm.chacha20_xor(x, key_t, nonce_t, 1),
            "clone (memory yardstick)": lambda: x.clone(),
        }, reps)
        for name, t in ms.items():
            rows.append({"what": name, "MiB": mib, "ms": t, "plaintext GB/s": n / (t * 1e-3) / 1e9})
        del x
        torch.cuda.empty_cache()
    return rows


def host_baseline(t, key, nonce):
    """The common alternative to sealing on the GPU: copy the plaintext to the host and seal it
    there with `cryptography` (or with featperm's CPU path where `cryptography` is missing)."""
    if HAVE_CRYPTOGRAPHY:
        aead = ChaCha20Poly1305(key)
        return {"copy to host + cryptography ChaCha20Poly1305": lambda: aead.encrypt(nonce, t.cpu().numpy().tobytes(), b"")}
    return {"copy to host + featperm.seal on CPU (no cryptography here)": lambda: featperm.seal(t.cpu(), key, nonce)}


def bench_seal_64mib(key, nonce, reps):
    x = torch.randn(16 * MiB, device="cuda")  # 64 MiB of float32
    n = x.numel() * 4
    key_t, nonce_t = u8(key), u8(nonce)
    fns = {"featperm.seal (GPU keystream, ct+tag to host)": lambda: featperm.seal(x, key, nonce)}
    fns.update(host_baseline(x, key, nonce))
    # Pieces of featperm.seal, to show where the time goes.
    ct = torch.ops.featperm.chacha20_xor(x.view(torch.uint8).reshape(-1), key_t, nonce_t, 1)
    ct_host = ct.cpu()
    otk, no_aad = u8(os.urandom(32)), torch.empty(0, dtype=torch.uint8)
    fns["  part: AEAD tag, chunked Poly1305 on the GPU + join on host"] = \
        lambda: torch.ops.featperm.chacha20_poly1305_tag(no_aad, ct, otk)
    fns["  part: ciphertext device-to-host copy (pageable)"] = lambda: ct.cpu()
    pinned = torch.empty(n, dtype=torch.uint8, pin_memory=True)

    def pinned_copy():
        pinned.copy_(ct, non_blocking=True)
        torch.cuda.current_stream().synchronize()
    fns["  part: ciphertext device-to-host copy into pinned memory (what seal does)"] = pinned_copy
    fns["  (alternative: Poly1305 tag on the host over the copy)"] = \
        lambda: torch.ops.featperm.chacha20_poly1305_tag(no_aad, ct_host, otk)
    fns["aead_encrypt on the GPU (ciphertext stays there, tag to host)"] = \
        lambda: crypto.aead_encrypt(x.view(torch.uint8).reshape(-1), key, nonce)
    ms = median_wall_ms(fns, reps)
    event_ms = time_round_robin({"  part: keystream XOR on GPU": lambda: torch.ops.featperm.chacha20_xor(
        x.view(torch.uint8).reshape(-1), key_t, nonce_t, 1)}, reps)
    ms.update(event_ms)
    return [{"what": name, "MiB": 64, "ms": t, "plaintext GB/s": n / (t * 1e-3) / 1e9} for name, t in ms.items()]


def bench_feature_vector(key, nonce, reps):
    v = torch.randn(2048, device="cuda")
    fns = {"featperm.seal of a 2048-float CUDA vector": lambda: featperm.seal(v, key, nonce)}
    fns.update(host_baseline(v, key, nonce))
    ms = median_wall_ms(fns, reps * 20)
    return [{"what": name, "bytes": 8192, "us": t * 1e3} for name, t in ms.items()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the results as JSON to this path")
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    if not torch.cuda.is_available() or not featperm.has_cuda_kernels():
        raise SystemExit("needs a CUDA GPU and a featperm build with CUDA kernels")

    key, nonce = os.urandom(32), os.urandom(12)
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"cryptography: {'yes' if HAVE_CRYPTOGRAPHY else 'NOT installed (CPU comparisons use featperm CPU)'}, "
          f"host threads: {torch.get_num_threads()}")
    correctness = check_correctness(key, nonce)
    print(f"correctness: CUDA keystream and sealing match {correctness['against']}")
    warm_up_gpu()

    keystream = bench_keystream(key, nonce, args.reps)
    print("\nkeystream XOR on the GPU (CUDA events, median)")
    print(f"{'what':<28} {'MiB':>5} {'ms':>9} {'plaintext GB/s':>15}")
    for r in keystream:
        print(f"{r['what']:<28} {r['MiB']:>5} {r['ms']:>9.4f} {r['plaintext GB/s']:>15.1f}")

    seal_rows = bench_seal_64mib(key, nonce, max(5, args.reps // 5))
    print("\nsealing a 64 MiB CUDA float32 tensor until ciphertext + tag are in host memory (median)")
    print(f"{'what':<62} {'ms':>9} {'plaintext GB/s':>15}")
    for r in seal_rows:
        print(f"{r['what']:<62} {r['ms']:>9.3f} {r['plaintext GB/s']:>15.2f}")

    vector_rows = bench_feature_vector(key, nonce, args.reps)
    print("\nsealing one 2048-float feature vector (wall clock, median)")
    for r in vector_rows:
        print(f"{r['what']:<62} {r['us']:>9.1f} us")

    if args.out:
        with open(args.out, "w") as f:
            json.dump({
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                "cryptography": HAVE_CRYPTOGRAPHY, "host_threads": torch.get_num_threads(),
                "correctness": correctness, "keystream": keystream, "seal_64mib": seal_rows,
                "feature_vector": vector_rows,
            }, f, indent=2)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
