"""Model protection by a block-wise feature-map shuffle (AprilPyone & Kiya 2021), and its attacks.

A CIFAR-style ResNet-18 is trained with a :class:`~featperm.nn.BlockShuffle` after one position
(``conv1``, ``layer1`` ... ``layer4``) under a secret key K. Evaluated as the paper's Table I:
accuracy with K, with wrong keys K' (mean, max and spread over many random keys), without the
transform, next to the same network trained unprotected. Attacked as Tables II and III: key
estimation (:mod:`featperm.attacks.key_estimation`, the authors' greedy swap search, batched) and
random key search; and fine-tuning the stolen model without its key on a few labelled images,
next to a model trained from scratch on the same images (what the stolen weights are worth).

The protection is access control, not cryptography: each attack's result stands next to its
label and compute budget, not next to the key space (printed as log10((C·M·M)!) for reference).

Training recipe (the paper's, in :class:`TrainConfig`): SGD momentum 0.9, weight decay 5e-4, a
cyclic learning rate 0 -> 0.2 -> 0 (linear, peak at 40% of the steps), batch 128, random crop
(pad 4) and horizontal flip, CIFAR-10 normalisation, mixed precision on CUDA, 200 epochs.

:func:`run_model_protection` writes ``results.json`` (accuracies in percent) to the output folder.
Shapes: images (N, 3, H, W) uint8; labels (N,) int64.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
import time
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from featperm import _checks
from featperm._version import __version__
from featperm.attacks.key_estimation import (
    KeyEstimationConfig,
    estimate_key,
    positions_recovered,
    random_key_search,
)
from featperm.datasets.image_classification import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ImageClassificationData,
    load_image_classification,
)
from featperm.experiments._progress import run_with_bar
from featperm.keys import BlockKey
from featperm.models.resnet_cifar import ResNetCifar, resnet18_cifar
from featperm.nn import protect, set_key, unprotect

__all__ = [
    "TrainConfig",
    "ProtectionConfig",
    "train_classifier",
    "accuracy",
    "position_channels",
    "run_model_protection",
]

ProgressCallback = Callable[[int, int], None]
POSITIONS = ("conv1", "layer1", "layer2", "layer3", "layer4")
PRESETS = ("small", "fast", "paper")


@dataclasses.dataclass
class TrainConfig:
    """The training recipe. Defaults: the paper's (200 epochs, SGD 0.9 / 5e-4, cyclic lr peaking
    at 0.2, batch 128, crop + flip, mixed precision on CUDA)."""

    epochs: int = 200
    batch_size: int = 128
    lr_max: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    augment: bool = True
    mixed_precision: bool = True  # CUDA only (bf16 autocast)
    channels_last: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        where = "TrainConfig"
        _checks.integer(where, "epochs", self.epochs, minimum=1)
        _checks.integer(where, "batch_size", self.batch_size, minimum=2)
        _checks.integer(where, "seed", self.seed, minimum=0)
        if not float(self.lr_max) > 0:
            raise ValueError(f"{where}: lr_max must be > 0, got {self.lr_max}")

    @classmethod
    def fast(cls, **overrides: Any) -> "TrainConfig":
        """For CIFAR-10 on a GPU: fewer epochs, a larger batch and peak rate, label smoothing,
        channels_last (bf16 on CUDA as the paper's recipe). Its accuracy next to the paper
        recipe's has not been measured yet (that needs CIFAR-10 and a GPU)."""
        values: Dict[str, Any] = dict(epochs=30, batch_size=512, lr_max=0.4, label_smoothing=0.1, channels_last=True)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def small(cls, **overrides: Any) -> "TrainConfig":
        """For small datasets on a CPU (the built-in digits: 1,438 training images): 15 epochs,
        peak rate 0.1, label smoothing 0.1. A width-8 ResNet-18 reaches 97% on the digits in 8."""
        values: Dict[str, Any] = dict(epochs=15, lr_max=0.1, label_smoothing=0.1)
        values.update(overrides)
        return cls(**values)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with 4 pixels of zero padding and horizontal flip, per image."""
    n, _, h, w = batch.shape
    padded = F.pad(batch, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).to(batch.device)  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w)).to(batch.device)  # (n, w)
    out = padded[
        torch.arange(n, device=batch.device).view(n, 1, 1, 1),
        torch.arange(3, device=batch.device).view(1, 3, 1, 1),
        rows.view(n, 1, h, 1),
        cols.view(n, 1, 1, w),
    ]
    flip = (torch.rand(n, generator=generator) < 0.5).to(batch.device)
    return torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)


def train_classifier(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: Optional[TrainConfig] = None,
    *,
    device: torch.device | str = "cpu",
    progress: Optional[ProgressCallback] = None,
) -> torch.nn.Module:
    """Train ``model`` (protected or not) on uint8 (N, 3, H, W) images with the recipe of
    ``config``; returns it in eval mode on ``device``."""
    config = config or TrainConfig()
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x_all, y_all = images.to(device), labels.to(device)
    n = x_all.shape[0]
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))
    total = config.epochs * steps_per_epoch
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr_max, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )
    peak = max(1, int(0.4 * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))
    )
    generator = torch.Generator().manual_seed(config.seed)
    autocast = config.mixed_precision and device.type == "cuda"
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            if batch.numel() < 2:  # batch norm needs two samples
                schedule.step()
                continue
            x = _normalise(x_all[batch])
            if config.augment:
                x = _augment(x, generator)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(model(x), y_all[batch], label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if progress is not None:
            progress(epoch, config.epochs)
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent of ``model`` on uint8 (N, 3, H, W) images."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = _normalise(images[start : start + batch_size].to(device))
        correct += int((model(x).argmax(1) == labels[start : start + batch_size].to(device)).sum())
    return 100.0 * correct / max(1, images.shape[0])


def position_channels(width: int, at: str) -> int:
    """Channels of the CIFAR ResNet-18's feature map after ``at`` (the BlockKey's ``channels``)."""
    if at not in POSITIONS:
        raise ValueError(f"position_channels: at must be one of {POSITIONS}, got {at!r}")
    return width * {"conv1": 1, "layer1": 1, "layer2": 2, "layer3": 4, "layer4": 8}[at]


@dataclasses.dataclass
class ProtectionConfig:
    """One run of the model-protection experiments. Defaults: the built-in digits, a width-16
    ResNet-18 protected after layer1 with M = 2, the small-data recipe. ``preset="paper"`` (with
    ``width=64``, CIFAR-10 and a GPU) is the paper's setting. :meth:`quick` is the small run
    (under 5 minutes on 2 CPU cores)."""

    data: str = "digits"
    data_dir: Optional[str] = None
    at: str = "layer1"
    block_size: int = 2
    width: int = 16
    preset: str = "small"
    train: Optional[TrainConfig] = None  # None: the preset's
    wrong_keys: int = 100
    attack_images: int = 1000
    key_estimation: KeyEstimationConfig = dataclasses.field(default_factory=lambda: KeyEstimationConfig(rounds=2))
    random_keys: int = 1000
    fine_tune_sizes: Tuple[int, ...] = (50, 100, 500, 1000)
    fine_tune_epochs: int = 30
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        where = "ProtectionConfig"
        if self.at not in POSITIONS:
            raise ValueError(f"{where}: at must be one of {POSITIONS}, got {self.at!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"{where}: preset must be one of {PRESETS}, got {self.preset!r}")
        for name, minimum in (
            ("block_size", 1),
            ("width", 1),
            ("wrong_keys", 1),
            ("attack_images", 2),
            ("random_keys", 1),
            ("fine_tune_epochs", 1),
            ("seed", 0),
        ):
            _checks.integer(where, name, getattr(self, name), minimum=minimum)
        for size in self.fine_tune_sizes:
            _checks.integer(where, "fine_tune_sizes", size, minimum=1)

    @classmethod
    def quick(cls, **overrides: Any) -> "ProtectionConfig":
        values: Dict[str, Any] = dict(
            width=8,
            train=TrainConfig.small(epochs=8),
            wrong_keys=20,
            attack_images=200,
            random_keys=100,
            key_estimation=KeyEstimationConfig(rounds=1),
            fine_tune_sizes=(50, 100, 500),
            fine_tune_epochs=10,
        )
        values.update(overrides)
        return cls(**values)

    def training(self) -> TrainConfig:
        recipes: Dict[str, Callable[[], TrainConfig]] = {
            "paper": TrainConfig,
            "fast": TrainConfig.fast,
            "small": TrainConfig.small,
        }
        base = self.train or recipes[self.preset]()
        return dataclasses.replace(base, seed=self.seed)


def _stream(seed: int, purpose: str) -> int:
    """A seed for one purpose of the run, independent of every other purpose's: the secret key,
    the wrong keys and the attacker's draws must never come from the same generator (a random
    key search seeded like the key would find it at once)."""
    return int.from_bytes(hashlib.sha256(f"featperm protect {purpose} {seed}".encode()).digest()[:8], "little") >> 1


def _trained(
    model: torch.nn.Module, data: ImageClassificationData, config: TrainConfig, device: str, desc: str, progress: bool
) -> Tuple[torch.nn.Module, float]:
    start = time.perf_counter()
    model = run_with_bar(
        desc,
        config.epochs,
        progress,
        lambda bar: train_classifier(model, data.train_images, data.train_labels, config, device=device, progress=bar),
    )
    return model, time.perf_counter() - start


def run_model_protection(
    config: ProtectionConfig, out_dir: str | pathlib.Path, *, progress: bool = True
) -> Dict[str, Any]:
    """Train the baseline and the protected model, evaluate them (Table I), attack the protected
    model by key estimation (Table II) and fine-tuning (Table III); write ``results.json``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = (
        load_image_classification(config.data, config.data_dir)
        if config.data != "digits"
        else load_image_classification("digits")
    )
    train = config.training()
    classes = len(data.classes)
    channels = position_channels(config.width, config.at)
    generator = torch.Generator().manual_seed(_stream(config.seed, "secret key"))
    key = BlockKey(
        torch.randperm(channels * config.block_size**2, generator=generator),
        channels=channels,
        block_size=config.block_size,
    )

    baseline, baseline_seconds = _trained(
        resnet18_cifar(classes, width=config.width), data, train, config.device, "baseline", progress
    )
    protected_net = resnet18_cifar(classes, width=config.width)
    protect(protected_net, at=config.at, key=key)
    protected, protected_seconds = _trained(protected_net, data, train, config.device, "protected", progress)
    test_x, test_y = data.test_images, data.test_labels

    generator = torch.Generator().manual_seed(_stream(config.seed, "wrong keys and attack images"))
    wrong = []
    for _ in range(config.wrong_keys):
        other = BlockKey(
            torch.randperm(channels * config.block_size**2, generator=generator),
            channels=channels,
            block_size=config.block_size,
        )
        set_key(protected, other)
        wrong.append(accuracy(protected, test_x, test_y))
    set_key(protected, None)
    no_transform = accuracy(protected, test_x, test_y)
    set_key(protected, key)
    correct_key = accuracy(protected, test_x, test_y)
    wrong_t = torch.tensor(wrong, dtype=torch.float64)
    results: Dict[str, Any] = {
        "accuracy": {
            "baseline": accuracy(baseline, test_x, test_y),
            "correct_key": correct_key,
            "wrong_keys_mean": float(wrong_t.mean()),
            "wrong_keys_max": float(wrong_t.max()),
            "wrong_keys_std": float(wrong_t.std()) if len(wrong) > 1 else 0.0,
            "wrong_keys": len(wrong),
            "no_transform": no_transform,
            "chance": 100.0 / classes,
        },
        "key_space_log10": math.lgamma(channels * config.block_size**2 + 1) / math.log(10),
        "key_positions": channels * config.block_size**2,
    }

    # Table II: key estimation on attack images the thief holds (a seeded part of the training
    # split), scored on the test split.
    net: ResNetCifar = protected  # type: ignore[assignment]
    device = next(net.parameters()).device
    pick = torch.randperm(data.train_images.shape[0], generator=generator)[: config.attack_images]
    with torch.no_grad():
        attack_x = _normalise(data.train_images[pick].to(device))
        activations = net.features_at(attack_x, config.at)
    attack_y = data.train_labels[pick].to(device)

    def above(a: torch.Tensor) -> torch.Tensor:
        return net.forward_from(config.at, a)

    initial = BlockKey(
        torch.randperm(channels * config.block_size**2, generator=generator),
        channels=channels,
        block_size=config.block_size,
    )
    rounds = tqdm(total=config.key_estimation.rounds, desc="key estimation (rounds)", disable=not progress, leave=False)
    try:
        estimated = estimate_key(
            activations,
            attack_y,
            above,
            initial,
            dataclasses.replace(config.key_estimation, seed=_stream(config.seed, "key estimation")),
            progress=lambda entry: rounds.update(1),
        )
    finally:
        rounds.close()
    best_random, _ = random_key_search(
        activations,
        attack_y,
        above,
        channels=channels,
        block_size=config.block_size,
        keys=config.random_keys,
        seed=_stream(config.seed, "random key search"),
    )
    set_key(protected, estimated.key)
    estimated_accuracy = accuracy(protected, test_x, test_y)
    set_key(protected, best_random)
    random_accuracy = accuracy(protected, test_x, test_y)
    set_key(protected, key)
    results["key_estimation"] = {
        "accuracy": estimated_accuracy,
        "positions_recovered": 100.0 * positions_recovered(estimated.key, key),
        "initial_key_accuracy": None,
        "attack_images": int(pick.numel()),
        "rounds": config.key_estimation.rounds,
        "candidates_evaluated": estimated.evaluated,
        "accepted_swaps": estimated.accepted,
        "seconds": estimated.seconds,
        "random_key_search": {
            "keys": config.random_keys,
            "accuracy": random_accuracy,
            "positions_recovered": 100.0 * positions_recovered(best_random, key),
        },
    }
    set_key(protected, initial)
    results["key_estimation"]["initial_key_accuracy"] = accuracy(protected, test_x, test_y)
    set_key(protected, key)

    # Table III: fine-tune the stolen model without its key, next to training from scratch.
    fine_tuning: Dict[str, Any] = {}
    stolen_state = {k: v.detach().clone() for k, v in protected.state_dict().items()}
    for size in config.fine_tune_sizes:
        if size > data.train_images.shape[0]:
            continue
        subset = data.subset_train(size, seed=config.seed)
        recipe = dataclasses.replace(train, epochs=config.fine_tune_epochs, batch_size=min(train.batch_size, size))
        thief_model = resnet18_cifar(classes, width=config.width)
        thief_model.load_state_dict(stolen_state)  # the weights only: the thief has no key
        stolen, _ = _trained(thief_model, subset, recipe, config.device, f"fine-tune |D'|={size}", progress)
        scratch, _ = _trained(
            resnet18_cifar(classes, width=config.width), subset, recipe, config.device, f"scratch |D'|={size}", progress
        )
        fine_tuning[str(size)] = {
            "stolen": accuracy(stolen, test_x, test_y),
            "scratch": accuracy(scratch, test_x, test_y),
        }
    results["fine_tuning"] = fine_tuning
    unprotect(protected)

    results["data"] = {
        "name": data.name,
        "train": int(data.train_images.shape[0]),
        "test": int(test_x.shape[0]),
        "classes": classes,
        "image_size": list(data.train_images.shape[2:]),
    }
    results["model"] = {
        "architecture": "ResNet-18 (CIFAR)",
        "width": config.width,
        "at": config.at,
        "block_size": config.block_size,
        "channels": channels,
    }
    results["run"] = {
        "featperm": __version__,
        "torch": torch.__version__,
        "device": config.device,
        "seed": config.seed,
        "preset": config.preset,
        "train": dataclasses.asdict(train),
        "seconds": time.perf_counter() - started,
        "train_seconds": {"baseline": baseline_seconds, "protected": protected_seconds},
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    return results
