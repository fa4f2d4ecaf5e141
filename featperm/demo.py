"""featperm demo: encrypt deep features with ShuffleBits, look at the ciphertext, decrypt exactly.

Runs on real images that need no download (scikit-learn's bundled 8x8 handwritten digits) and a
small convolutional feature extractor. Uses the GPU when one is present.

    featperm demo          (or: make demo; python examples/demo.py)
"""

from __future__ import annotations

import torch

import featperm.crypto
from featperm._version import __version__
from featperm.keys import BitKey
from featperm.ops import has_cuda_kernels, shuffle_bits, unshuffle_bits

try:  # scikit-learn ships the digits; the demo says what to install when it is missing
    from sklearn.datasets import load_digits
except ImportError:  # pragma: no cover - requirements-dev.txt installs it
    load_digits = None


def feature_extractor() -> torch.nn.Module:
    torch.manual_seed(0)  # a fixed, untrained extractor: the demo is about the features' bits
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),  # 128 features per image
    )


def hamming_weights(t: torch.Tensor) -> torch.Tensor:
    w = t.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    return torch.stack([(w >> i) & 1 for i in range(32)]).sum(0)


def main() -> int:
    if load_digits is None:
        raise ImportError("featperm demo needs scikit-learn (its bundled digits): pip install scikit-learn")
    device = "cuda" if torch.cuda.is_available() and has_cuda_kernels() else "cpu"
    digits = load_digits()
    images = torch.tensor(digits.images[:256], dtype=torch.float32).unsqueeze(1) / 16.0
    with torch.no_grad():
        features = feature_extractor().to(device)(images.to(device))
    print(
        f"featperm {__version__} on {device}: {features.shape[0]} digit images -> "
        f"features of shape {tuple(features.shape[1:])} ({features.dtype})"
    )

    key = BitKey.generate(32)  # from the OS CSPRNG; its repr shows no key material
    cipher = shuffle_bits(features, key)
    cipher_words = shuffle_bits(features, key, as_integer=True)
    print(f"\nkey: {key!r}")
    print("plaintext  [0, :6]:", [f"{v:.4f}" for v in features[0, :6].tolist()])
    print("ciphertext [0, :6]:", [f"{v:.4g}" for v in cipher[0, :6].tolist()])
    print("ciphertext words  :", [f"0x{v & 0xFFFFFFFF:08x}" for v in cipher_words[0, :6].tolist()])
    nan_fraction = torch.isnan(cipher).float().mean().item()
    print(
        f"ciphertext read as float32: {nan_fraction:.1%} NaN, "
        f"{torch.isinf(cipher).float().mean().item():.1%} infinite "
        "(so carry it as integers: as_integer=True)"
    )

    restored = unshuffle_bits(cipher_words, key, dtype=torch.float32)
    exact = torch.equal(restored.view(torch.int32), features.view(torch.int32))
    print(f"decrypted exactly (bit for bit): {exact}")
    wrong = unshuffle_bits(cipher_words, BitKey.generate(32), dtype=torch.float32)
    close = ((wrong - features).abs() <= 0.1 * features.abs() + 1e-6).float().mean().item()
    print(f"decrypted with a wrong key: {close:.1%} of values within 10% of the truth (the zeros)")

    # Honesty: a fixed bit permutation is obfuscation, not encryption.
    zeros_kept = torch.equal(features == 0, cipher_words == 0)
    weight_kept = torch.equal(hamming_weights(features), hamming_weights(cipher))
    print(
        f"\nwhat ShuffleBits leaks: zeros stay zeros: {zeros_kept} "
        f"({(features == 0).float().mean().item():.0%} of these ReLU features are 0); "
        f"Hamming weight of every word preserved: {weight_kept}"
    )

    per_request = BitKey.generate(32, samples=features.shape[0])  # one key per image
    per_request_cipher = shuffle_bits(features, per_request, as_integer=True)
    same = torch.equal(
        unshuffle_bits(per_request_cipher, per_request, dtype=torch.float32).view(torch.int32),
        features.view(torch.int32),
    )
    print(f"per-request keys ({per_request!r}): decrypted exactly: {same}")

    # Real encryption: ChaCha20-Poly1305 (RFC 8439) on the features' device, after ShuffleBits.
    sealer = featperm.crypto.Sealer()  # a fresh 256-bit key; it never reuses a nonce
    sealed = featperm.crypto.seal_shuffled(features, key, sealer.key(), next(sealer.nonces), aad=b"demo")
    opened = featperm.crypto.open_shuffled(sealed, key, sealer.key(), aad=b"demo")
    print(
        f"sealed with ChaCha20-Poly1305: {len(sealed)} bytes for {features.numel() * 4} bytes of "
        f"features; opened exactly: {torch.equal(opened.cpu().view(torch.int32), features.cpu().view(torch.int32))}"
    )
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    try:
        featperm.crypto.open_shuffled(tampered, key, sealer.key(), aad=b"demo")
    except featperm.crypto.AuthenticationError:
        print("one flipped bit in the sealed bytes: AuthenticationError (no tensor is returned)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
