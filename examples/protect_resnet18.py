"""Protect a ResNet-18 with a block-shuffle key, train it, evaluate it, store weights and key apart.

Shows the API of featperm.nn.protect (AprilPyone & Kiya 2021): a BlockShuffle after layer1 of a
CIFAR ResNet-18 under a BlockKey derived from a master secret; brief training on scikit-learn's
bundled digits (32x32 RGB, no download); accuracy with the key, with a wrong key and without the
transform; the weights (torch.save of the state dict) and the key (a featperm key file) written
to SEPARATE files, the key absent from the state dict, and a fresh model rebuilt from both.
A demonstration of the API, not a measurement: a tiny width and a few epochs (well under a minute on
one CPU thread). The measured experiment with its attacks is `featperm protect` (docs/block_shuffle.md).

    python examples/protect_resnet18.py [--width 8] [--epochs 4] [--secret MASTER.fpk] [--out DIR]
"""

import argparse
import os
import tempfile
import time

import torch

from featperm import keys
from featperm.datasets.image_classification import load_digits_rgb
from featperm.experiments.model_protection import TrainConfig, accuracy, train_classifier
from featperm.keys import BlockKey
from featperm.models import resnet18_cifar
from featperm.nn import protect, set_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8, help="channels of conv1/layer1 (the paper: 64)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--secret", help="a master-secret key file (featperm keys new); default: a fresh secret")
    parser.add_argument("--out", help="folder for the weights and key files (default: a temporary one)")
    args = parser.parse_args()
    start = time.perf_counter()
    out = args.out or tempfile.mkdtemp(prefix="featperm-protect-")
    data = load_digits_rgb(size=32)  # (N, 3, 32, 32) uint8, 10 classes
    secret = keys.load_secret(args.secret) if args.secret else keys.generate_secret()
    key = BlockKey.derive(secret, "model lock", "resnet18/layer1", channels=args.width, block_size=2)
    model = protect(resnet18_cifar(10, width=args.width), at="layer1", key=key)
    config = TrainConfig.small(epochs=args.epochs, batch_size=64)
    model = train_classifier(model, data.train_images, data.train_labels, config)

    def test_accuracy(m: torch.nn.Module) -> float:
        return accuracy(m, data.test_images, data.test_labels)

    with_key = test_accuracy(model)
    wrong_keys = []
    for _ in range(5):  # wrong keys from the OS CSPRNG
        set_key(model, BlockKey.generate(channels=args.width, block_size=2))
        wrong_keys.append(test_accuracy(model))
    set_key(model, None)  # the protected weights without the transform
    no_transform = test_accuracy(model)
    set_key(model, key)
    wrong = f"{sum(wrong_keys) / len(wrong_keys):.1f}% (max {max(wrong_keys):.1f}%)"
    print(f"ResNet-18 (width {args.width}) protected after layer1 with {key!r}, {args.epochs} epochs on the digits")
    print(f"test accuracy with the key: {with_key:.1f}%")
    print(f"test accuracy with 5 wrong keys: {wrong}; without the transform: {no_transform:.1f}% (chance 10%)")

    weights_path, key_path = os.path.join(out, "resnet18_weights.pt"), os.path.join(out, "resnet18_layer1.fpk")
    state = model.state_dict()
    torch.save(state, weights_path)
    keys.save_key(key_path, key, overwrite=True)  # mode 0o600; keep it apart from the weights
    v = key.permutation()
    key_in_state = any(t.shape == v.shape and torch.equal(t.to(torch.int64), v) for t in state.values())
    names = [name for name in state if "featperm" in name or "shuffle" in name]
    print(f"weights: {weights_path} ({len(state)} entries); key: {key_path}")
    print(f"key in the state dict: {key_in_state} (entries named after the shuffle: {names})")

    rebuilt = resnet18_cifar(10, width=args.width)
    rebuilt.load_state_dict(torch.load(weights_path, weights_only=True))  # the weights alone
    print(f"weights loaded without the key: {test_accuracy(rebuilt):.1f}%")
    protect(rebuilt, at="layer1", key=keys.load_key(key_path, expected_kind=BlockKey))
    restored = test_accuracy(rebuilt)
    print(f"weights + key file: {restored:.1f}% (same as with the key: {restored == with_key})")
    print(f"done in {time.perf_counter() - start:.0f} s. An access-control lock, not cryptography: key estimation")
    print("and fine-tuning attacks restore accuracy (featperm protect measures them; docs/threat_models.md).")


if __name__ == "__main__":
    main()
