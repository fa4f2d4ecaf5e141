"""One process of tests/test_distributed.py, launched twice by torchrun (gloo, CPU); also called in
one process by the test (no launcher) for the reference. Writes what it computed to OUT/rank<r>.pt.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py OUT
"""

import pathlib
import sys

import torch
from torch import nn

from featperm.attacks.key_estimation import KeyEstimationConfig, estimate_key, random_block_key
from featperm.experiments.distributed import rank_and_world, start_from_environment, stop
from featperm.experiments.model_protection import TrainConfig, train_classifier
from featperm.models import resnet18_cifar
from featperm.ops import block_shuffle


def images_and_labels():
    """45 images (3, 8, 8) uint8 (batches of 10: the last one splits 3 + 2 across two processes) whose label is whether the left half is brighter."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (45, 3, 8, 8), generator=g, dtype=torch.uint8)
    labels = (images[..., :4].float().mean((1, 2, 3)) > images[..., 4:].float().mean((1, 2, 3))).long()
    return images, labels


def batch_norm_free_net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 2))


def key_search_setup():
    """Activations, labels and a linear 'above' whose labels come from a hidden key (float64)."""
    g = torch.Generator().manual_seed(3)
    acts = torch.randn(48, 4, 4, 4, generator=g, dtype=torch.float64)
    true = random_block_key(channels=4, block_size=2, seed=11)
    torch.manual_seed(4)
    above = nn.Sequential(nn.Flatten(), nn.Linear(64, 5)).double().eval()
    with torch.no_grad():
        above[-1].bias -= above(block_shuffle(acts, true)).mean(0)
        labels = above(block_shuffle(acts, true)).argmax(1)
    return acts, labels, above


def compute(split: bool):
    images, labels = images_and_labels()
    recipe = TrainConfig(epochs=3, batch_size=10, lr_max=0.05, mixed_precision=False, seed=5)
    plain = train_classifier(batch_norm_free_net(), images, labels, recipe)
    torch.manual_seed(2)
    resnet = train_classifier(resnet18_cifar(2, width=4), images, labels, TrainConfig(epochs=1, batch_size=10, seed=5))
    acts, key_labels, above = key_search_setup()
    config = KeyEstimationConfig(rounds=2, candidates_per_batch=3, image_chunk=8, image_batch=100)
    initial = random_block_key(channels=4, block_size=2, seed=7)
    with torch.no_grad():
        found = estimate_key(acts, key_labels, above, initial, config, split_across_processes=split)
    return {
        "plain": {k: v.detach().clone() for k, v in plain.state_dict().items()},
        "resnet": {k: v.detach().clone() for k, v in resnet.state_dict().items()},
        "key": found.key.tensor(),
        "search": (found.correct, found.accepted, found.evaluated),
        "world": rank_and_world()[1],
    }


def main(out: str) -> None:
    torch.set_num_threads(1)
    start_from_environment("cpu")
    try:
        result = compute(split=True)
        torch.save(result, pathlib.Path(out) / f"rank{rank_and_world()[0]}.pt")
    finally:
        stop()


if __name__ == "__main__":
    main(sys.argv[1])
