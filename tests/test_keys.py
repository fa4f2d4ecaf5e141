"""Tests of featperm.keys: derivation (known answers, independent cross-check, uniformity,
domain separation), key files, per-request keys and the known-plaintext analysis."""

import hashlib
import itertools
import os
import pickle
import stat
import struct

import pytest
import torch
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import featperm
from featperm import BitKey, keys, shuffle_bits, unshuffle_bits
from featperm.attacks import known_plaintext
from featperm.keys import KeyFileError, derivation

SECRET = bytes(range(32))  # fixed test secret: the known answers below are derived from it


# -- an independent second implementation of the documented construction --------------------------

def reference_derive(secret, label, context, n, kind, shape):
    """Straight from the docs/keys.md text, with `cryptography`'s HKDF; returns (perm, bytes used)."""
    label = label.encode() if isinstance(label, str) else label
    context = context.encode() if isinstance(context, str) else context
    shape_bytes = b"".join(d.to_bytes(8, "big") for d in shape)
    fields = [kind.encode(), shape_bytes, label, context]
    info = b"featperm/v1" + b"".join(len(f).to_bytes(4, "big") + f for f in fields)

    chunks = []

    def stream_byte(index):
        while index >= 8160 * len(chunks):
            chunk_info = info + len(chunks).to_bytes(4, "big")
            chunks.append(HKDF(algorithm=hashes.SHA256(), length=8160, salt=b"featperm/v1",
                               info=chunk_info).derive(secret))
        return chunks[index // 8160][index % 8160]

    used = 0
    perm = list(range(n))
    for i in reversed(range(1, n)):
        width = 1
        while 256 ** width <= i:
            width += 1
        accept_below = (256 ** width // (i + 1)) * (i + 1)
        while True:
            value = 0
            for _ in range(width):
                value = value * 256 + stream_byte(used)
                used += 1
            if value < accept_below:
                break
        j = value % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm, used


KNOWN_ANSWERS = [
    # (label, context, n, kind, shape, permutation): computed once with featperm.keys and
    # checked against reference_derive (cryptography's HKDF) in test_known_answers.
    ("featperm test", b"", 8, "BitKey", (8,), [2, 5, 4, 6, 0, 1, 3, 7]),
    ("featperm test", b"", 32, "BitKey", (32,),
     [24, 26, 20, 4, 23, 3, 11, 30, 9, 21, 12, 6, 29, 10, 15, 1, 18, 5, 13, 8, 19, 2, 0, 27, 31, 7,
      22, 25, 28, 14, 17, 16]),
    (b"features/layer3", "request-0001", 64, "BitKey", (64,),
     [50, 21, 35, 53, 56, 23, 54, 19, 33, 37, 26, 42, 25, 8, 17, 18, 40, 28, 38, 31, 49, 62, 24,
      52, 1, 13, 22, 7, 20, 46, 36, 45, 30, 59, 39, 3, 16, 29, 43, 4, 61, 5, 47, 0, 12, 11, 60, 32,
      10, 55, 57, 63, 2, 15, 9, 34, 27, 51, 48, 6, 44, 41, 58, 14]),
    ("featperm test", b"", 32, "BitKey", (32, 2, 1),
     [10, 6, 1, 23, 21, 17, 26, 15, 22, 24, 9, 30, 14, 11, 0, 19, 31, 28, 4, 16, 18, 20, 27, 5, 8,
      12, 25, 2, 13, 7, 3, 29]),
    ("featperm test", b"", 4, "permutation", (4,), [2, 0, 1, 3]),
    ("featperm test", b"", 12, "BlockKey", (3, 2), [10, 3, 0, 4, 8, 5, 2, 9, 1, 7, 11, 6]),
    ("featperm test", b"", 32, "permutation", (32,),
     [6, 11, 21, 20, 27, 8, 22, 17, 5, 31, 28, 9, 1, 29, 4, 12, 30, 14, 23, 24, 15, 16, 19, 0, 7, 26,
      3, 18, 25, 13, 10, 2]),
]


@pytest.mark.parametrize("label, context, n, kind, shape, expected", KNOWN_ANSWERS)
def test_known_answers(label, context, n, kind, shape, expected):
    derived = keys.derive_permutation(SECRET, label, context, n=n, kind=kind, shape=shape)
    assert derived == expected
    assert reference_derive(SECRET, label, context, n, kind, shape)[0] == expected


def test_known_answer_across_hkdf_chunks():
    # n = 5000 needs two-byte draws: about 10 KB of stream, past the first 8160-byte HKDF chunk.
    derived = keys.derive_permutation(SECRET, "featperm test", b"long", n=5000)
    reference, used = reference_derive(SECRET, "featperm test", b"long", 5000, "permutation", (5000,))
    assert used > 8160
    assert derived == reference
    digest = hashlib.sha256(b"".join(v.to_bytes(4, "big") for v in derived)).hexdigest()
    assert digest == "4b6dd011bc1ee4754787b27aaee026113dfe30f0392c3e09a86ddf11e93cdc3e"


@pytest.mark.parametrize("n", [1, 2, 3, 7, 255, 256, 257, 300])
def test_matches_reference_for_many_sizes(n):
    secret = hashlib.sha256(b"secret %d" % n).digest()
    for context in (b"", b"a", "ü-request"):
        derived = keys.derive_permutation(secret, "sizes", context, n=n)
        assert derived == reference_derive(secret, "sizes", context, n, "permutation", (n,))[0]
        assert sorted(derived) == list(range(n))


def test_rejection_sampling_discards_biased_values():
    class Bytes:
        def __init__(self, data):
            self.data = list(data)

        def read(self, nbytes):
            out, self.data = bytes(self.data[:nbytes]), self.data[nbytes:]
            return out

    # n = 3: i = 2 draws below 3, accepting bytes < 255; i = 1 draws below 2, accepting < 256.
    # 255 would be a modulo-biased 0; it is skipped and 4 (4 % 3 = 1) used instead.
    assert derivation.fisher_yates(3, Bytes([255, 4, 1])) == [0, 2, 1]
    assert derivation.fisher_yates(3, Bytes([4, 1])) == [0, 2, 1]
    # i = 256 needs two bytes; accept below 65536 - 65536 % 257 = 65535: 0xFFFF is rejected.
    stream = Bytes([0xFF, 0xFF, 0x01, 0x02] + [0] * 600)
    perm = derivation.fisher_yates(257, stream)
    assert perm[256] == 0x0102 % 257


# -- inputs ------------------------------------------------------------------------------------------

def test_generate_secret():
    a, b = keys.generate_secret(), keys.generate_secret()
    assert isinstance(a, bytes) and len(a) == 32 and a != b
    with pytest.raises(ValueError, match="nbytes must be >= 16, got 8"):
        keys.generate_secret(8)


@pytest.mark.parametrize("call", [
    lambda s: keys.derive_permutation(s, "x", n=8),
    lambda s: BitKey.derive(s, "x"),
    lambda s: keys.RequestKeys(s, "x"),
    lambda s: keys.save_secret(os.devnull, s),
], ids=["derive_permutation", "BitKey.derive", "RequestKeys", "save_secret"])
def test_secret_must_be_bytes_of_128_bits(call):
    with pytest.raises(ValueError, match=r"secret must be at least 16 bytes \(128 bits\), got 15"):
        call(bytes(15))
    with pytest.raises(TypeError, match="not str"):
        call("a password that is long enough")
    with pytest.raises(TypeError, match="secret must be bytes"):
        call(12345678901234567890)


def test_sixteen_byte_secret_is_accepted():
    assert sorted(keys.derive_permutation(bytes(16), "x", n=8)) == list(range(8))


def test_argument_errors():
    with pytest.raises(ValueError, match="label must not be empty"):
        keys.derive_permutation(SECRET, b"", n=8)
    with pytest.raises(TypeError, match="context must be bytes or str"):
        keys.derive_permutation(SECRET, "x", 7, n=8)
    with pytest.raises(ValueError, match="n must be >= 1"):
        keys.derive_permutation(SECRET, "x", n=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        keys.derive_permutation(SECRET, "x", n=8, kind="bits")
    with pytest.raises(ValueError, match="needs n in"):
        keys.derive_permutation(SECRET, "x", n=12, kind="BitKey")
    with pytest.raises(ValueError, match="permutes 12 positions, but n=8"):
        keys.derive_permutation(SECRET, "x", n=8, kind="BlockKey", shape=(3, 2))
    with pytest.raises(ValueError, match="shape for kind"):
        keys.derive_permutation(SECRET, "x", n=8, kind="BitKey", shape=(8, 2, 2))
    with pytest.raises(ValueError, match="bits must be one of"):
        BitKey.derive(SECRET, "x", bits=12)


# -- domain separation ---------------------------------------------------------------------------------

def test_str_and_utf8_bytes_are_the_same_label_and_context():
    assert keys.derive_permutation(SECRET, "résumé", "req-1", n=32) == \
        keys.derive_permutation(SECRET, "résumé".encode(), b"req-1", n=32)


def test_every_input_is_bound():
    base = keys.derive_permutation(SECRET, "ab", "c", n=32, kind="BitKey")
    variants = {
        "secret": keys.derive_permutation(bytes(32), "ab", "c", n=32, kind="BitKey"),
        "label/context boundary": keys.derive_permutation(SECRET, "a", "bc", n=32, kind="BitKey"),
        "label": keys.derive_permutation(SECRET, "ab ", "c", n=32, kind="BitKey"),
        "context": keys.derive_permutation(SECRET, "ab", "c\x00", n=32, kind="BitKey"),
        "kind": keys.derive_permutation(SECRET, "ab", "c", n=32, kind="permutation"),
        "row of a per-sample key": keys.derive_permutation(SECRET, "ab", "c", n=32, kind="BitKey",
                                                           shape=(32, 1, 0)),
        "block shape (2, 4)": keys.derive_permutation(SECRET, "ab", "c", n=32, kind="BlockKey",
                                                      shape=(2, 4)),
        "block shape (8, 2)": keys.derive_permutation(SECRET, "ab", "c", n=32, kind="BlockKey",
                                                      shape=(8, 2)),
    }
    values = [base] + list(variants.values())
    assert len({tuple(v) for v in values}) == len(values)


@pytest.mark.parametrize("other", [
    dict(label="label B", context=b"", kind="BitKey"),
    dict(label="label A", context=b"x", kind="BitKey"),
    dict(label="label A", context=b"", kind="permutation"),
], ids=["label", "context", "kind"])
def test_different_inputs_give_unrelated_keys(other):
    # Two independent uniform permutations of 32 agree in 1 position on average (variance 1).
    # 2000 pairs: the mean agreement has standard deviation about 0.022; 0.15 is about 7 of those.
    pairs = 2000
    agreements = 0
    for i in range(pairs):
        a = keys.derive_permutation(SECRET, "label A", b"%d" % i, n=32, kind="BitKey")
        b = keys.derive_permutation(SECRET, other["label"], other["context"] + b"%d" % i, n=32,
                                    kind=other["kind"])
        agreements += sum(x == y for x, y in zip(a, b))
    assert abs(agreements / pairs - 1.0) < 0.15


# -- uniformity ----------------------------------------------------------------------------------------

def position_chi_squares(permutations, n):
    """Chi-square of the value found at each position, one per position (31 d.o.f. for n = 32)."""
    counts = [[0] * n for _ in range(n)]
    for p in permutations:
        for position, value in enumerate(p):
            counts[position][value] += 1
    expected = len(permutations) / n
    return [sum((c - expected) ** 2 / expected for c in row) for row in counts]


def position_frequencies_are_flat(permutations, n):
    # Per position: chi-square with 31 d.o.f. (mean 31, sd 7.9); 90 is about p = 1e-7.
    # Summed over the 32 positions (the 32x32 table has 31*31 = 961 d.o.f., sd 44): 1200 is
    # +5.4 sd, and catches a diffuse bias such as a one-byte modulo reduction (about 1400).
    per_position = position_chi_squares(permutations, n)
    return max(per_position) < 90 and sum(per_position) < 1200


def stream_bytes(seed):
    """An unbiased deterministic byte stream (SHAKE-256) to feed the deliberately broken shuffles."""
    counter = 0
    while True:
        yield from hashlib.shake_256(b"%s/%d" % (seed, counter)).digest(256)
        counter += 1


def modulo_biased_shuffle(n, source):
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = next(source) % (i + 1)  # the bug: no rejection, so small j are favoured
        p[i], p[j] = p[j], p[i]
    return p


def naive_shuffle(n, source):
    p = list(range(n))
    for i in range(n):
        j = next(source) % n  # the classic bug: swap with any position (n**n paths, not n!)
        p[i], p[j] = p[j], p[i]
    return p


def test_position_frequencies_are_uniform_for_32_bits():
    derivations = 20000
    derived = [keys.derive_permutation(SECRET, "uniformity", b"%d" % k, n=32, kind="BitKey")
               for k in range(derivations)]
    assert position_frequencies_are_flat(derived, 32)

    # The same test must reject broken shuffles fed with unbiased bytes.
    source = stream_bytes(b"modulo")
    assert not position_frequencies_are_flat(
        [modulo_biased_shuffle(32, source) for _ in range(derivations)], 32)
    source = stream_bytes(b"naive")
    assert not position_frequencies_are_flat([naive_shuffle(32, source) for _ in range(derivations)], 32)


def all_outcomes_chi_square(permutations, n):
    counts = {p: 0 for p in itertools.permutations(range(n))}
    for p in permutations:
        counts[tuple(p)] += 1
    expected = len(permutations) / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts.values())


def test_all_24_permutations_of_4_are_equally_likely():
    derivations = 24000
    derived = [keys.derive_permutation(SECRET, "n=4", b"%d" % k, n=4) for k in range(derivations)]
    # 23 d.o.f. (mean 23, sd 6.8): 70 is about p = 1e-6.
    assert all_outcomes_chi_square(derived, 4) < 70
    source = stream_bytes(b"naive4")
    assert all_outcomes_chi_square([naive_shuffle(4, source) for _ in range(derivations)], 4) >= 70


# -- BitKey.derive --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16, 32, 64])
def test_bit_key_derive(bits):
    key = BitKey.derive(SECRET, "layer1", "req-7", bits=bits)
    assert key.bits == bits and key.samples is None
    assert key == BitKey.derive(SECRET, "layer1", b"req-7", bits=bits)
    assert key.permutation().tolist() == keys.derive_permutation(SECRET, "layer1", "req-7", n=bits,
                                                                 kind="BitKey")
    per_sample = BitKey.derive(SECRET, "layer1", "req-7", bits=bits, samples=3)
    assert per_sample.samples == 3
    rows = per_sample.permutation().tolist()
    assert rows == [keys.derive_permutation(SECRET, "layer1", "req-7", n=bits, kind="BitKey",
                                            shape=(bits, 3, r)) for r in range(3)]
    assert len({tuple(r) for r in rows}) == 3
    dtype = {8: torch.uint8, 16: torch.float16, 32: torch.float32, 64: torch.float64}[bits]
    x = torch.randn(3, 50).to(dtype)
    assert torch.equal(unshuffle_bits(shuffle_bits(x, per_sample), per_sample).view(torch.uint8),
                       x.view(torch.uint8))


# -- key files -------------------------------------------------------------------------------------------

def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("key", [
    BitKey.derive(SECRET, "file", bits=8),
    BitKey.derive(SECRET, "file", bits=32),
    BitKey.derive(SECRET, "file", bits=64, samples=4),
], ids=["bits8", "bits32", "bits64x4"])
def test_bit_key_file_round_trip(tmp_path, key):
    path = tmp_path / "key.fpk"
    keys.save_key(path, key)
    assert keys.load_key(path) == key
    assert keys.load_key(str(path), expected_kind="BitKey") == key
    assert keys.load_key(path, expected_kind=BitKey) == key


def test_secret_file_round_trip(tmp_path):
    secret = keys.generate_secret()
    keys.save_secret(tmp_path / "master.fpk", secret)
    assert keys.load_secret(tmp_path / "master.fpk") == secret
    assert keys.load_key(tmp_path / "master.fpk") == secret


def test_file_layout(tmp_path):
    # The byte layout of docs/keys.md, assembled by hand.
    key = BitKey([1, 0, 2, 3, 4, 5, 7, 6])
    keys.save_key(tmp_path / "k", key)
    body = (b"\x89FPKEY\r\n" + struct.pack(">HBB", 1, 2, 0) + struct.pack(">III", 8, 0, 8)
            + bytes([1, 0, 2, 3, 4, 5, 7, 6]))
    assert (tmp_path / "k").read_bytes() == body + hashlib.sha256(body).digest()


def test_files_are_owner_only(tmp_path):
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        path = tmp_path / "k"
        keys.save_key(path, BitKey.derive(SECRET, "mode"))
        assert file_mode(path) == 0o600
        with pytest.raises(FileExistsError):
            keys.save_key(path, BitKey.derive(SECRET, "mode"))
        os.chmod(path, 0o644)
        keys.save_key(path, SECRET, overwrite=True)
        assert file_mode(path) == 0o600
        assert keys.load_secret(path) == SECRET
    finally:
        os.umask(old_umask)


def with_checksum(body):
    return body + hashlib.sha256(body).digest()


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key.fpk"
    keys.save_key(path, BitKey.derive(SECRET, "corrupt", samples=2))
    return path


def test_every_truncation_is_refused(key_file):
    data = key_file.read_bytes()
    for length in range(len(data)):
        key_file.write_bytes(data[:length])
        with pytest.raises(KeyFileError, match="truncated|bad magic"):
            keys.load_key(key_file)


def test_every_flipped_byte_is_refused(key_file):
    data = key_file.read_bytes()
    for offset in range(len(data)):
        key_file.write_bytes(data[:offset] + bytes([data[offset] ^ 0x10]) + data[offset + 1:])
        with pytest.raises(KeyFileError):
            keys.load_key(key_file)


def test_checksum_and_trailing_data_messages(key_file):
    data = key_file.read_bytes()
    key_file.write_bytes(data[:30] + bytes([data[30] ^ 1]) + data[31:])
    with pytest.raises(KeyFileError, match="checksum mismatch"):
        keys.load_key(key_file)
    key_file.write_bytes(data + b"\x00")
    with pytest.raises(KeyFileError, match="after the checksum"):
        keys.load_key(key_file)
    key_file.write_bytes(b"not a key file at all, just some text" * 3)
    with pytest.raises(KeyFileError, match="bad magic"):
        keys.load_key(key_file)


def test_unknown_version_is_refused(key_file):
    body = bytearray(key_file.read_bytes()[:-32])
    body[8:10] = struct.pack(">H", 2)
    key_file.write_bytes(with_checksum(bytes(body)))
    with pytest.raises(KeyFileError, match="unsupported key file format version 2"):
        keys.load_key(key_file)


def test_valid_checksum_but_invalid_key_is_refused(key_file):
    body = bytearray(key_file.read_bytes()[:-32])
    body[24] = body[25]  # row 0 repeats a position: not a permutation
    key_file.write_bytes(with_checksum(bytes(body)))
    with pytest.raises(KeyFileError, match="invalid BitKey payload"):
        keys.load_key(key_file)
    body = bytearray(key_file.read_bytes()[:-32])
    body[10] = 9  # unknown kind code
    key_file.write_bytes(with_checksum(bytes(body)))
    with pytest.raises(KeyFileError, match="unknown key kind"):
        keys.load_key(key_file)


def test_wrong_kind_is_refused(tmp_path, key_file):
    with pytest.raises(KeyFileError, match="holds a BitKey, expected a secret"):
        keys.load_secret(key_file)
    with pytest.raises(KeyFileError, match="holds a BitKey, expected a BlockKey"):
        keys.load_key(key_file, expected_kind="BlockKey")
    keys.save_secret(tmp_path / "s", SECRET)
    with pytest.raises(KeyFileError, match="holds a secret, expected a BitKey"):
        keys.load_key(tmp_path / "s", expected_kind=BitKey)
    with pytest.raises(ValueError, match="expected_kind must be"):
        keys.load_key(key_file, expected_kind="bits")


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="key must be a BitKey, BlockKey, NPKey, FFXKey or a master secret"):
        keys.save_key(tmp_path / "k", [1, 0, 2, 3, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="at least 16 bytes"):
        keys.save_key(tmp_path / "k", b"short")
    assert not (tmp_path / "k").exists()


def test_key_file_error_is_a_value_error():
    assert issubclass(KeyFileError, ValueError)


# -- per-request keys -----------------------------------------------------------------------------------

def test_request_keys_bit_keys():
    server = keys.RequestKeys(SECRET, "responses")
    client = keys.RequestKeys(bytearray(SECRET), b"responses")
    issued = [server.new_bit_key() for _ in range(20)]
    assert len({key_id for key_id, _ in issued}) == 20
    assert len({tuple(key.permutation().tolist()) for _, key in issued}) == 20
    for key_id, key in issued:
        assert len(key_id) == 25 and key.bits == 32 and key.samples is None
        assert client.key_for(key_id) == key
        assert client.key_for(key_id.hex()) == key
    key_id, key = server.new_bit_key(bits=16, samples=5)
    assert key.bits == 16 and key.samples == 5
    assert client.key_for(key_id) == key
    assert keys.RequestKeys(SECRET, "other label").key_for(key_id) != key
    assert keys.RequestKeys(bytes(32), "responses").key_for(key_id) != key
    # the key is the documented derivation with the key id as context
    assert key == BitKey.derive(SECRET, "responses", key_id, bits=16, samples=5)


def test_request_keys_errors_and_no_key_material():
    server = keys.RequestKeys(SECRET, "responses")
    with pytest.raises(ValueError, match="key_id must be 25 bytes"):
        server.key_for(b"\x00" * 16)
    with pytest.raises(ValueError, match="names no valid key"):
        server.key_for(b"\x00" * 16 + struct.pack(">BII", 2, 12, 0))
    with pytest.raises(ValueError, match="hexadecimal"):
        server.key_for("zz")
    with pytest.raises(ValueError, match="bits must be one of"):
        server.new_bit_key(bits=12)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(server)
    text = repr(server) + repr(server.new_bit_key()[1]) + repr(BitKey.derive(SECRET, "x", samples=2))
    assert SECRET.hex() not in text and str(list(SECRET)) not in text
    assert repr(server) == "RequestKeys(label=b'responses')"


# -- BlockKey (featperm.block is merged separately) -----------------------------------------------------

def test_block_keys(tmp_path):
    key = keys.derive_block_key(SECRET, "blocks", "req", channels=3, block_size=4)
    assert isinstance(key, featperm.BlockKey)
    assert featperm.BlockKey.derive(SECRET, "blocks", "req", channels=3, block_size=4) == key
    assert key.channels == 3 and key.block_size == 4
    assert key.permutation().tolist() == keys.derive_permutation(
        SECRET, "blocks", "req", n=48, kind="BlockKey", shape=(3, 4))
    assert keys.derive_block_key(SECRET, "blocks", "req", channels=12, block_size=2) \
        .permutation().tolist() != key.permutation().tolist()

    keys.save_key(tmp_path / "b", key)
    assert file_mode(tmp_path / "b") == 0o600
    loaded = keys.load_key(tmp_path / "b", expected_kind="BlockKey")
    assert loaded.channels == 3 and loaded.block_size == 4
    assert torch.equal(loaded.permutation(), key.permutation())
    with pytest.raises(KeyFileError, match="holds a BlockKey, expected a BitKey"):
        keys.load_key(tmp_path / "b", expected_kind="BitKey")

    server = keys.RequestKeys(SECRET, "blocks")
    key_id, request_key = server.new_block_key(channels=3, block_size=4)
    assert torch.equal(server.key_for(key_id).permutation(), request_key.permutation())
    assert not torch.equal(server.new_block_key(3, 4)[1].permutation(), request_key.permutation())


# -- known-plaintext analysis ----------------------------------------------------------------------------

def random_words(count, generator):
    return torch.randint(-2**31, 2**31, (count,), dtype=torch.int64, generator=generator) \
        .to(torch.int32).view(torch.float32)


def test_known_plaintext_recovers_32_bit_keys():
    generator = torch.Generator().manual_seed(1)
    needed = []
    for k in range(200):
        key = BitKey.derive(SECRET, "attack", b"%d" % k)
        x = random_words(64, generator)
        y = shuffle_bits(x, key)
        needed.append(known_plaintext.words_to_recover(x, y))
        assert known_plaintext.recover_bit_key(x[:16], y[:16]) in (key, None)
        assert known_plaintext.recover_bit_key(x, y) == key
    needed.sort()
    # 32 columns of w random bits are all distinct with probability ~exp(-496 / 2**w):
    # the median should be about 10 words, and 16 words should almost always suffice.
    assert 8 <= needed[100] <= 12
    assert sum(w <= 16 for w in needed) >= 190
    # 4 words give at most 2**4 = 16 distinct bit columns: 32 bits can never be told apart.
    assert min(needed) > 4


def test_consistent_key_decrypts_features_the_exact_key_is_not_pinned_down_by():
    # N(0, 1) float32 words: exponent bits 28 and 29 are equal unless |x| < 2**-31, so the
    # exact key is never pinned down, but a consistent key decrypts almost every other word.
    generator = torch.Generator().manual_seed(2)
    shares = []
    for k in range(20):
        key = BitKey.derive(SECRET, "features", b"%d" % k)
        x = torch.randn(64, generator=generator)
        y = shuffle_bits(x, key)
        assert known_plaintext.recover_bit_key(x, y) is None
        guess = known_plaintext.consistent_bit_key(x, y)
        assert torch.equal(shuffle_bits(x, guess).view(torch.int32), y.view(torch.int32))
        other = torch.randn(4096, generator=generator)
        decrypted = unshuffle_bits(shuffle_bits(other, key), guess)
        shares.append((decrypted.view(torch.int32) == other.view(torch.int32)).double().mean().item())
    shares.sort()
    assert shares[10] > 0.95


def test_insufficient_or_inconsistent_pairs():
    key = BitKey.derive(SECRET, "attack")
    x = torch.tensor([0.0, 1.0, -2.5], dtype=torch.float32)
    y = shuffle_bits(x, key)
    assert known_plaintext.recover_bit_key(x, y) is None
    assert known_plaintext.words_to_recover(x, y) is None
    candidates = known_plaintext.bit_key_candidates(x, y)
    truth = key.permutation().tolist()
    assert all(truth[i] in c for i, c in enumerate(candidates))
    with pytest.raises(ValueError, match="not consistent"):
        known_plaintext.bit_key_candidates(x, shuffle_bits(x, BitKey.derive(SECRET, "other")) + 1)
    with pytest.raises(ValueError, match="same number and width"):
        known_plaintext.bit_key_candidates(x, y.double())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_shuffle_bits_keeps_hamming_weight_zeros_and_equality(dtype):
    key = BitKey.derive(SECRET, "weight", bits=featperm.word_bits(dtype))
    x = torch.randn(1000).to(dtype)
    x[:10] = 0
    x[10:20] = x[20:30]
    y = shuffle_bits(x, key, as_integer=True)

    def weights(t):
        bytes_ = t.contiguous().view(torch.uint8).reshape(t.numel(), -1).to(torch.int64)
        return sum(((bytes_ >> b) & 1).sum(dim=1) for b in range(8))

    assert torch.equal(weights(x), weights(y))
    assert bool((y[:10] == 0).all())
    assert torch.equal(y[10:20], y[20:30])  # equal words stay equal
    assert not torch.equal(x.view(y.dtype), y)
