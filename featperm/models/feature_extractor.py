"""A small re-identification network: the "proprietary model" of the ShuffleBits experiments.

Ni, Huttunen and Rahtu (2021) attack the pooled features of a ResNet-50 re-ID model (the
"bag of tricks" baseline). :class:`ReidFeatureExtractor` is the same design scaled down to run
on a CPU: residual convolution stages, global average pooling of ReLU activations (so the
features are non-negative with many exact zeros, as a ResNet's), then a batch-norm neck and an
identity classifier used only in training. ``features(images)`` is what the feature API returns.

Shapes: images (N, 3, H, W) float in [0, 1] (H, W multiples of 8 are best; any size works);
``features`` (N, feature_dim) float32; ``forward`` returns identity logits (N, num_identities).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ReidFeatureExtractor", "IMAGE_MEAN", "IMAGE_STD"]

# ImageNet statistics: the usual input normalisation of re-ID models.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class _Residual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ReidFeatureExtractor(nn.Module):
    """Residual CNN -> global average pool (the features) -> BN neck -> identity classifier.

    Args:
        num_identities: classes of the identity classifier used in training.
        widths: channels of the stages; the stem halves the resolution, the first stage keeps it,
            each later one halves it. ``feature_dim`` = ``widths[-1]``.
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, num_identities: int, widths: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        stages = []
        in_channels = widths[0]
        for index, width in enumerate(widths):
            stages.append(_Residual(in_channels, width, stride=1 if index == 0 else 2))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.neck = nn.BatchNorm1d(in_channels)
        self.neck.bias.requires_grad_(False)  # the BNNeck of the re-ID baseline
        self.classifier = nn.Linear(in_channels, num_identities, bias=False)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        self.feature_dim = in_channels

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [0, 1] -> (N, feature_dim) pooled ReLU features."""
        x = (images - self.mean) / self.std
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Identity logits (N, num_identities), for training."""
        return self.classifier(self.neck(self.features(images)))
