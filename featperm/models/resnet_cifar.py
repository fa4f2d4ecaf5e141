"""A CIFAR-style ResNet-18 (He et al. 2016, as used by AprilPyone & Kiya 2021).

Unlike torchvision's ImageNet ResNet-18 it starts with a 3x3 stride-1 convolution and no max
pool, so a 32x32 image keeps 32x32 feature maps through ``layer1`` (then 16, 8, 4). Submodule
names follow torchvision's (``conv1``, ``bn1``, ``layer1`` ... ``layer4``, ``fc``), the positions at
which :func:`featperm.protect` inserts the block shuffle in the paper.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from featperm import _checks

__all__ = ["BasicBlock", "ResNetCifar", "resnet18_cifar", "POSITIONS"]


class BasicBlock(nn.Module):
    """The residual block of ResNet-18/34: two 3x3 convolutions with batch norm and ReLU, plus the
    input (through a 1x1 convolution and batch norm when ``stride`` or the width changes).
    (N, in_planes, H, W) -> (N, planes, H / stride, W / stride)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_planes, H, W) float -> (N, planes, H / stride, W / stride), after a final ReLU."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """CIFAR-style ResNet: conv1 (3x3, stride 1) + bn1 + ReLU, four stages of BasicBlocks with
    ``width``, 2, 4 and 8 times ``width`` channels (strides 1, 2, 2, 2), global average pool, fc."""

    def __init__(self, blocks_per_stage=(2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3, width: int = 64):
        super().__init__()
        width = _checks.integer("ResNetCifar", "width", width, minimum=1)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes_in = width
        stages = []
        for i, (planes, count) in enumerate(zip((width, 2 * width, 4 * width, 8 * width), blocks_per_stage)):
            stride = 1 if i == 0 else 2
            layers = []
            for s in [stride] + [1] * (count - 1):
                layers.append(BasicBlock(planes_in, planes, s))
                planes_in = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of (N, in_channels, H, W) float images (normalised; H and W
        multiples of 8, e.g. 32). Hooks that :func:`featperm.protect` registers run here."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)

    def features_at(self, x: torch.Tensor, at: str) -> torch.Tensor:
        """The output of submodule ``at`` for input images ``x`` (N, in_channels, H, W): where
        :func:`featperm.protect` hooks the block shuffle, before it.

        ``at`` in :data:`POSITIONS` (``"conv1"``: the raw convolution output, before bn1 and
        ReLU). Returns (N, C, H', W'): C = width for conv1/layer1 (H' = H), 2, 4, 8 x width for
        layer2/3/4 (H' = H/2, H/4, H/8). Forward hooks on ``at`` itself (e.g. the shuffle of a
        model protected there) are skipped; those on earlier submodules run, as in forward.
        ``forward_from(at, features_at(x, at))`` equals ``forward(x)`` of the unprotected model.
        """
        index = _position("ResNetCifar.features_at", at)
        if index == 0:
            return self.conv1.forward(x)
        out = F.relu(self.bn1(self.conv1(x)))
        for i, name in enumerate(POSITIONS[1:], start=1):
            stage = getattr(self, name)
            if i == index:
                return stage.forward(out)
            out = stage(out)
        raise AssertionError("unreachable")

    def forward_from(self, at: str, activations: torch.Tensor) -> torch.Tensor:
        """The rest of forward after submodule ``at``: logits (N, num_classes) from
        ``activations`` (N, C, H', W'), the (possibly block-shuffled) output of ``at`` as
        :meth:`features_at` returns it. ``forward_from(at, block_shuffle(features_at(x, at),
        key))`` equals the forward of the model protected at ``at`` with ``key``."""
        index = _position("ResNetCifar.forward_from", at)
        _checks.tensor("ResNetCifar.forward_from", "activations", activations)
        out = activations
        if index == 0:
            out = F.relu(self.bn1(out))
        for name in POSITIONS[index + 1 :]:
            out = getattr(self, name)(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


POSITIONS = ("conv1", "layer1", "layer2", "layer3", "layer4")


def _position(where: str, at: object) -> int:
    if not isinstance(at, str):
        raise TypeError(f"{where}: at must be a str, one of {list(POSITIONS)}, got {type(at).__name__}")
    if at not in POSITIONS:
        raise ValueError(f"{where}: at must be one of {list(POSITIONS)}, got {at!r}")
    return POSITIONS.index(at)


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> ResNetCifar:
    """ResNet-18 for 32x32 inputs. Channels after conv1/layer1: ``width`` (64), layer2: 2*width
    (128), layer3: 4*width (256), layer4: 8*width (512) (the ``channels`` of a BlockKey for each
    position). width=64 is the network of the literature (11,173,962 parameters for 10 classes)."""
    return ResNetCifar((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, width=width)
