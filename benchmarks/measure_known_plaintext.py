"""How many known plaintext words break a 32-bit ShuffleBits key (the table in docs/keys.md).

    python benchmarks/measure_known_plaintext.py [--keys 200] [--max-words 4096] [--out results.json]

For each of `--keys` derived keys and each word distribution, the attacker sees the first k
plaintext/ciphertext words of a response. Reported:

* exact: how many words pin the key down uniquely (featperm.attacks.known_plaintext.words_to_recover);
* decrypted: with k known words, the share of 65536 other words of the same distribution that
  featperm.attacks.known_plaintext.consistent_bit_key decrypts exactly (median over the keys).

The secret, the key labels and the generator seed are fixed, so the figures depend only on
`--keys` and `--max-words` (not on the machine); the JSON also records the device, torch version,
UTC date and run time. `featperm bench` runs it (featperm/bench.py).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import statistics
import sys
import time

import torch

import featperm
from featperm.bench import cpu_model
from featperm import BitKey, shuffle_bits, unshuffle_bits
from featperm.attacks.known_plaintext import consistent_bit_key, words_to_recover


def uniform_words(count, generator):
    return torch.randint(-2**31, 2**31, (count,), dtype=torch.int64, generator=generator) \
        .to(torch.int32).view(torch.float32)


DISTRIBUTIONS = {
    "uniform random 32-bit words": uniform_words,
    "float32 N(0, 1)": lambda count, g: torch.randn(count, generator=g),
    "float32 ReLU(N(0, 1))": lambda count, g: torch.randn(count, generator=g).clamp_min(0),
}
KNOWN = (4, 8, 16, 32, 64, 128)
HELD_OUT = 65536


def measure(name, draw, secret, num_keys, max_words):
    generator = torch.Generator().manual_seed(0)
    needed, decrypted = [], {k: [] for k in KNOWN}
    for index in range(num_keys):
        key = BitKey.derive(secret, "measure", b"%d" % index)
        x = draw(max_words, generator)
        y = shuffle_bits(x, key)
        needed.append(words_to_recover(x, y))
        other = draw(HELD_OUT, generator)
        other_y = shuffle_bits(other, key)
        for k in KNOWN:
            guess = consistent_bit_key(x[:k], y[:k])
            same = unshuffle_bits(other_y, guess).view(torch.int32) == other.view(torch.int32)
            decrypted[k].append(same.double().mean().item())
    found = sorted(n for n in needed if n is not None)
    row = {
        "distribution": name,
        "keys": num_keys,
        "max_words": max_words,
        "exact_key_found": len(found),
        "words_needed": needed,  # per key, None: not pinned down within max_words
        "words_needed_min": found[0] if found else None,
        "words_needed_median": statistics.median(found) if found else None,
        "words_needed_p90": found[int(0.9 * (len(found) - 1))] if found else None,
        "words_needed_max": found[-1] if found else None,
        "decrypted_median_percent": {str(k): 100 * statistics.median(decrypted[k]) for k in KNOWN},
        "decrypted_min_percent": {str(k): 100 * min(decrypted[k]) for k in KNOWN},
    }
    print(f"{name}:")
    line = f"  exact key: {len(found)}/{num_keys} keys pinned down within {max_words} words"
    if found:
        line += (f"; words needed: min {row['words_needed_min']}, median {row['words_needed_median']:g}, "
                 f"90th percentile {row['words_needed_p90']}, max {row['words_needed_max']}")
    print(line)
    print("  share of other words decrypted (median over keys), by known words: " + ", ".join(
        f"{k}: {row['decrypted_median_percent'][str(k)]:.2f}%" for k in KNOWN), flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200, help="derived keys per distribution")
    parser.add_argument("--max-words", type=int, default=4096, help="known words available per key")
    parser.add_argument("--out", help="write the results as JSON to this path")
    args = parser.parse_args(argv)
    secret = hashlib.sha256(b"measure_known_plaintext").digest()  # fixed: reproducible runs
    print(f"known-plaintext attack on 32-bit ShuffleBits keys: {args.keys} keys per distribution, "
          f"{args.max_words} known words, {HELD_OUT} held-out words; {cpu_model()}, "
          f"torch {torch.__version__}", flush=True)
    start = time.perf_counter()
    rows = [measure(name, draw, secret, args.keys, args.max_words) for name, draw in DISTRIBUTIONS.items()]
    seconds = time.perf_counter() - start
    print(f"{seconds:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"processor": cpu_model(), "torch": torch.__version__,
                       "featperm": featperm.__version__,
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "keys": args.keys, "max_words": args.max_words, "known_words": list(KNOWN),
                       "held_out_words": HELD_OUT, "seconds": seconds, "results": rows}, f, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
