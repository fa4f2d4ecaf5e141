"""Speed and success of the ciphertext-only attacks on ShuffleBits (featperm.attacks.bit_cryptanalysis).

    python benchmarks/measure_cryptanalysis.py [--vectors 1000] [--dims 256] [--device cpu|cuda] [--out results.json]

Two feature distributions (pooled ReLU features with per-dimension scales and ~20% exact zeros;
signed L2-normalised embeddings). For each:

* single vector under a fresh key (per-request keys): vectors per second of
  ``recover_per_vector_keys`` on ``--vectors`` vectors, timed side by side (round robin) with the
  encryption of the same vectors under per-sample keys (``shuffle_bits``), so the ratio says how
  much more the attack costs than the encryption; and the decryption quality it reaches;
* one fixed key, against the number of intercepted vectors: seconds of ``recover_fixed_key`` and
  the quality (sign and exponent exact, cosine), next to a random key's.

The attacker's reference features (its own plain features) and the victims' are drawn from the
same distribution with different seeds. A measurement, not a test; `featperm bench` runs it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time

import torch

from featperm import BitKey, shuffle_bits, unshuffle_bits
from featperm.attacks import bit_cryptanalysis as crypt
from featperm.bench import cpu_model


def pooled_relu(n, d, generator):
    scale = torch.rand(d, generator=torch.Generator().manual_seed(99)) * 2 + 0.05
    return ((torch.randn(n, d, generator=generator) + 0.8) * scale).relu()


def embedding(n, d, generator):
    mean = torch.randn(d, generator=torch.Generator().manual_seed(98)) * 0.5
    x = torch.randn(n, d, generator=generator) + mean
    return torch.nn.functional.normalize(x, dim=1)


DISTRIBUTIONS = {"pooled ReLU features": pooled_relu, "signed L2-normalised embeddings": embedding}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, reps):
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def measure(draw, args, device):
    reference = draw(4000, torch.Generator().manual_seed(1)).to(device)
    victims = draw(args.vectors, torch.Generator().manual_seed(2)).to(device)
    model = crypt.fit_bit_model(reference)
    out = {}

    keys = BitKey(torch.argsort(torch.rand(args.vectors, 32, generator=torch.Generator().manual_seed(3)), 1))
    cipher = shuffle_bits(victims, keys, as_integer=True)
    encrypt, attack = [], []
    for _ in range(args.reps):  # round robin: drift hits both alike
        encrypt += timed(lambda: shuffle_bits(victims, keys, as_integer=True), device, 1)
        attack += timed(lambda: crypt.recover_per_vector_keys(cipher, model), device, 1)
    recovered = crypt.recover_per_vector_keys(cipher, model)
    quality = crypt.decryption_quality(unshuffle_bits(cipher, recovered, dtype=torch.float32), victims)
    wrong = BitKey(torch.argsort(torch.rand(args.vectors, 32, generator=torch.Generator().manual_seed(4)), 1))
    out["single_vector"] = {
        "vectors": args.vectors,
        "attack_seconds_median": statistics.median(attack),
        "vectors_per_second": args.vectors / statistics.median(attack),
        "encrypt_seconds_median": statistics.median(encrypt),
        "attack_over_encrypt": statistics.median(attack) / statistics.median(encrypt),
        "key_positions_recovered": crypt.key_positions_recovered(recovered, keys),
        **quality,
        "random_key": crypt.decryption_quality(unshuffle_bits(cipher, wrong, dtype=torch.float32), victims),
    }

    key = BitKey(torch.randperm(32, generator=torch.Generator().manual_seed(5)))
    cipher = shuffle_bits(victims, key, as_integer=True)
    curve = []
    for n in [c for c in (1, 10, 100, 1000) if c <= args.vectors]:
        seconds = timed(lambda: crypt.recover_fixed_key(cipher[:n], model), device, 1)[0]
        estimate = crypt.recover_fixed_key(cipher[:n], model)
        curve.append(
            {
                "vectors": n,
                "seconds": seconds,
                "key_positions_recovered": crypt.key_positions_recovered(estimate, key),
                **crypt.decryption_quality(unshuffle_bits(cipher, estimate, dtype=torch.float32), victims),
            }
        )
    wrong = BitKey(torch.randperm(32, generator=torch.Generator().manual_seed(6)))
    out["fixed_key"] = {
        "curve": curve,
        "random_key": crypt.decryption_quality(unshuffle_bits(cipher, wrong, dtype=torch.float32), victims),
    }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    started = time.perf_counter()
    results = {
        name: measure(lambda count, g, f=f: f(count, args.dims, g), args, device)
        for name, f in DISTRIBUTIONS.items()
    }
    for name, r in results.items():
        s = r["single_vector"]
        print(f"{name}: single vector {s['vectors_per_second']:.0f} vectors/s "
              f"({s['attack_over_encrypt']:.0f}x the encryption), cosine median {s['cosine_median']:.3f} "
              f"(random key {s['random_key']['cosine_median']:.3f}), sign+exponent exact {s['sign_exponent_exact']:.3f}")
        for p in r["fixed_key"]["curve"]:
            print(f"  fixed key, {p['vectors']:5d} vectors: {p['seconds']:.2f} s, sign+exponent exact "
                  f"{p['sign_exponent_exact']:.3f}, cosine {p['cosine']:.4f}, key positions {p['key_positions_recovered']:.2f}")
    record = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "args": vars(args),
        "seconds": time.perf_counter() - started,
        "results": results,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
