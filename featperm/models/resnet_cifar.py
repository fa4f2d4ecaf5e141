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

__all__ = ["BasicBlock", "ResNetCifar", "resnet18_cifar"]


class BasicBlock(nn.Module):
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
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, blocks_per_stage=(2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        planes_in = 64
        stages = []
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks_per_stage)):
            stride = 1 if i == 0 else 2
            layers = []
            for s in [stride] + [1] * (count - 1):
                layers.append(BasicBlock(planes_in, planes, s))
                planes_in = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3) -> ResNetCifar:
    """ResNet-18 for 32x32 inputs. Channels after conv1/layer1: 64, layer2: 128, layer3: 256,
    layer4: 512 (the ``channels`` of a BlockKey for each position)."""
    return ResNetCifar((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels)
