"""Cost of deriving keys from a master secret (pytest-benchmark; never pass/fail).

    python -m pytest benchmarks/test_bench_keys_cpu.py --benchmark-columns=min,median \
        [--benchmark-json results.json]

Pure Python (HKDF-SHA256 from hmac/hashlib, Fisher-Yates with rejection sampling), plus building
and checking the torch tensor for BitKey.derive. The figures of docs/keys.md ("Derivation cost").
`featperm bench` runs this file and keeps the JSON (featperm/bench.py).
"""

import hashlib

import pytest

from featperm import BitKey
from featperm.keys import derive_permutation

SECRET = hashlib.sha256(b"bench_keys").digest()

CASES = {
    "derive_permutation-n32": lambda: derive_permutation(SECRET, "bench", b"ctx", n=32),
    "BitKey.derive-32": lambda: BitKey.derive(SECRET, "bench", b"ctx"),
    "BitKey.derive-32-samples64": lambda: BitKey.derive(SECRET, "bench", b"ctx", samples=64),
    "derive_permutation-BlockKey-3x16": lambda: derive_permutation(SECRET, "bench", b"ctx", n=3 * 16 * 16,
                                                                   kind="BlockKey", shape=(3, 16)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_key_derivation(benchmark, case):
    benchmark.group = "key derivation"
    benchmark(CASES[case])
