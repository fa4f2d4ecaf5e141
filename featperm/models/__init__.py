"""Models of the papers' experiments.

* :mod:`~featperm.models.resnet_cifar` — the CIFAR-style ResNet-18 of AprilPyone & Kiya 2021
  (:func:`resnet18_cifar`), whose submodule names are the positions :func:`featperm.protect` takes.
"""

from featperm.models.resnet_cifar import BasicBlock, ResNetCifar, resnet18_cifar

__all__ = ["BasicBlock", "ResNetCifar", "resnet18_cifar"]
