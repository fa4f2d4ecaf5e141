"""Reconstruction of images from feature vectors (Ni, Huttunen, Rahtu 2021, section 4).

The attacker trains a generator from feature vectors to images on its own (image, feature) pairs
(features requested in plain form from the feature API), then applies it to intercepted vectors.

Generator (the authors' design, scaled with the image size): two linear layers (ReLU), a reshape
to the smallest map (H / 2^k, W / 2^k), k upsampling residual blocks (BN, ReLU, upsample, 3x3
conv, BN, ReLU, 3x3 conv, plus an upsampled 1x1-conv shortcut) with filters base·2^(k-1) ... base,
BN, ReLU, a 3x3 conv to RGB and (tanh + 1) / 2 so that pixels lie in [0, 1]. The authors used
384x128 images, k = 5 and base = 16 (filters 256 ... 16).

Losses (the authors' weights as defaults): pixel MSE (1), feature-reconstruction MSE on an
early layer of a perceptual network (1), and a least-squares GAN loss (0.06) with a
discriminator that sees the image and the feature vector (concatenation of pooled image
features and a linear map of the vector). Adam 1e-4 for both networks. The "autoencoder" setting
is pixel loss alone.

Perceptual network: the authors used an ImageNet ResNet-50 (``conv2_block3_out``), which cannot be
downloaded here. :func:`resnet50_perceptual` takes a user's weights file for it;
:func:`train_perceptual_network` trains a small CNN on the attacker's own images and attribute
labels, which the attacker can always do. Results name the network used.

Metric: mean cosine distance between the proprietary model's features of the originals and of
the reconstructions, next to the same distance between random pairs of originals (chance).

Shapes: features (N, D) float; images (N, 3, H, W) float in [0, 1]; H and W divisible by 2^k.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Callable, Dict, List, Mapping, Optional

import torch
from torch import nn
from torch.nn import functional as F

from featperm import _checks

__all__ = [
    "ReconstructionConfig",
    "Generator",
    "Discriminator",
    "PerceptualNetwork",
    "ReconstructionResult",
    "train_reconstruction",
    "reconstruct",
    "cosine_distance",
    "random_pair_cosine_distance",
    "resnet50_perceptual",
    "train_perceptual_network",
    "upsampling_blocks",
]

ProgressCallback = Callable[[int, int], None]


@dataclasses.dataclass
class ReconstructionConfig:
    """Training settings; defaults are the authors' (GAN setting: pixel 1, perceptual 1,
    adversarial 0.06, Adam 1e-4, batch 64; discriminator filters 32 doubling per block).
    ``base_filters`` and ``blocks`` set the generator's size (None: as many blocks as the image
    size allows, at most 5)."""

    epochs: int = 30
    batch_size: int = 64
    lr_generator: float = 1e-4
    lr_discriminator: float = 1e-4
    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    adversarial_weight: float = 0.06
    base_filters: int = 16
    discriminator_filters: int = 32
    blocks: Optional[int] = None
    dense_units: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        where = "ReconstructionConfig"
        _checks.integer(where, "epochs", self.epochs, minimum=1)
        _checks.integer(where, "batch_size", self.batch_size, minimum=2)
        _checks.integer(where, "base_filters", self.base_filters, minimum=1)
        _checks.integer(where, "discriminator_filters", self.discriminator_filters, minimum=1)
        _checks.integer(where, "dense_units", self.dense_units, minimum=1)
        _checks.integer(where, "seed", self.seed)
        if self.blocks is not None:
            _checks.integer(where, "blocks", self.blocks, minimum=1)
        for name in ("pixel_weight", "perceptual_weight", "adversarial_weight"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{where}: {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def autoencoder(cls, **overrides: object) -> "ReconstructionConfig":
        """The authors' autoencoder setting: pixel loss alone."""
        values: Dict[str, object] = {"perceptual_weight": 0.0, "adversarial_weight": 0.0}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def upsampling_blocks(height: int, width: int, at_most: int = 5) -> int:
    """How many 2x upsampling blocks fit: the largest k <= at_most with H and W divisible by 2^k."""
    k = 0
    while k < at_most and height % (2 ** (k + 1)) == 0 and width % (2 ** (k + 1)) == 0:
        k += 1
    return k


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class Generator(nn.Module):
    """Feature vector (N, D) -> image (N, 3, H, W) in [0, 1] (see the module docstring)."""

    def __init__(
        self,
        feature_dim: int,
        height: int,
        width: int,
        base_filters: int = 16,
        blocks: Optional[int] = None,
        dense_units: int = 256,
    ):
        super().__init__()
        k = upsampling_blocks(height, width) if blocks is None else blocks
        if k < 1 or height % 2**k or width % 2**k:
            raise ValueError(
                f"Generator: height and width must be divisible by 2^blocks (blocks={k}), got {height}x{width}"
            )
        self.start = (base_filters * 2**k, height // 2**k, width // 2**k)  # smallest map: (C, h, w)
        c0, h0, w0 = self.start
        self.dense = nn.Sequential(
            nn.Linear(feature_dim, dense_units), nn.ReLU(), nn.Linear(dense_units, c0 * h0 * w0), nn.ReLU()
        )
        ups, channels = [], c0
        for index in range(k):
            out = base_filters * 2 ** (k - index - 1)
            ups.append(_Up(channels, out))
            channels = out
        self.ups = nn.Sequential(*ups)
        self.to_rgb = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim) float features -> (N, 3, height, width) images in [0, 1], same dtype."""
        x = self.dense(features).view(features.shape[0], *self.start)
        return (torch.tanh(self.to_rgb(self.ups(x))) + 1) / 2


class Discriminator(nn.Module):
    """Least-squares GAN critic of (image, feature vector) pairs: downsampling residual blocks,
    global average pool, concatenated with a linear map of the vector, one linear output."""

    def __init__(self, feature_dim: int, blocks: int, base_filters: int = 32):
        super().__init__()
        layers: List[nn.Module] = []
        channels = 3
        for index in range(blocks):
            out = base_filters * 2**index
            layers.append(_Down(channels, out))
            channels = out
        self.body = nn.Sequential(*layers)
        self.condition = nn.Linear(feature_dim, channels)
        self.head = nn.Linear(2 * channels, 1)

    def forward(self, images: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of (N, 3, H, W) images in [0, 1] paired with their (N, feature_dim)
        feature vectors: near 1 for real pairs, near 0 for generated ones (least squares)."""
        pooled = self.body(images).mean(dim=(2, 3))
        return self.head(torch.cat([pooled, self.condition(features)], dim=1)).squeeze(1)


class _Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.AvgPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class PerceptualNetwork(nn.Module):
    """Wraps a frozen network ``body`` that maps normalised images to feature maps; ``forward``
    takes images in [0, 1]. ``name`` says which network it is (results report it)."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, body: nn.Module, name: str, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__()
        self.body = body.eval()
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.name = name
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualNetwork":
        """``nn.Module.train``, except that the frozen body stays in eval mode (its batch-norm
        statistics never change); returns ``self``."""
        super().train(mode)
        self.body.eval()  # frozen: batch norm keeps its statistics
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float images in [0, 1] -> the body's feature maps (N, C', H', W'), after
        normalising with ``mean`` and ``std``. Gradients flow to the images, not to the body."""
        return self.body((images - self.mean) / self.std)


def resnet50_perceptual(weights_path: str) -> PerceptualNetwork:
    """torchvision's ResNet-50 with a user's weights file (a state dict, e.g. ImageNet weights
    saved with ``torch.save(resnet50(weights=...).state_dict(), path)``), cut after ``layer1``
    (Keras' ``conv2_block3_out``, the authors' layer)."""
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"resnet50_perceptual: no weights file at {weights_path}")
    torchvision_models = importlib.import_module("torchvision.models")  # optional: only this needs it
    model = torchvision_models.resnet50()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1)
    return PerceptualNetwork(body, f"ResNet-50 layer1 ({os.path.basename(weights_path)})")


class _AttributeCNN(nn.Module):
    def __init__(self, outputs: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.rest = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.features(x))


def train_perceptual_network(
    images: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    num_classes: Mapping[str, int],
    *,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    progress: Optional[ProgressCallback] = None,
) -> PerceptualNetwork:
    """A small CNN trained on the attacker's own images to predict their attributes; its early
    layers (before the second pooling) serve as the perceptual network. (N, 3, H, W) images in
    [0, 1]; labels as for attribute inference (-1 = not annotated)."""
    images = _checks.tensor("train_perceptual_network", "images", images)
    torch.manual_seed(seed)
    names = list(labels)
    offsets, total = [], 0
    for n in names:
        offsets.append(total)
        total += int(num_classes[n])
    net = _AttributeCNN(total).to(images.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor((0.485, 0.456, 0.406), device=images.device).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), device=images.device).view(1, 3, 1, 1)
    label_matrix = torch.stack([labels[n].to(images.device) for n in names], dim=1)
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(images.shape[0], generator=generator).to(images.device)
        for start in range(0, order.numel(), batch_size):
            batch = order[start : start + batch_size]
            if batch.numel() < 2:
                continue
            logits = net((images[batch] - mean) / std)
            loss = logits.new_zeros(())
            for i, n in enumerate(names):
                target = label_matrix[batch, i]
                part = logits[:, offsets[i] : offsets[i] + int(num_classes[n])]
                if (target >= 0).any():
                    loss = loss + F.cross_entropy(part, target, ignore_index=-1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(epoch, epochs)
    net.eval()
    return PerceptualNetwork(net.features, "small CNN trained on the attacker's own images (attributes)")


@dataclasses.dataclass
class ReconstructionResult:
    """The trained generator and the per-epoch mean training losses."""

    generator: Generator
    losses: List[Dict[str, float]]
    perceptual: Optional[str]


def _lsgan_real(score: torch.Tensor) -> torch.Tensor:
    return ((score - 1) ** 2).mean()


def _lsgan_fake(score: torch.Tensor) -> torch.Tensor:
    return (score**2).mean()


def train_reconstruction(
    features: torch.Tensor,
    images: torch.Tensor,
    config: Optional[ReconstructionConfig] = None,
    *,
    perceptual: Optional[PerceptualNetwork] = None,
    progress: Optional[ProgressCallback] = None,
) -> ReconstructionResult:
    """Train a generator on the attacker's (features (N, D), images (N, 3, H, W) in [0, 1]).

    ``perceptual`` is required when ``config.perceptual_weight > 0``. Runs on the features'
    device."""
    where = "train_reconstruction"
    config = config or ReconstructionConfig()
    features = _checks.tensor(where, "features", features)
    images = _checks.tensor(where, "images", images)
    if features.dim() != 2 or images.dim() != 4 or images.shape[0] != features.shape[0] or images.shape[1] != 3:
        raise ValueError(
            f"{where}: expected features (N, D) and images (N, 3, H, W), got {tuple(features.shape)} "
            f"and {tuple(images.shape)}"
        )
    if config.perceptual_weight > 0 and perceptual is None:
        raise ValueError(f"{where}: perceptual_weight > 0 needs a perceptual network (perceptual=...)")
    device = features.device
    torch.manual_seed(config.seed)
    _, _, height, width = images.shape
    generator = Generator(features.shape[1], height, width, config.base_filters, config.blocks, config.dense_units)
    generator = generator.to(device)
    blocks = len(generator.ups)
    use_gan = config.adversarial_weight > 0
    discriminator = (
        Discriminator(features.shape[1], blocks, config.discriminator_filters).to(device) if use_gan else None
    )
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_generator)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator) if discriminator else None
    if perceptual is not None:
        perceptual = perceptual.to(device).eval()
    order_generator = torch.Generator().manual_seed(config.seed)
    losses: List[Dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        generator.train()
        totals: Dict[str, float] = {}
        steps = 0
        order = torch.randperm(features.shape[0], generator=order_generator).to(device)
        for start in range(0, order.numel(), config.batch_size):
            batch = order[start : start + config.batch_size]
            if batch.numel() < 2:
                continue
            x, target = features[batch], images[batch]
            fake = generator(x)
            if discriminator is not None and opt_d is not None:
                d_loss = _lsgan_real(discriminator(target, x)) + _lsgan_fake(discriminator(fake.detach(), x))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                totals["discriminator"] = totals.get("discriminator", 0.0) + float(d_loss.detach())
            parts: Dict[str, torch.Tensor] = {"pixel": F.mse_loss(fake, target)}
            if perceptual is not None and config.perceptual_weight > 0:
                parts["perceptual"] = F.mse_loss(perceptual(fake), perceptual(target))
            if discriminator is not None:
                parts["adversarial"] = _lsgan_real(discriminator(fake, x))
            weights = {
                "pixel": config.pixel_weight,
                "perceptual": config.perceptual_weight,
                "adversarial": config.adversarial_weight,
            }
            loss = sum(weights[k] * v for k, v in parts.items())
            opt_g.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt_g.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            steps += 1
        losses.append({k: v / max(steps, 1) for k, v in totals.items()})
        if progress is not None:
            progress(epoch, config.epochs)
    generator.eval()
    return ReconstructionResult(generator=generator, losses=losses, perceptual=perceptual.name if perceptual else None)


@torch.no_grad()
def reconstruct(generator: Generator, features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] from feature vectors (N, D)."""
    generator.eval()
    parts = [generator(features[i : i + batch_size]) for i in range(0, features.shape[0], batch_size)]
    return torch.cat(parts)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine distance 1 - cos(a_i, b_i) of two (N, D) tensors (1 where a row is all
    zeros: torch's cosine similarity is 0 there)."""
    return 1 - F.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12)


def random_pair_cosine_distance(features: torch.Tensor, seed: int = 0, pairs: Optional[int] = None) -> float:
    """Mean cosine distance between random pairs of different rows of (N, D) features: how far
    one user's features are from another's. A reference, not a floor: a constant, average-looking
    reconstruction can be closer (see the experiment's ``constant_reconstruction``)."""
    n = features.shape[0]
    if n < 2:
        raise ValueError(f"random_pair_cosine_distance: needs at least 2 rows, got {n}")
    generator = torch.Generator().manual_seed(seed)
    count = pairs or n
    first = torch.randint(n, (count,), generator=generator)
    second = (first + torch.randint(1, n, (count,), generator=generator)) % n  # never the same row
    return float(cosine_distance(features[first.to(features.device)], features[second.to(features.device)]).mean())
