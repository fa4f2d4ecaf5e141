"""docs/formats.md matches the code: its generator script reproduces its test vectors, the vectors
follow the layouts the page gives (parsed here with struct, hashlib and `cryptography`,
independently of featperm) and open with featperm, and the page's code tables (key kinds, dtype
codes) are the code's."""

import contextlib
import hashlib
import io
import os
import re
import struct
import warnings

import pytest
import torch

from featperm import crypto, keys
from featperm.crypto.sealed import DTYPE_CODES
from featperm.errors import AuthenticationError, KeyFileError, MalformedSealedError
from featperm.keys import BitKey, BlockKey, RequestKeys
from featperm.keys.files import KIND_CODES
from featperm.ops import shuffle_bits

DOC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "formats.md")
with open(DOC_PATH, encoding="utf-8") as _fh:
    DOC = _fh.read()

SECRET = bytes(range(32))  # the page's published test-vector secret and AEAD key
X = torch.tensor([[1.0, -2.5], [0.0, 3.25]], dtype=torch.float32)
AAD = b"docs"


def _vectors():
    vectors = {}
    for name, body in re.findall(r"<!-- vector: (\S+) -->\n```text\n(.*?)```", DOC, re.S):
        data = bytearray()
        for line in body.splitlines():
            data += bytes.fromhex(line.split("|")[0])  # "hex bytes | field"
        vectors[name] = bytes(data)
    return vectors


VECTORS = _vectors()


def _table_rows(section, columns):
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == columns and cells[0].isdigit():
            rows.append(cells)
    return rows


KEY_SECTION, SEALED_SECTION = DOC.split("## Sealed containers")[0], DOC.split("## Sealed containers")[1]


def test_the_page_has_every_vector():
    assert set(VECTORS) == {"secret-file", "bitkey-file", "blockkey-file", "sealed-float32", "cascade-float32"}


def test_the_generator_script_reproduces_the_vectors():
    script = re.search(r"<!-- generator -->\n```python\n(.*?)```", DOC, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(script, "docs/formats.md (generator)", "exec"), {"__name__": "formats_doc_generator"})
    produced = dict(line.split() for line in out.getvalue().splitlines())
    assert produced == {name: data.hex() for name, data in VECTORS.items()}


def _key_file_fields(data):
    """The key-file layout of the page: big-endian header, payload, SHA-256."""
    magic, version, kind, reserved, a, b, length = struct.unpack_from(">8sHBBIII", data, 0)
    assert (magic, version, reserved) == (b"\x89FPKEY\r\n", 1, 0)
    assert len(data) == 24 + length + 32
    assert hashlib.sha256(data[: 24 + length]).digest() == data[24 + length :]
    return kind, a, b, data[24 : 24 + length]


def test_key_file_vectors_follow_the_layout_and_load(tmp_path):
    bit_key = BitKey.derive(SECRET, "docs", "formats", bits=8)
    block_key = BlockKey.derive(SECRET, "docs", "formats", channels=1, block_size=2)

    kind, a, b, payload = _key_file_fields(VECTORS["secret-file"])
    assert (kind, a, b, payload) == (1, 16, 0, bytes(range(16)))
    kind, a, b, payload = _key_file_fields(VECTORS["bitkey-file"])
    assert (kind, a, b, list(payload)) == (2, 8, 0, bit_key.permutation().tolist())
    kind, a, b, payload = _key_file_fields(VECTORS["blockkey-file"])
    assert (kind, a, b) == (3, 1, 2)
    assert list(struct.unpack(">4I", payload)) == block_key.permutation().tolist()

    for name, expected in (("secret-file", bytes(range(16))), ("bitkey-file", bit_key), ("blockkey-file", block_key)):
        path = tmp_path / name
        path.write_bytes(VECTORS[name])
        assert keys.load_key(path) == expected
        corrupted = bytearray(VECTORS[name])
        corrupted[24] ^= 1  # first payload byte: the checksum no longer matches
        path.write_bytes(bytes(corrupted))
        with pytest.raises(KeyFileError, match="checksum"):
            keys.load_key(path)


def _sealed_fields(data):
    """The sealed-container layout of the page: little-endian header, nonce, ciphertext, tag."""
    magic, version, code, ndim, reserved = struct.unpack_from("<4sBBBB", data, 0)
    assert (magic, version, reserved) == (b"FPSL", 1, 0)
    shape = struct.unpack_from(f"<{ndim}Q", data, 8)
    h = 8 + 8 * ndim
    return code, shape, data[:h], data[h : h + 12], data[h + 12 : -16], data[-16:]


@pytest.mark.parametrize("name, counter", [("sealed-float32", 0), ("cascade-float32", 1)])
def test_sealed_vectors_follow_the_layout_and_open(name, counter):
    aead = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    data = VECTORS[name]
    code, shape, header, nonce, ciphertext, tag = _sealed_fields(data)
    assert code == 9 and shape == (2, 2) and len(ciphertext) == 16
    assert nonce == b"\x00\x00\x00\x01" + counter.to_bytes(8, "little")
    # Any RFC 8439 library opens it: associated data = the header, then the caller's aad.
    plaintext = aead.ChaCha20Poly1305(SECRET).decrypt(nonce, ciphertext + tag, header + AAD)
    bit_key = BitKey.derive(SECRET, "docs", "cascade", bits=32)
    expected = X if name == "sealed-float32" else shuffle_bits(X, bit_key)
    assert plaintext == expected.numpy().tobytes()

    opened = crypto.open_sealed(data, SECRET, aad=AAD)
    assert torch.equal(opened.view(torch.int32), expected.view(torch.int32))
    if name == "cascade-float32":
        assert torch.equal(crypto.open_shuffled(data, bit_key, SECRET, aad=AAD).view(torch.int32), X.view(torch.int32))
    with pytest.raises(AuthenticationError):
        crypto.open_sealed(data, SECRET, aad=b"other")
    bad = bytearray(data)
    bad[7] = 1  # the reserved byte
    with pytest.raises(MalformedSealedError):
        crypto.open_sealed(bytes(bad), SECRET, aad=AAD)


def test_the_pages_kind_codes_are_the_codes():
    rows = _table_rows(KEY_SECTION, 6)
    names = {"master secret (`bytes`)": "secret"}
    documented = {names.get(kind, kind.strip("`")): int(code) for code, kind, *_ in rows}
    assert documented == KIND_CODES


def test_the_pages_dtype_codes_are_the_codes():
    documented = {}
    for row in _table_rows(SEALED_SECTION, 6):
        for code, name, itemsize in (row[0:3], row[3:6]):
            documented[int(code)] = (name, int(itemsize))
    with warnings.catch_warnings():  # complex32 tensors warn that ComplexHalf is experimental
        warnings.simplefilter("ignore", UserWarning)
        actual = {
            code: (str(dtype).removeprefix("torch."), torch.empty((), dtype=dtype).element_size())
            for dtype, code in DTYPE_CODES.items()
        }
    assert documented == actual


def test_request_key_ids_are_as_documented():
    server = RequestKeys(SECRET, "docs")
    key_id, key = server.new_block_key(channels=4, block_size=2)
    assert len(key_id) == 25
    _, kind, a, b = struct.unpack(">16sBII", key_id)
    assert (kind, a, b) == (KIND_CODES["BlockKey"], 4, 2)
    assert key == BlockKey.derive(SECRET, "docs", key_id, channels=4, block_size=2)
    key_id, _ = server.new_bit_key(bits=16, samples=3)
    assert struct.unpack(">16sBII", key_id)[1:] == (KIND_CODES["BitKey"], 16, 3)
    assert server.key_for(key_id) == BitKey.derive(SECRET, "docs", key_id, bits=16, samples=3)
