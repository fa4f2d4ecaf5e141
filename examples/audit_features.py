"""Audit a features file for attribute leakage: what an attacker reads from your feature vectors.

Reads a ``.npz`` in featperm's user format (``features`` (N, D) float, one integer label array per
attribute, optional ``split``: 0 = the attacker's own labelled data, 1 = intercepted vectors; see
featperm/datasets/feature_files.py), trains the ShuffleBits paper's attribute-inference heads
(featperm.attacks.attribute_inference) on the attacker's part and prints, per attribute, the
balanced accuracy on the intercepted part next to chance (1/classes). Without a path it first
writes a small example file: ReLU features that encode "glasses" strongly, "colour" weakly and
"unrelated" not at all. Runs in seconds on a CPU.

    python examples/audit_features.py [FEATURES.npz] [--epochs 100] [--lr 2e-3] [--seed 0]
"""

import argparse
import os
import tempfile

import torch

from featperm.attacks.attribute_inference import (
    AttributeInferenceConfig,
    chance_level,
    evaluate_attribute_heads,
    train_attribute_heads,
)
from featperm.datasets.feature_files import load_feature_file, save_feature_file


def write_example(path: str, n: int = 800, dims: int = 64, seed: int = 0) -> None:
    """Features (n, dims) that leak two of three attributes, saved in the user format."""
    g = torch.Generator().manual_seed(seed)
    labels = {
        "glasses": torch.randint(0, 2, (n,), generator=g),
        "colour": torch.randint(0, 4, (n,), generator=g),
        "unrelated": torch.randint(0, 3, (n,), generator=g),
    }
    glasses_dir, colour_dirs = torch.randn(dims, generator=g), torch.randn(4, dims, generator=g)
    latent = 1.0 * labels["glasses"].float().unsqueeze(1) * glasses_dir + 0.15 * colour_dirs[labels["colour"]]
    features = torch.relu(latent + torch.randn(n, dims, generator=g))  # "unrelated" is never used
    split = (torch.arange(n) >= n // 2).long()  # first half: the attacker's data; second: intercepted
    save_feature_file(path, features, labels, split=split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", nargs="?", help="a .npz features file (default: write an example one)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (the paper: 5e-5 over 100 epochs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    path = args.features
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="featperm-audit-"), "features.npz")
        write_example(path, seed=args.seed)
        print(f"wrote an example features file: {path}")
    data = load_feature_file(path)
    split = data.split
    if split is None:  # no split in the file: a seeded half/half split
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))
        split = (order < len(data) // 2).long()
    own, intercepted = split == 0, split == 1
    num_classes = {name: len(values) for name, values in data.classes.items() if len(values) >= 2}
    labels = {name: data.attributes[name] for name in num_classes}
    sizes = f"{int(own.sum())} attacker's own, {int(intercepted.sum())} intercepted"
    print(f"{len(data)} vectors of {data.features.shape[1]} dims: {sizes}")

    config = AttributeInferenceConfig(epochs=args.epochs, lr=args.lr, seed=args.seed)
    own_labels = {name: values[own] for name, values in labels.items()}
    their_labels = {name: values[intercepted] for name, values in labels.items()}
    result = train_attribute_heads(data.features[own], own_labels, num_classes, config)
    scores = evaluate_attribute_heads(result.heads, data.features[intercepted], their_labels)
    print(f"{'attribute':<12} {'classes':>7} {'balanced acc':>12} {'chance':>7}  verdict")
    for name, score in scores.items():
        chance = chance_level(num_classes[name])
        verdict = "LEAKS" if score >= chance + 0.10 else "near chance"
        print(f"{name:<12} {num_classes[name]:>7} {score:>12.1%} {chance:>7.1%}  {verdict}")
    print("(one run on one split; the 0.10 margin is a rule of thumb, not a test: repeat with other seeds)")


if __name__ == "__main__":
    main()
