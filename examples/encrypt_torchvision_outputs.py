"""Encrypt the outputs of a torchvision model with the featperm.nn.ShuffleBits layer, then seal them.

Shows: (1) ShuffleBits as the last layer of any torchvision backbone (untrained, weights=None:
nothing is downloaded), exact decryption, and what an interceptor of those words still sees (zeros,
Hamming weights, the key from one known vector); (2) the same layer with ``sealer=``: ShuffleBits,
then ChaCha20-Poly1305, opened exactly with the keys, refused with a wrong key or one flipped bit.
Input: 8 of scikit-learn's bundled digits as 64x64 RGB. Runs in seconds on a CPU.

    python examples/encrypt_torchvision_outputs.py [--model resnet18|mobilenet_v3_small|...]
"""

import argparse
import struct

import torch
import torchvision

from featperm.attacks.bit_cryptanalysis import leakage
from featperm.attacks.known_plaintext import consistent_bit_key
from featperm.crypto import AuthenticationError, Sealer, open_shuffled
from featperm.datasets.image_classification import load_digits_rgb
from featperm.keys import BitKey
from featperm.nn import ShuffleBits
from featperm.ops import unshuffle_bits


def backbone(name: str) -> torch.nn.Module:
    """A torchvision classifier with its classification layer replaced by Identity: a feature extractor."""
    model = torchvision.models.get_model(name, weights=None)
    for attribute in ("fc", "classifier", "heads", "head"):  # where torchvision keeps the classifier
        if hasattr(model, attribute):
            setattr(model, attribute, torch.nn.Identity())
            return model.eval()
    raise SystemExit(f"{name}: no fc/classifier/heads/head attribute to replace")


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def what_leaks(plain: torch.Tensor, words: torch.Tensor) -> str:
    leak = leakage(plain, words)  # featperm.attacks: what ciphertext words reveal without the key
    zeros = leak["zero_fraction"]
    shown = f"{leak['zero_fraction_exposed']:.0%} of the {zeros:.1%} zero values stay zero" if zeros else "no zeros"
    return f"{shown}; Hamming weight kept in {leak['hamming_weight_equal']:.0%} of the words"


def try_open(sealed: bytes, bit_key: BitKey, aead_key: bytes) -> str:
    try:
        open_shuffled(sealed, bit_key, aead_key, aad=b"request 1")
        return "opened (unexpected)"
    except AuthenticationError:
        return "AuthenticationError, nothing decrypted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a torchvision.models name (default resnet18)")
    model_name = parser.parse_args().model
    torch.manual_seed(0)
    images = load_digits_rgb(size=64).test_images[:8].float() / 255.0  # (8, 3, 64, 64)
    key = BitKey.generate(32)  # from the OS CSPRNG; its repr shows no key material
    model = torch.nn.Sequential(backbone(model_name), ShuffleBits(key, as_integer=True))
    seen = {}  # the features as the server computed them, just before the ShuffleBits layer
    model[1].register_forward_pre_hook(lambda module, inputs: seen.update(plain=inputs[0].clone()))
    with torch.no_grad():
        words = model(images)
    plain = seen["plain"]
    print(f"{model_name}: features {tuple(plain.shape)} {plain.dtype} -> ciphertext {words.dtype}")
    exact = same_bits(unshuffle_bits(words, key, dtype=torch.float32), plain)
    wrong = same_bits(unshuffle_bits(words, BitKey.generate(32), dtype=torch.float32), plain)
    print(f"ShuffleBits: decrypted exactly with the key: {exact}; with a wrong key: {wrong}")
    print(f"interceptor of ShuffleBits words: {what_leaks(plain, words)}")
    guess = consistent_bit_key(plain[0], words[0])  # from one known (plaintext, ciphertext) vector
    decrypted = unshuffle_bits(words[1:], guess, dtype=torch.float32)
    share = (decrypted.view(torch.int32) == plain[1:].view(torch.int32)).float().mean().item()
    print(f"interceptor knowing 1 plain vector: its key decrypts {share:.2%} of the other vectors' values")

    sealer = Sealer()  # a fresh 256-bit ChaCha20-Poly1305 key; never reuses a nonce
    model[1] = ShuffleBits(key, sealer=sealer, aad=b"request 1")
    with torch.no_grad():
        sealed = model(images)
    opened = same_bits(open_shuffled(sealed, key, sealer.key(), aad=b"request 1"), plain)
    print(f"cascade: {len(sealed)} sealed bytes for {plain.numel() * 4} bytes of features; opened exactly: {opened}")
    print(f"cascade with a wrong AEAD key: {try_open(sealed, key, Sealer().key())}")
    print(f"cascade with one flipped bit: {try_open(bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1]), key, sealer.key())}")
    _, _, code, ndim, _ = struct.unpack_from("<4sBBBB", sealed, 0)  # the header (docs/formats.md)
    shape = struct.unpack_from(f"<{ndim}Q", sealed, 8)
    body = torch.frombuffer(bytearray(sealed[8 + 8 * ndim + 12 : -16]), dtype=torch.int32)  # ciphertext words
    print(f"interceptor of the cascade: dtype code {code} and shape {shape} in clear; {what_leaks(plain, body)}")


if __name__ == "__main__":
    main()
