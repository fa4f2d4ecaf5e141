"""ChaCha20-Poly1305 (RFC 8439): featperm.crypto and the featperm::chacha20_xor / poly1305 ops.

Known-answer vectors are typed in from RFC 8439 (sections 2.1.1, 2.3.2, 2.4.2, 2.5.2, 2.6.2, 2.8.2
and Appendix A.1-A.5); they need nothing but featperm. Differential tests compare the kernels (CPU
portable, CPU AVX-512, CUDA) with each other, with the pure-Python references in
featperm.reference, and, where the `cryptography` package is installed, with OpenSSL's
ChaCha20-Poly1305 in both directions.
"""

import os
import struct
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featperm
from featperm import crypto
from featperm import reference as ref
from featperm.crypto import AuthenticationError, host_transfer

from tests.conftest import CPU_VARIANTS, SUPPORTED_CPU_VARIANTS, devices, needs_cuda, selected_cpu_variants


def h(text: str) -> bytes:
    """Bytes from an RFC hex dump (spaces, colons and newlines ignored)."""
    return bytes.fromhex("".join(text.replace(":", " ").split()))


def u8(data: bytes, device="cpu") -> torch.Tensor:
    return torch.tensor(list(data), dtype=torch.uint8, device=device)


def tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).numpy().tobytes()


def xor(data: bytes, key: bytes, nonce: bytes, counter: int, device="cpu") -> bytes:
    out = torch.ops.featperm.chacha20_xor(u8(data, device), u8(key), u8(nonce), counter)
    assert out.device.type == torch.device(device).type
    return tensor_bytes(out)


def kernel_targets():
    """(device, CPU variants): every variant of the ChaCha20 and Poly1305 CPU kernels (chosen
    independently: each needs only its own instructions), and CUDA when present."""
    cpu = [{"chacha20": c, "poly1305": p} for c, p in zip(CPU_VARIANTS["chacha20"], CPU_VARIANTS["poly1305"])]
    cpu.append({"chacha20": CPU_VARIANTS["chacha20"][1], "poly1305": "portable"})
    return [("cpu", v) for v in cpu] + [("cuda", None) for d in devices() if d == "cuda"]


@pytest.fixture(params=kernel_targets(),
                ids=lambda p: p[0] if p[1] is None else f"cpu-{p[1]['chacha20']}-{p[1]['poly1305']}")
def target(request):
    device, variants = request.param
    if variants is None:
        yield device
        return
    with selected_cpu_variants(**variants):
        yield device


# -- RFC 8439 known answers ----------------------------------------------------------------------

KEY_00_1F = bytes(range(32))
KEY_80_9F = bytes(range(0x80, 0xA0))
KEY_1C92 = h("1c 92 40 a5 eb 55 d3 8a f3 33 88 86 04 f6 b5 f0 47 39 17 c1 40 2b 80 09 9d ca 5c bc 20 70 75 c0")

SUNSCREEN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
             b"future, sunscreen would be it.")
IETF_TEXT = (b"Any submission to the IETF intended by the Contributor for publication as all or part of an "
             b"IETF Internet-Draft or RFC and any statement made within the context of an IETF activity is "
             b"considered an \"IETF Contribution\". Such statements include oral statements in IETF sessions, "
             b"as well as written and electronic communications made at any time or place, which are "
             b"addressed to")
JABBERWOCKY = (b"'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\nAll mimsy were the "
               b"borogoves,\nAnd the mome raths outgrabe.")
DRAFTS_TEXT = (b"Internet-Drafts are draft documents valid for a maximum of six months and may be updated, "
               b"replaced, or obsoleted by other documents at any time. It is inappropriate to use "
               b"Internet-Drafts as reference material or to cite them other than as /\xe2\x80\x9cwork in "
               b"progress./\xe2\x80\x9d")

# (key, nonce, counter, expected 64-byte keystream block): section 2.3.2 and Appendix A.1.
BLOCK_VECTORS = {
    "2.3.2": (KEY_00_1F, h("00 00 00 09 00 00 00 4a 00 00 00 00"), 1, h("""
        10 f1 e7 e4 d1 3b 59 15 50 0f dd 1f a3 20 71 c4 c7 d1 f4 c7 33 c0 68 03 04 22 aa 9a c3 d4 6c 4e
        d2 82 64 46 07 9f aa 09 14 c2 d7 05 d9 8b 02 a2 b5 12 9c d1 de 16 4e b9 cb d0 83 e8 a2 50 3c 4e""")),
    "A.1#1": (bytes(32), bytes(12), 0, h("""
        76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28 bd d2 19 b8 a0 8d ed 1a a8 36 ef cc 8b 77 0d c7
        da 41 59 7c 51 57 48 8d 77 24 e0 3f b8 d8 4a 37 6a 43 b8 f4 15 18 a1 1c c3 87 b6 69 b2 ee 65 86""")),
    "A.1#2": (bytes(32), bytes(12), 1, h("""
        9f 07 e7 be 55 51 38 7a 98 ba 97 7c 73 2d 08 0d cb 0f 29 a0 48 e3 65 69 12 c6 53 3e 32 ee 7a ed
        29 b7 21 76 9c e6 4e 43 d5 71 33 b0 74 d8 39 d5 31 ed 1f 28 51 0a fb 45 ac e1 0a 1f 4b 79 4d 6f""")),
    "A.1#3": (bytes(31) + b"\x01", bytes(12), 1, h("""
        3a eb 52 24 ec f8 49 92 9b 9d 82 8d b1 ce d4 dd 83 20 25 e8 01 8b 81 60 b8 22 84 f3 c9 49 aa 5a
        8e ca 00 bb b4 a7 3b da d1 92 b5 c4 2f 73 f2 fd 4e 27 36 44 c8 b3 61 25 a6 4a dd eb 00 6c 13 a0""")),
    "A.1#4": (b"\x00\xff" + bytes(30), bytes(12), 2, h("""
        72 d5 4d fb f1 2e c4 4b 36 26 92 df 94 13 7f 32 8f ea 8d a7 39 90 26 5e c1 bb be a1 ae 9a f0 ca
        13 b2 5a a2 6c b4 a6 48 cb 9b 9d 1b e6 5b 2c 09 24 a6 6c 54 d5 45 ec 1b 73 74 f4 87 2e 99 f0 96""")),
    "A.1#5": (bytes(32), bytes(11) + b"\x02", 0, h("""
        c2 c6 4d 37 8c d5 36 37 4a e2 04 b9 ef 93 3f cd 1a 8b 22 88 b3 df a4 96 72 ab 76 5b 54 ee 27 c7
        8a 97 0e 0e 95 5c 14 f3 a8 8e 74 1b 97 c2 86 f7 5f 8f c2 99 e8 14 83 62 fa 19 8a 39 53 1b ed 6d""")),
}

# (key, nonce, counter, plaintext, ciphertext): section 2.4.2 and Appendix A.2.
ENCRYPTION_VECTORS = {
    "2.4.2": (KEY_00_1F, h("00 00 00 00 00 00 00 4a 00 00 00 00"), 1, SUNSCREEN, h("""
        6e 2e 35 9a 25 68 f9 80 41 ba 07 28 dd 0d 69 81 e9 7e 7a ec 1d 43 60 c2 0a 27 af cc fd 9f ae 0b
        f9 1b 65 c5 52 47 33 ab 8f 59 3d ab cd 62 b3 57 16 39 d6 24 e6 51 52 ab 8f 53 0c 35 9f 08 61 d8
        07 ca 0d bf 50 0d 6a 61 56 a3 8e 08 8a 22 b6 5e 52 bc 51 4d 16 cc f8 06 81 8c e9 1a b7 79 37 36
        5a f9 0b bf 74 a3 5b e6 b4 0b 8e ed f2 78 5e 42 87 4d""")),
    "A.2#1": (bytes(32), bytes(12), 0, bytes(64), BLOCK_VECTORS["A.1#1"][3]),
    "A.2#2": (bytes(31) + b"\x01", bytes(11) + b"\x02", 1, IETF_TEXT, h("""
        a3 fb f0 7d f3 fa 2f de 4f 37 6c a2 3e 82 73 70 41 60 5d 9f 4f 4f 57 bd 8c ff 2c 1d 4b 79 55 ec
        2a 97 94 8b d3 72 29 15 c8 f3 d3 37 f7 d3 70 05 0e 9e 96 d6 47 b7 c3 9f 56 e0 31 ca 5e b6 25 0d
        40 42 e0 27 85 ec ec fa 4b 4b b5 e8 ea d0 44 0e 20 b6 e8 db 09 d8 81 a7 c6 13 2f 42 0e 52 79 50
        42 bd fa 77 73 d8 a9 05 14 47 b3 29 1c e1 41 1c 68 04 65 55 2a a6 c4 05 b7 76 4d 5e 87 be a8 5a
        d0 0f 84 49 ed 8f 72 d0 d6 62 ab 05 26 91 ca 66 42 4b c8 6d 2d f8 0e a4 1f 43 ab f9 37 d3 25 9d
        c4 b2 d0 df b4 8a 6c 91 39 dd d7 f7 69 66 e9 28 e6 35 55 3b a7 6c 5c 87 9d 7b 35 d4 9e b2 e6 2b
        08 71 cd ac 63 89 39 e2 5e 8a 1e 0e f9 d5 28 0f a8 ca 32 8b 35 1c 3c 76 59 89 cb cf 3d aa 8b 6c
        cc 3a af 9f 39 79 c9 2b 37 20 fc 88 dc 95 ed 84 a1 be 05 9c 64 99 b9 fd a2 36 e7 e8 18 b0 4b 0b
        c3 9c 1e 87 6b 19 3b fe 55 69 75 3f 88 12 8c c0 8a aa 9b 63 d1 a1 6f 80 ef 25 54 d7 18 9c 41 1f
        58 69 ca 52 c5 b8 3f a3 6f f2 16 b9 c1 d3 00 62 be bc fd 2d c5 bc e0 91 19 34 fd a7 9a 86 f6 e6
        98 ce d7 59 c3 ff 9b 64 77 33 8f 3d a4 f9 cd 85 14 ea 99 82 cc af b3 41 b2 38 4d d9 02 f3 d1 ab
        7a c6 1d d2 9c 6f 21 ba 5b 86 2f 37 30 e3 7c fd c4 fd 80 6c 22 f2 21""")),
    "A.2#3": (KEY_1C92, bytes(11) + b"\x02", 42, JABBERWOCKY, h("""
        62 e6 34 7f 95 ed 87 a4 5f fa e7 42 6f 27 a1 df 5f b6 91 10 04 4c 0d 73 11 8e ff a9 5b 01 e5 cf
        16 6d 3d f2 d7 21 ca f9 b2 1e 5f b1 4c 61 68 71 fd 84 c5 4f 9d 65 b2 83 19 6c 7f e4 f6 05 53 eb
        f3 9c 64 02 c4 22 34 e3 2a 35 6b 3e 76 43 12 a6 1a 55 32 05 57 16 ea d6 96 25 68 f8 7d 3f 3f 77
        04 c6 a8 d1 bc d1 bf 4d 50 d6 15 4b 6d a7 31 b1 87 b5 8d fd 72 8a fa 36 75 7a 79 7a c1 88 d1""")),
}

# (one-time key, message, tag): section 2.5.2 and Appendix A.3.
POLY1305_VECTORS = {
    "2.5.2": (h("85 d6 be 78 57 55 6d 33 7f 44 52 fe 42 d5 06 a8 01 03 80 8a fb 0d b2 fd 4a bf f6 af 41 49 f5 1b"),
              b"Cryptographic Forum Research Group", h("a8 06 1d c1 30 51 36 c6 c2 2b 8b af 0c 01 27 a9")),
    "A.3#1": (bytes(32), bytes(64), bytes(16)),
    "A.3#2": (bytes(16) + h("36 e5 f6 b5 c5 e0 60 70 f0 ef ca 96 22 7a 86 3e"), IETF_TEXT,
              h("36 e5 f6 b5 c5 e0 60 70 f0 ef ca 96 22 7a 86 3e")),
    "A.3#3": (h("36 e5 f6 b5 c5 e0 60 70 f0 ef ca 96 22 7a 86 3e") + bytes(16), IETF_TEXT,
              h("f3 47 7e 7c d9 54 17 af 89 a6 b8 79 4c 31 0c f0")),
    "A.3#4": (KEY_1C92, JABBERWOCKY, h("45 41 66 9a 7e aa ee 61 e7 08 dc 7c bc c5 eb 62")),
    "A.3#5": (b"\x02" + bytes(15) + bytes(16), b"\xff" * 16, b"\x03" + bytes(15)),
    "A.3#6": (b"\x02" + bytes(15) + b"\xff" * 16, b"\x02" + bytes(15), b"\x03" + bytes(15)),
    "A.3#7": (b"\x01" + bytes(15) + bytes(16), b"\xff" * 16 + b"\xf0" + b"\xff" * 15 + b"\x11" + bytes(15),
              b"\x05" + bytes(15)),
    "A.3#8": (b"\x01" + bytes(15) + bytes(16), b"\xff" * 16 + b"\xfb" + b"\xfe" * 15 + b"\x01" * 16, bytes(16)),
    "A.3#9": (b"\x02" + bytes(15) + bytes(16), b"\xfd" + b"\xff" * 15, b"\xfa" + b"\xff" * 15),
    "A.3#10": (h("01 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00") + bytes(16), h("""
        e3 35 94 d7 50 5e 43 b9 00 00 00 00 00 00 00 00 33 94 d7 50 5e 43 79 cd 01 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"""),
               h("14 00 00 00 00 00 00 00 55 00 00 00 00 00 00 00")),
    "A.3#11": (h("01 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00") + bytes(16), h("""
        e3 35 94 d7 50 5e 43 b9 00 00 00 00 00 00 00 00 33 94 d7 50 5e 43 79 cd 01 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"""), b"\x13" + bytes(15)),
}

# (key, nonce, Poly1305 one-time key): section 2.6.2 and Appendix A.4.
KEYGEN_VECTORS = {
    "2.6.2": (KEY_80_9F, h("00 00 00 00 00 01 02 03 04 05 06 07"), h("""
        8a d5 a0 8b 90 5f 81 cc 81 50 40 27 4a b2 94 71 a8 33 b6 37 e3 fd 0d a5 08 db b8 e2 fd d1 a6 46""")),
    "A.4#1": (bytes(32), bytes(12), BLOCK_VECTORS["A.1#1"][3][:32]),
    "A.4#2": (bytes(31) + b"\x01", bytes(11) + b"\x02", h("""
        ec fa 25 4f 84 5f 64 74 73 d3 cb 14 0d a9 e8 76 06 cb 33 06 6c 44 7b 87 bc 26 66 dd e3 fb b7 39""")),
    "A.4#3": (KEY_1C92, bytes(11) + b"\x02", h("""
        96 5e 3b c6 f9 ec 7e d9 56 08 08 f4 d2 29 f9 4b 13 7f f2 75 ca 9b 3f cb dd 59 de aa d2 33 10 ae""")),
}

# (key, nonce, aad, plaintext, ciphertext, tag): section 2.8.2 and Appendix A.5.
AEAD_VECTORS = {
    "2.8.2": (KEY_80_9F, h("07 00 00 00 40 41 42 43 44 45 46 47"), h("50 51 52 53 c0 c1 c2 c3 c4 c5 c6 c7"),
              SUNSCREEN, h("""
        d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2 a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
        3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b 1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
        92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58 fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
        3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b 61 16"""),
              h("1a e1 0b 59 4f 09 e2 6a 7e 90 2e cb d0 60 06 91")),
    "A.5": (KEY_1C92, h("00 00 00 00 01 02 03 04 05 06 07 08"), h("f3 33 88 86 00 00 00 00 00 00 4e 91"),
            DRAFTS_TEXT, h("""
        64 a0 86 15 75 86 1a f4 60 f0 62 c7 9b e6 43 bd 5e 80 5c fd 34 5c f3 89 f1 08 67 0a c7 6c 8c b2
        4c 6c fc 18 75 5d 43 ee a0 9e e9 4e 38 2d 26 b0 bd b7 b7 3c 32 1b 01 00 d4 f0 3b 7f 35 58 94 cf
        33 2f 83 0e 71 0b 97 ce 98 c8 a8 4a bd 0b 94 81 14 ad 17 6e 00 8d 33 bd 60 f9 82 b1 ff 37 c8 55
        97 97 a0 6e f4 f0 ef 61 c1 86 32 4e 2b 35 06 38 36 06 90 7b 6a 7c 02 b0 f9 f6 15 7b 53 c8 67 e4
        b9 16 6c 76 7b 80 4d 46 a5 9b 52 16 cd e7 a4 e9 90 40 c5 a4 04 33 22 5e e2 82 a1 b0 a0 6c 52 3e
        af 45 34 d7 f8 3f a1 15 5b 00 47 71 8c bc 54 6a 0d 07 2b 04 b3 56 4e ea 1b 42 22 73 f5 48 27 1a
        0b b2 31 60 53 fa 76 99 19 55 eb d6 31 59 43 4e ce bb 4e 46 6d ae 5a 10 73 a6 72 76 27 09 7a 10
        49 e6 17 d9 1d 36 10 94 fa 68 f0 ff 77 98 71 30 30 5b ea ba 2e da 04 df 99 7b 71 4d 6c 6f 2c 29
        a6 ad 5c b4 02 2b 02 70 9b"""),
            h("ee ad 9d 67 89 0c bb 22 39 23 36 fe a1 85 1f 38")),
}


def test_vector_lengths_as_printed_in_the_rfc():
    # Guards the typed-in vectors: lengths as the RFC's hex dumps show them.
    assert len(SUNSCREEN) == 114 and len(IETF_TEXT) == 375 and len(JABBERWOCKY) == 127
    assert len(DRAFTS_TEXT) == 265 and len(AEAD_VECTORS["A.5"][4]) == 265
    assert len(ENCRYPTION_VECTORS["A.2#2"][4]) == 375 and len(ENCRYPTION_VECTORS["A.2#3"][4]) == 127
    assert all(len(v[3]) == 64 for v in BLOCK_VECTORS.values())


def test_reference_quarter_round_rfc_2_1_1():
    assert ref.chacha20_quarter_round(0x11111111, 0x01020304, 0x9B8D6F43, 0x01234567) == (
        0xEA2A92F4, 0xCB1CF8CE, 0x4581472E, 0x5881C4BB)


@pytest.mark.parametrize("name", list(BLOCK_VECTORS))
def test_reference_block_function_matches_rfc(name):
    key, nonce, counter, expected = BLOCK_VECTORS[name]
    assert ref.chacha20_block_reference(key, counter, nonce) == expected
    assert tensor_bytes(ref.chacha20_keystream_reference(key, nonce, counter, 64)) == expected


@pytest.mark.parametrize("name", list(BLOCK_VECTORS))
def test_block_function_matches_rfc(target, name):
    key, nonce, counter, expected = BLOCK_VECTORS[name]
    assert xor(bytes(64), key, nonce, counter, target) == expected


@pytest.mark.parametrize("name", list(ENCRYPTION_VECTORS))
def test_chacha20_encryption_matches_rfc(target, name):
    key, nonce, counter, plaintext, ciphertext = ENCRYPTION_VECTORS[name]
    assert xor(plaintext, key, nonce, counter, target) == ciphertext
    assert xor(ciphertext, key, nonce, counter, target) == plaintext
    assert tensor_bytes(ref.chacha20_xor_reference(u8(plaintext), key, nonce, counter)) == ciphertext


@pytest.mark.parametrize("name", list(POLY1305_VECTORS))
def test_poly1305_matches_rfc(name):
    key, message, tag = POLY1305_VECTORS[name]
    assert tensor_bytes(torch.ops.featperm.poly1305_mac(u8(message), u8(key))) == tag
    assert ref.poly1305_reference(message, key) == tag


@pytest.mark.parametrize("name", list(KEYGEN_VECTORS))
def test_poly1305_key_generation_matches_rfc(target, name):
    key, nonce, one_time_key = KEYGEN_VECTORS[name]
    assert xor(bytes(32), key, nonce, 0, target) == one_time_key


@pytest.mark.parametrize("name", list(AEAD_VECTORS))
def test_aead_matches_rfc(target, name):
    key, nonce, aad, plaintext, ciphertext, tag = AEAD_VECTORS[name]
    ct, got_tag = crypto.aead_encrypt(u8(plaintext, target), key, nonce, aad)
    assert ct.device.type == target
    assert tensor_bytes(ct) == ciphertext and got_tag == tag
    opened = crypto.aead_decrypt(u8(ciphertext, target), tag, key, nonce, aad)  # A.5: decryption
    assert opened.device.type == target and tensor_bytes(opened) == plaintext
    assert ref.chacha20_poly1305_encrypt_reference(key, nonce, plaintext, aad) == (ciphertext, tag)


def test_aead_tag_op_matches_rfc_mac_input():
    key, nonce, aad, _, ciphertext, tag = AEAD_VECTORS["2.8.2"]
    one_time_key = ref.chacha20_block_reference(key, 0, nonce)[:32]
    mac_data = ref.chacha20_poly1305_mac_data(aad, ciphertext)
    assert len(mac_data) == 160  # the RFC's "AEAD Construction for Poly1305" dump: 10 lines of 16
    assert tensor_bytes(torch.ops.featperm.poly1305_mac(u8(mac_data), u8(one_time_key))) == tag
    assert tensor_bytes(torch.ops.featperm.chacha20_poly1305_tag(u8(aad), u8(ciphertext), u8(one_time_key))) == tag


# -- differential: kernels against the reference and each other ----------------------------------

LENGTHS = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 1000, 1023, 1024, 1025, 4095, 4096, 16 * 64 + 3,
           300_001]


@pytest.mark.parametrize("length", LENGTHS)
def test_keystream_xor_matches_reference(target, length):
    gen = torch.Generator().manual_seed(length)
    key = bytes(torch.randint(0, 256, (32,), generator=gen, dtype=torch.uint8).tolist())
    nonce = bytes(torch.randint(0, 256, (12,), generator=gen, dtype=torch.uint8).tolist())
    data = torch.randint(0, 256, (length,), generator=gen, dtype=torch.uint8)
    counter = 12345
    expected = ref.chacha20_xor_reference(data, key, nonce, counter)
    got = torch.ops.featperm.chacha20_xor(data.to(target), u8(key), u8(nonce), counter)
    assert got.device.type == target and got.shape == data.shape
    assert torch.equal(got.cpu(), expected)


def test_cpu_variants_agree_on_large_input():
    if len(SUPPORTED_CPU_VARIANTS["chacha20"]) < 2:
        pytest.skip("one ChaCha20 CPU variant only on this processor")
    data = torch.randint(0, 256, (5 * 2**20 + 77,), dtype=torch.uint8)
    key, nonce = u8(os.urandom(32)), u8(os.urandom(12))
    outs = []
    for variant in CPU_VARIANTS["chacha20"]:
        with featperm.ops.use_cpu_kernels(chacha20=variant):
            outs.append(torch.ops.featperm.chacha20_xor(data, key, nonce, 7))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], data)


def test_shapes_strides_and_unaligned_inputs(target):
    key, nonce = os.urandom(32), os.urandom(12)
    base = torch.randint(0, 256, (4 * 1024 + 5,), dtype=torch.uint8)
    for data in (base[1:], base[3:3 + 2048], base.reshape(-1)[:4096].reshape(64, 64).t(), base[:12].reshape(3, 4)):
        expected = ref.chacha20_xor_reference(data.contiguous(), key, nonce, 1)
        got = torch.ops.featperm.chacha20_xor(data.to(target) if target == "cpu" else _unaligned_on(data, target),
                                              u8(key), u8(nonce), 1)
        assert got.shape == data.shape and got.is_contiguous()
        assert torch.equal(got.cpu(), expected)


def _unaligned_on(data: torch.Tensor, device: str) -> torch.Tensor:
    """data on device at an address that is not 16-byte aligned (exercises the byte-wise path)."""
    host = torch.empty(data.numel() + 1, dtype=torch.uint8)
    host[1:] = data.reshape(-1)
    return host.to(device)[1:].reshape(data.shape)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=3000), counter=st.integers(0, 2**32 - 64),
       key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=12, max_size=12))
def test_keystream_xor_matches_reference_hypothesis(target, data, counter, key, nonce):
    expected = ref.chacha20_xor_reference(u8(data), key, nonce, counter)
    assert torch.equal(torch.ops.featperm.chacha20_xor(u8(data, target), u8(key), u8(nonce), counter).cpu(), expected)


@settings(max_examples=60, deadline=None)
@given(message=st.binary(min_size=0, max_size=600), key=st.binary(min_size=32, max_size=32))
def test_poly1305_matches_reference_hypothesis(message, key):
    assert tensor_bytes(torch.ops.featperm.poly1305_mac(u8(message), u8(key))) == ref.poly1305_reference(message, key)


@settings(max_examples=60, deadline=None)
@given(aad=st.binary(max_size=100), ciphertext=st.binary(max_size=400), key=st.binary(min_size=32, max_size=32))
def test_aead_tag_op_matches_reference_hypothesis(aad, ciphertext, key):
    got = torch.ops.featperm.chacha20_poly1305_tag(u8(aad), u8(ciphertext), u8(key))
    assert tensor_bytes(got) == ref.poly1305_reference(ref.chacha20_poly1305_mac_data(aad, ciphertext), key)


def test_poly1305_all_ones_limbs_large_message():
    # Long runs of 0xff maximise the accumulator's limbs; check the carries against Python ints.
    key = b"\xff" * 32
    for n in (16 * 1000, 16 * 1000 + 15):
        message = b"\xff" * n
        assert tensor_bytes(torch.ops.featperm.poly1305_mac(u8(message), u8(key))) == ref.poly1305_reference(message, key)


@pytest.mark.parametrize("length", [2 * 16384 * 16, 3 * 16384 * 16 + 5, 5 * 16384 * 16 - 16 * 7 + 9])
def test_poly1305_threaded_chunks_match_reference(length):
    # Messages of two or more 256 KiB chunks take the multi-threaded path (chunks joined with
    # powers of r); the result must not depend on the number of threads.
    message, key = os.urandom(length), os.urandom(32)
    expected = ref.poly1305_reference(message, key)
    aad = os.urandom(13)
    expected_aead = ref.poly1305_reference(ref.chacha20_poly1305_mac_data(aad, message), key)
    before = torch.get_num_threads()
    try:
        for threads in sorted({1, 2, max(2, before)}):
            torch.set_num_threads(threads)
            assert tensor_bytes(torch.ops.featperm.poly1305_mac(u8(message), u8(key))) == expected
            got = torch.ops.featperm.chacha20_poly1305_tag(u8(aad), u8(message), u8(key))
            assert tensor_bytes(got) == expected_aead
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("length", [0, 15, 16, 127, 128, 255, 256, 257, 1000, 4096 + 3, 70_001])
def test_poly1305_each_kernel_matches_reference(target, length):
    # cpu-isa1 takes the AVX-512 IFMA path (8 blocks per step) where the processor has IFMA;
    # cuda takes the chunked GPU path of the AEAD tag.
    message, key, aad = os.urandom(length), os.urandom(32), os.urandom(length % 19)
    if target == "cpu":
        assert tensor_bytes(torch.ops.featperm.poly1305_mac(u8(message), u8(key))) == ref.poly1305_reference(message, key)
    got = torch.ops.featperm.chacha20_poly1305_tag(u8(aad), u8(message, target), u8(key))
    assert tensor_bytes(got) == ref.poly1305_reference(ref.chacha20_poly1305_mac_data(aad, message), key)


P1305 = (1 << 130) - 5


def _chunk_sums_reference(message: bytes, key: bytes, chunk_blocks: int):
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    blocks = len(message) // 16
    sums = []
    for first in range(0, blocks, chunk_blocks):
        acc = 0
        for i in range(first, min(first + chunk_blocks, blocks)):
            acc = ((acc + int.from_bytes(message[16 * i:16 * i + 16] + b"\x01", "little")) * r) % P1305
        sums.append(acc)
    return sums


def _limbs_value(row) -> int:
    l0, l1, l2 = (int(v) for v in row)
    return (l0 + (l1 << 44) + (l2 << 88)) % P1305


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("length,chunk_blocks,offset", [(0, 4, 0), (15, 4, 0), (16, 1, 0), (16 * 37 + 5, 8, 0),
                                                        (16 * 37 + 5, 8, 3), (16 * 300, 64, 1), (5000, 1000, 0)])
def test_poly1305_chunk_sums_match_reference(device, length, chunk_blocks, offset):
    # The chunked evaluation that CUDA uses for the AEAD tag, checked on the CPU twin and on CUDA.
    raw, key = os.urandom(length + offset), os.urandom(32)
    message = u8(raw, device)[offset:]  # offset != 0: not 16-byte aligned
    sums = torch.ops.featperm._poly1305_chunk_sums(message, u8(key), chunk_blocks)
    expected = _chunk_sums_reference(raw[offset:], key, chunk_blocks)
    assert sums.device.type == device and sums.dtype == torch.int64 and tuple(sums.shape) == (len(expected), 3)
    assert [_limbs_value(row) for row in sums.cpu().tolist()] == expected
    if device == "cuda":  # the same shared code on both backends: identical limbs
        assert torch.equal(sums.cpu(), torch.ops.featperm._poly1305_chunk_sums(message.cpu(), u8(key), chunk_blocks))


@needs_cuda
@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 1000, 16 * 64 * 5 + 7, 3 * 2**20 + 9, 16 * 16384 * 70])
def test_cuda_aead_tag_matches_cpu(length):
    aad, key = os.urandom(length % 29), os.urandom(32)
    ct = torch.randint(0, 256, (length + 1,), dtype=torch.uint8)
    data = ct[:length]
    want = torch.ops.featperm.chacha20_poly1305_tag(u8(aad), data, u8(key))
    for on_device in (data.cuda(), _unaligned_on(data, "cuda")):  # 16-byte aligned, then not
        got = torch.ops.featperm.chacha20_poly1305_tag(u8(aad), on_device, u8(key))
        assert got.device.type == "cpu" and torch.equal(got, want)


# -- counter limits ----------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 5, 15, 16, 17])
def test_counter_near_32_bit_limit_matches_reference(target, k):
    counter = 2**32 - 1 - k
    key, nonce = os.urandom(32), os.urandom(12)
    for length in ((k + 1) * 64, (k + 1) * 64 - 3):  # ends exactly at block 2^32-1
        data = torch.randint(0, 256, (length,), dtype=torch.uint8)
        got = torch.ops.featperm.chacha20_xor(data.to(target), u8(key), u8(nonce), counter)
        assert torch.equal(got.cpu(), ref.chacha20_xor_reference(data, key, nonce, counter))


@pytest.mark.parametrize("k", [0, 1, 17])
def test_counter_overflow_is_refused(target, k):
    counter = 2**32 - 1 - k
    data = torch.zeros((k + 1) * 64 + 1, dtype=torch.uint8, device=target)
    with pytest.raises(ValueError, match="wrap"):
        torch.ops.featperm.chacha20_xor(data, u8(bytes(32)), u8(bytes(12)), counter)
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match="counter must be in"):
            torch.ops.featperm.chacha20_xor(data[:1], u8(bytes(32)), u8(bytes(12)), bad)


def test_aead_refuses_messages_over_rfc_limit():
    too_long = torch.empty(crypto.MAX_MESSAGE_BYTES + 1, dtype=torch.uint8, device="meta")
    with pytest.raises(ValueError, match="exceeds RFC 8439's limit"):
        crypto.aead_encrypt(too_long, bytes(32), bytes(12))


def test_op_argument_errors_name_the_argument():
    data = torch.zeros(10, dtype=torch.uint8)
    with pytest.raises(ValueError, match="key must hold exactly 32 bytes"):
        torch.ops.featperm.chacha20_xor(data, u8(bytes(31)), u8(bytes(12)), 0)
    with pytest.raises(ValueError, match="nonce must hold exactly 12 bytes"):
        torch.ops.featperm.chacha20_xor(data, u8(bytes(32)), u8(bytes(8)), 0)
    with pytest.raises(TypeError, match="data must be a uint8 tensor"):
        torch.ops.featperm.chacha20_xor(data.float(), u8(bytes(32)), u8(bytes(12)), 0)
    with pytest.raises(TypeError, match="key must be a uint8 tensor"):
        torch.ops.featperm.chacha20_xor(data, torch.zeros(32, dtype=torch.int32), u8(bytes(12)), 0)
    with pytest.raises(ValueError, match="one_time_key must hold exactly 32 bytes"):
        torch.ops.featperm.chacha20_poly1305_tag(data, data, data)
    with pytest.raises(ValueError, match="key must be exactly 32 bytes"):
        crypto.aead_encrypt(data, bytes(16), bytes(12))
    with pytest.raises(ValueError, match="nonce must be exactly 12 bytes"):
        crypto.aead_encrypt(data, bytes(32), bytes(24))
    with pytest.raises(TypeError, match="use featperm.seal"):
        crypto.aead_encrypt(data.float(), bytes(32), bytes(12))


# -- interoperability with another RFC 8439 implementation (OpenSSL via `cryptography`) ----------

def _cryptography():
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    return Cipher, algorithms, ChaCha20Poly1305


INTEROP_LENGTHS = [0, 1, 15, 63, 64, 65, 4095, 4096, 65537, 3 * 2**20 + 7]


@pytest.mark.parametrize("length", INTEROP_LENGTHS)
def test_aead_interoperates_with_cryptography(target, length):
    _, _, ChaCha20Poly1305 = _cryptography()
    key, nonce, aad = os.urandom(32), os.urandom(12), os.urandom(length % 37)
    plaintext = os.urandom(length)
    data = torch.frombuffer(bytearray(plaintext), dtype=torch.uint8) if length else torch.empty(0, dtype=torch.uint8)
    ct, tag = crypto.aead_encrypt(data.to(target), key, nonce, aad)
    assert ChaCha20Poly1305(key).decrypt(nonce, tensor_bytes(ct) + tag, aad) == plaintext
    theirs = ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)
    assert tensor_bytes(ct) + tag == theirs
    their_ct = torch.frombuffer(bytearray(theirs[:-16]), dtype=torch.uint8) if length else torch.empty(0, dtype=torch.uint8)
    assert tensor_bytes(crypto.aead_decrypt(their_ct.to(target), theirs[-16:], key, nonce, aad)) == plaintext


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plaintext=st.binary(max_size=5000), aad=st.binary(max_size=64), key=st.binary(min_size=32, max_size=32),
       nonce=st.binary(min_size=12, max_size=12))
def test_aead_interoperates_with_cryptography_hypothesis(target, plaintext, aad, key, nonce):
    _, _, ChaCha20Poly1305 = _cryptography()
    theirs = ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)
    ct, tag = crypto.aead_encrypt(u8(plaintext, target), key, nonce, aad)
    assert tensor_bytes(ct) + tag == theirs
    assert tensor_bytes(crypto.aead_decrypt(u8(theirs[:-16], target), theirs[-16:], key, nonce, aad)) == plaintext


@pytest.mark.parametrize("k", [0, 1, 15, 16, 40])
def test_keystream_near_counter_limit_matches_cryptography(target, k):
    Cipher, algorithms, _ = _cryptography()
    counter = 2**32 - 1 - k
    key, nonce = os.urandom(32), os.urandom(12)
    plaintext = os.urandom((k + 1) * 64 - 5)
    # cryptography's ChaCha20 takes a 16-byte nonce: the 32-bit counter (LE) then the RFC nonce.
    theirs = Cipher(algorithms.ChaCha20(key, counter.to_bytes(4, "little") + nonce), None).encryptor().update(plaintext)
    assert xor(plaintext, key, nonce, counter, target) == theirs


# -- sealed tensors -------------------------------------------------------------------------------

def _random_tensor(dtype, shape, gen):
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    n = 1
    for s in shape:
        n *= s
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (n * itemsize,), generator=gen, dtype=torch.uint8)
    if dtype.is_complex:
        real = {8: torch.float32, 16: torch.float64, 4: torch.float16}[itemsize]
        return torch.view_as_complex(raw.view(real).reshape(tuple(shape) + (2,)))
    return raw.view(dtype).reshape(shape)


def _raw(t: torch.Tensor) -> bytes:
    """The exact bytes of t in C order."""
    t = t.detach().cpu()
    if t.is_complex():
        t = torch.view_as_real(t.resolve_conj())
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


SEAL_DTYPES = sorted(crypto.sealed.DTYPE_CODES, key=str)


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("dtype", SEAL_DTYPES, ids=str)
def test_seal_round_trip_every_dtype_is_bit_exact(dtype):
    gen = torch.Generator().manual_seed(3)
    key, nonce = os.urandom(32), os.urandom(12)
    for shape in [(), (0,), (3, 0, 2), (7,), (2, 3, 5)]:
        x = _random_tensor(dtype, shape, gen)
        sealed = featperm.seal(x, key, nonce, b"ctx")
        y = featperm.open_sealed(bytes(sealed), key, b"ctx")
        assert y.dtype == dtype and y.shape == x.shape and _raw(y) == _raw(x)


SPECIAL_FLOAT32_BITS = [0x7FC00001, 0x7F800001, 0xFFBFFFFF, 0x80000000, 0x00000000, 0x7F800000, 0xFF800000,
                        0x00000001, 0x807FFFFF, 0x7FFFFFFF]
SPECIAL_FLOAT16_BITS = [0x7E01, 0x7C01, 0xFDFF, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x83FF]


@pytest.mark.parametrize("device", devices())
def test_seal_preserves_special_float_bit_patterns(device):
    key, nonce = os.urandom(32), os.urandom(12)
    words32 = torch.tensor([b - 2**32 if b >= 2**31 else b for b in SPECIAL_FLOAT32_BITS], dtype=torch.int32)
    words16 = torch.tensor([b - 2**16 if b >= 2**15 else b for b in SPECIAL_FLOAT16_BITS], dtype=torch.int16)
    words64 = torch.tensor([0x7FF0000000000001, 0x7FF8000000000123, -0x8000000000000000, 1], dtype=torch.int64)
    for x in (words32.view(torch.float32), words16.view(torch.float16), words16.view(torch.bfloat16),
              words64.view(torch.float64)):
        x = x.to(device)
        y = featperm.open_sealed(featperm.seal(x, key, nonce), key, device=device)
        assert y.device.type == device and _raw(y) == _raw(x)


@pytest.mark.parametrize("device", devices())
def test_seal_non_contiguous_tensors(device):
    key, nonce = os.urandom(32), os.urandom(12)
    base = torch.randn(6, 8, 10, device=device)
    cases = [base.transpose(0, 2), base[:, ::3, 1:], base[..., 0], base[0, 0, 0:1].expand(5, 4),
             torch.randn(4, 6, dtype=torch.complex64, device=device).t(),
             torch.randn(4, 6, dtype=torch.complex64, device=device).conj()]
    for x in cases:
        y = featperm.open_sealed(featperm.seal(x, key, nonce), key, device=device)
        assert y.is_contiguous() and y.shape == x.shape and _raw(y) == _raw(x)


@needs_cuda
def test_seal_cuda_tensor_opens_on_host_and_on_gpu():
    key, nonce = os.urandom(32), os.urandom(12)
    x = torch.randn(33, 65, device="cuda")
    sealed = featperm.seal(x, key, nonce, b"aad")
    assert _raw(featperm.open_sealed(sealed, key, b"aad")) == _raw(x)
    on_gpu = featperm.open_sealed(sealed, key, b"aad", device="cuda")
    assert on_gpu.is_cuda and torch.equal(on_gpu.view(torch.int32), x.view(torch.int32))
    assert bytes(sealed) == bytes(featperm.seal(x.cpu(), key, nonce, b"aad"))
    big = torch.randn(700_001, device="cuda")  # over 1 MiB: the tag is computed on the GPU
    assert bytes(featperm.seal(big, key, nonce, b"aad")) == bytes(featperm.seal(big.cpu(), key, nonce, b"aad"))


# -- the CUDA sealing path: container assembly (checked on the CPU too) ---------------------------

def _streamed_seal(x, key, nonce, aad=b""):
    """host_transfer.seal_to_host, the path seal() takes for CUDA tensors, driven like seal() drives it."""
    plain = crypto.sealed.tensor_bytes(x.detach())
    header = crypto.sealed_header(x.dtype, x.shape)
    key_t, nonce_t = crypto.aead.key_tensor(key, x.device), crypto.aead.nonce_tensor(nonce)
    return host_transfer.seal_to_host(plain, key_t, nonce_t, header + aad, header, nonce)


@pytest.mark.parametrize("ct_offset", [8 + 12, 8 + 8 + 12, 8 + 8 * 5 + 12, 64, 0, 1000])
def test_container_tensor_aligns_the_ciphertext(ct_offset):
    total = ct_offset + 777 + 16
    out = host_transfer.container_tensor(total, ct_offset, pin_memory=False)
    assert out.dtype == torch.uint8 and out.dim() == 1 and out.numel() == total and out.is_contiguous()
    assert (out.data_ptr() + ct_offset) % host_transfer.CT_ALIGN == 0


def test_container_tensor_pinned_request_always_gives_a_usable_buffer():
    # Pinned where page-locking works (a CUDA machine); otherwise ordinary memory and a warning.
    pinnable = torch.cuda.is_available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = host_transfer.container_tensor(20 + 4096 + 16, 20, pin_memory=True)
    assert out.numel() == 20 + 4096 + 16 and (out.data_ptr() + 20) % host_transfer.CT_ALIGN == 0
    assert out.is_pinned() == pinnable
    assert any("page-locked" in str(w.message) for w in caught) != pinnable
    out.fill_(7)
    assert bytes(memoryview(out.numpy())) == b"\x07" * out.numel()


def test_fill_container_view_owns_its_memory():
    header = crypto.sealed_header(torch.float32, (3,))
    out = host_transfer.container_tensor(len(header) + 12 + 12 + 16, len(header) + 12, pin_memory=False)
    view = host_transfer.fill_container(out, header, b"N" * 12)
    del out
    for _ in range(20):  # allocations that would reuse the memory if the view did not hold it
        torch.full((len(header) + 40,), 0xAB, dtype=torch.uint8)
    assert isinstance(view, memoryview) and view.format == "B" and view.ndim == 1 and not view.readonly
    assert bytes(view[:len(header)]) == header and bytes(view[len(header):len(header) + 12]) == b"N" * 12


@pytest.mark.parametrize("numel", [0, 1, 3, 1000, 70_001])
@pytest.mark.parametrize("device_tag", [False, True], ids=["host-tag", "device-tag"])
def test_streamed_seal_matches_seal_and_opens(numel, device_tag, monkeypatch):
    # device_tag: take the long-message branch (tag over the un-copied ciphertext) at small sizes.
    monkeypatch.setattr(host_transfer.options, "device_tag_min_bytes", -1 if device_tag else 1 << 20)
    key, nonce = os.urandom(32), os.urandom(12)
    x = torch.randn(numel, generator=torch.Generator().manual_seed(numel))
    sealed = _streamed_seal(x, key, nonce, b"ctx")
    assert isinstance(sealed, memoryview) and len(sealed) == 8 + 8 + 12 + 4 * numel + 16
    assert bytes(sealed) == bytes(featperm.seal(x, key, nonce, b"ctx"))
    assert _raw(featperm.open_sealed(sealed, key, b"ctx")) == _raw(x)
    sealed[len(sealed) // 2] ^= 1  # the memoryview is writable; a flipped bit is caught
    with pytest.raises(AuthenticationError):
        featperm.open_sealed(sealed, key, b"ctx")


def test_streamed_containers_stay_valid_after_later_calls():
    key = os.urandom(32)
    xs = [torch.randn(500, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    nonces = [os.urandom(12) for _ in xs]
    kept = [_streamed_seal(x, key, n) for x, n in zip(xs, nonces)]
    for _ in range(5):  # later calls whose containers are dropped at once
        _streamed_seal(xs[0], key, nonces[0])
    for x, n, sealed in zip(xs, nonces, kept):
        assert bytes(sealed) == bytes(featperm.seal(x, key, n))


def test_streamed_container_opens_with_cryptography_without_copying():
    _, _, ChaCha20Poly1305 = _cryptography()
    key, nonce = os.urandom(32), os.urandom(12)
    x = torch.randn(4, 33)
    sealed = _streamed_seal(x, key, nonce, b"req")
    header_len = 8 + 8 * 2
    plaintext = ChaCha20Poly1305(key).decrypt(sealed[header_len:header_len + 12], sealed[header_len + 12:],
                                              bytes(sealed[:header_len]) + b"req")
    assert plaintext == x.numpy().tobytes()


@needs_cuda
@pytest.mark.parametrize("numel", [0, 5, 2048, 300_000, (1 << 20) // 4 + 1, 5_000_003])
@pytest.mark.parametrize("side_stream", [True, False], ids=["copy-on-side-stream", "one-stream"])
def test_seal_cuda_returns_pinned_memoryview(numel, side_stream, monkeypatch):
    monkeypatch.setattr(host_transfer.options, "copy_on_side_stream", side_stream)
    key, nonce = os.urandom(32), os.urandom(12)
    x = torch.randn(numel, device="cuda")
    sealed = featperm.seal(x, key, nonce, b"a")
    assert isinstance(sealed, memoryview) and sealed.format == "B" and not sealed.readonly
    assert torch.from_numpy(sealed.obj).is_pinned()
    assert bytes(sealed) == bytes(featperm.seal(x.cpu(), key, nonce, b"a"))
    assert _raw(featperm.open_sealed(sealed, key, b"a")) == _raw(x.cpu())


@needs_cuda
def test_seal_cuda_containers_stay_valid_after_later_calls_and_on_side_streams():
    key = os.urandom(32)
    xs = [torch.randn(n, device="cuda") for n in (10, 2048, 400_000, 2048)]
    nonces = [os.urandom(12) for _ in xs]
    kept = [featperm.seal(x, key, n) for x, n in zip(xs, nonces)]
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        for x, n in zip(xs, nonces):  # seals on another stream, containers dropped at once
            y = x * 1  # produced on the side stream: seal must wait for it
            assert bytes(featperm.seal(y, key, n)) == bytes(featperm.seal(x.cpu(), key, n))
    for x, n, sealed in zip(xs, nonces, kept):
        assert bytes(sealed) == bytes(featperm.seal(x.cpu(), key, n))


def _parse_documented_format(sealed: bytes):
    """An independent reader of the wire format as docs/crypto.md describes it."""
    magic, version, code, ndim, reserved = struct.unpack_from("<4sBBBB", sealed, 0)
    shape = struct.unpack_from(f"<{ndim}Q", sealed, 8)
    header_len = 8 + 8 * ndim
    nonce = sealed[header_len:header_len + 12]
    return magic, version, code, shape, sealed[:header_len], nonce, sealed[header_len + 12:]


def test_sealed_container_opens_with_cryptography():
    _, _, ChaCha20Poly1305 = _cryptography()
    key, nonce = os.urandom(32), os.urandom(12)
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7
    sealed = bytes(featperm.seal(x, key, nonce, b"request-42"))
    magic, version, code, shape, header, got_nonce, rest = _parse_documented_format(sealed)
    assert (magic, version, code, shape, got_nonce) == (b"FPSL", 1, 9, (2, 3, 4), nonce)
    plaintext = ChaCha20Poly1305(key).decrypt(nonce, rest, header + b"request-42")
    assert plaintext == x.numpy().tobytes()


def test_container_built_with_cryptography_opens_with_featperm():
    _, _, ChaCha20Poly1305 = _cryptography()
    key, nonce = os.urandom(32), os.urandom(12)
    values = torch.tensor([[1, -2, 3], [40000, -5, 6]], dtype=torch.int64)
    header = struct.pack("<4sBBBB", b"FPSL", 1, 6, 2, 0) + struct.pack("<2Q", 2, 3)
    sealed = header + nonce + ChaCha20Poly1305(key).encrypt(nonce, values.numpy().tobytes(), header + b"x")
    assert torch.equal(featperm.open_sealed(sealed, key, b"x"), values)


def test_sealed_header_codes_are_stable():
    assert crypto.sealed_header(torch.float32, (2, 3)) == b"FPSL\x01\x09\x02\x00" + struct.pack("<2Q", 2, 3)
    assert crypto.sealed_header(torch.uint8, ()) == b"FPSL\x01\x02\x00\x00"


# -- tampering ---------------------------------------------------------------------------------

def test_every_bit_flip_of_a_sealed_container_is_detected():
    key, nonce = os.urandom(32), os.urandom(12)
    x = torch.tensor([[1.5, -0.0, float("nan")], [2.0, 3.0, 4.0]], dtype=torch.float16)
    sealed = bytes(featperm.seal(x, key, nonce, b"aad"))
    assert torch.equal(featperm.open_sealed(sealed, key, b"aad").view(torch.int16), x.view(torch.int16))
    for bit in range(8 * len(sealed)):  # header, nonce, ciphertext and tag
        tampered = bytearray(sealed)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(AuthenticationError):
            featperm.open_sealed(bytes(tampered), key, b"aad")
    for bad in (sealed[:-1], sealed + b"\x00", sealed[:10]):
        with pytest.raises(AuthenticationError):
            featperm.open_sealed(bad, key, b"aad")


def test_wrong_aad_or_key_is_detected():
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = featperm.seal(torch.randn(10), key, nonce, b"aad!")
    for bit in range(8 * 4):
        aad = bytearray(b"aad!")
        aad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(AuthenticationError):
            featperm.open_sealed(sealed, key, bytes(aad))
    with pytest.raises(AuthenticationError):
        featperm.open_sealed(sealed, key, b"")
    with pytest.raises(AuthenticationError):
        featperm.open_sealed(sealed, bytes(31) + b"\x01", b"aad!")


@pytest.mark.parametrize("device", devices())
def test_aead_tampering_is_detected(device):
    key, nonce, aad = os.urandom(32), os.urandom(12), b"header"
    ct, tag = crypto.aead_encrypt(torch.randint(0, 256, (100,), dtype=torch.uint8, device=device), key, nonce, aad)
    for i in (0, 37, 99):
        for bit in (0, 7):
            bad = ct.clone()
            bad[i] ^= 1 << bit
            with pytest.raises(AuthenticationError):
                crypto.aead_decrypt(bad, tag, key, nonce, aad)
    for i in range(16):
        bad_tag = bytearray(tag)
        bad_tag[i] ^= 0x80
        with pytest.raises(AuthenticationError):
            crypto.aead_decrypt(ct, bytes(bad_tag), key, nonce, aad)
    with pytest.raises(AuthenticationError):
        crypto.aead_decrypt(ct, tag, key, nonce[:-1] + bytes([nonce[-1] ^ 1]), aad)
    with pytest.raises(AuthenticationError):
        crypto.aead_decrypt(ct, tag, key, nonce, b"heades")


# -- nonces ----------------------------------------------------------------------------------

def test_nonce_sequence_is_unique_and_bounded():
    seq = crypto.NonceSequence(b"\x01\x02\x03\x04", limit=1000)
    nonces = [next(seq) for _ in range(1000)]
    assert len(set(nonces)) == 1000 and all(n[:4] == b"\x01\x02\x03\x04" and len(n) == 12 for n in nonces)
    assert nonces[5] == b"\x01\x02\x03\x04" + (5).to_bytes(8, "little")
    with pytest.raises(RuntimeError, match="exhausted"):
        next(seq)
    assert seq.was_issued(nonces[999]) and not seq.was_issued(b"\x01\x02\x03\x04" + (1000).to_bytes(8, "little"))


def test_sealer_issues_fresh_nonces_and_refuses_reuse():
    sealer = crypto.Sealer(sender_id=b"\x00\x00\x00\x07", limit=3)
    x = torch.randn(4, 4)
    first, second = sealer.seal(x), sealer.seal(x, b"a")
    assert first[:-1] != second[:-1]  # fresh nonce, different ciphertext
    nonce_of = lambda s: bytes(s[8 + 16:8 + 16 + 12])  # 2-D header: 8 + 2*8 bytes
    assert nonce_of(first) != nonce_of(second)
    assert torch.equal(sealer.open(first), x) and torch.equal(sealer.open(second, b"a"), x)
    with pytest.raises(ValueError, match="already used"):
        sealer.seal(x, nonce=nonce_of(first))  # a nonce the Sealer issued itself
    explicit = os.urandom(12)
    sealer.seal(x, nonce=explicit)
    with pytest.raises(ValueError, match="already used"):
        sealer.seal(x, nonce=explicit)  # an explicit nonce, given twice
    sealer.seal(x)  # the third issued nonce
    with pytest.raises(RuntimeError, match="exhausted"):
        sealer.seal(x)
    assert sealer.key().hex() not in repr(sealer)


def test_sealer_encrypt_returns_the_nonce_used():
    sealer = crypto.Sealer()
    data = torch.randint(0, 256, (50,), dtype=torch.uint8)
    nonce, ct, tag = sealer.encrypt(data, b"a")
    assert torch.equal(crypto.aead_decrypt(ct, tag, sealer.key(), nonce, b"a"), data)
    assert sealer.encrypt(data)[0] != nonce


# -- cascade -----------------------------------------------------------------------------------

@pytest.mark.parametrize("device", devices())
def test_seal_shuffled_round_trip(device):
    x = torch.randn(3, 16, device=device)
    bit_key = featperm.BitKey.generate(32)
    aead_key, nonce = os.urandom(32), os.urandom(12)
    sealed = crypto.seal_shuffled(x, bit_key, aead_key, nonce, b"ctx")
    assert isinstance(sealed, memoryview if device == "cuda" else bytearray)
    inner = featperm.open_sealed(sealed, aead_key, b"ctx")
    assert torch.equal(inner.view(torch.int32), featperm.shuffle_bits(x, bit_key).cpu().view(torch.int32))
    out = crypto.open_shuffled(sealed, bit_key, aead_key, b"ctx", device=device)
    assert out.device.type == device and torch.equal(out.view(torch.int32), x.view(torch.int32))


# -- CUDA specifics --------------------------------------------------------------------------------

@needs_cuda
def test_cuda_key_and_nonce_on_device_and_graph_capture():
    key, nonce = os.urandom(32), os.urandom(12)
    data = torch.randint(0, 256, (1 << 16,), dtype=torch.uint8, device="cuda")
    key_d, nonce_d = u8(key, "cuda"), u8(nonce, "cuda")
    expected = ref.chacha20_xor_reference(data.cpu(), key, nonce, 3)
    assert torch.equal(torch.ops.featperm.chacha20_xor(data, key_d, nonce_d, 3).cpu(), expected)
    # Captured with device-resident key and nonce: replays read their current values.
    torch.ops.featperm.chacha20_xor(data, key_d, nonce_d, 3)  # warm-up outside capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = torch.ops.featperm.chacha20_xor(data, key_d, nonce_d, 3)
    key2 = os.urandom(32)
    key_d.copy_(u8(key2, "cuda"))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.cpu(), ref.chacha20_xor_reference(data.cpu(), key2, nonce, 3))


@needs_cuda
def test_cuda_large_input_matches_cpu():
    data = torch.randint(0, 256, (64 * 2**20 + 13,), dtype=torch.uint8)
    key, nonce = u8(os.urandom(32)), u8(os.urandom(12))
    assert torch.equal(torch.ops.featperm.chacha20_xor(data.cuda(), key, nonce, 1).cpu(),
                       torch.ops.featperm.chacha20_xor(data, key, nonce, 1))


# -- operator registration -------------------------------------------------------------------------

@pytest.mark.parametrize("device", devices())
def test_opcheck_chacha20_xor(device):
    data = torch.randint(0, 256, (3, 100), dtype=torch.uint8, device=device)
    torch.library.opcheck(torch.ops.featperm.chacha20_xor.default, (data, u8(os.urandom(32)), u8(os.urandom(12)), 1))
    if device == "cuda":
        torch.library.opcheck(torch.ops.featperm.chacha20_xor.default,
                              (data, u8(os.urandom(32), device), u8(os.urandom(12), device), 5))


@pytest.mark.parametrize("device", devices())
def test_opcheck_poly1305_ops(device):
    if device == "cpu":
        torch.library.opcheck(torch.ops.featperm.poly1305_mac.default, (u8(os.urandom(77)), u8(os.urandom(32))))
    torch.library.opcheck(torch.ops.featperm.chacha20_poly1305_tag.default,
                          (u8(os.urandom(5)), u8(os.urandom(70), device), u8(os.urandom(32))))
    torch.library.opcheck(torch.ops.featperm._poly1305_chunk_sums.default,
                          (u8(os.urandom(300), device), u8(os.urandom(32)), 4))


@pytest.mark.parametrize("device", devices())
def test_opcheck_chacha20_poly1305_encrypt(device):
    args = (u8(os.urandom(100), device), u8(os.urandom(32)), u8(os.urandom(12)), u8(b"aad"))
    torch.library.opcheck(torch.ops.featperm.chacha20_poly1305_encrypt.default, args)
    ct, tag = torch.ops.featperm.chacha20_poly1305_encrypt(*args)
    assert ct.device.type == device and tag.device.type == "cpu"
    assert crypto.aead_decrypt(ct, tensor_bytes(tag), tensor_bytes(args[1]), tensor_bytes(args[2]), b"aad").equal(args[0])


def test_public_names():
    assert featperm.seal is crypto.seal and featperm.open_sealed is crypto.open_sealed
    assert featperm.crypto is crypto
