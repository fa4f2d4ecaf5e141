"""How many known plaintext words break a 32-bit ShuffleBits key (numbers in docs/keys.md).

    python docs/measure_known_plaintext.py [keys] [max_words]

For each of `keys` derived keys and each word distribution, the attacker sees the first k
plaintext/ciphertext words of a response. Reported:

* exact: how many words pin the key down uniquely (featperm.keys.words_to_recover);
* decrypted: with k known words, the share of 65536 other words of the same distribution that
  featperm.keys.consistent_bit_key decrypts exactly (median over the keys).
"""

import hashlib
import statistics
import sys

import torch

from featperm import BitKey, keys, shuffle_bits, unshuffle_bits


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


def main(num_keys=200, max_words=4096):
    secret = hashlib.sha256(b"measure_known_plaintext").digest()  # fixed: reproducible runs
    for name, draw in DISTRIBUTIONS.items():
        generator = torch.Generator().manual_seed(0)
        needed, decrypted = [], {k: [] for k in KNOWN}
        for index in range(num_keys):
            key = BitKey.derive(secret, "measure", b"%d" % index)
            x = draw(max_words, generator)
            y = shuffle_bits(x, key)
            needed.append(keys.words_to_recover(x, y))
            other = draw(HELD_OUT, generator)
            other_y = shuffle_bits(other, key)
            for k in KNOWN:
                guess = keys.consistent_bit_key(x[:k], y[:k])
                same = unshuffle_bits(other_y, guess).view(torch.int32) == other.view(torch.int32)
                decrypted[k].append(same.double().mean().item())
        found = sorted(n for n in needed if n is not None)
        print(f"{name}:")
        line = f"  exact key: {len(found)}/{num_keys} keys pinned down within {max_words} words"
        if found:
            line += (f"; words needed: min {found[0]}, median {statistics.median(found):g}, "
                     f"90th percentile {found[int(0.9 * (len(found) - 1))]}, max {found[-1]}")
        print(line)
        print("  share of other words decrypted (median over keys), by known words: " + ", ".join(
            f"{k}: {100 * statistics.median(decrypted[k]):.2f}%" for k in KNOWN))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
