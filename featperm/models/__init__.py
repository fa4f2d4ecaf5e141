"""Models of the papers' experiments.

* :mod:`~featperm.models.resnet_cifar` — the CIFAR-style ResNet-18 of AprilPyone & Kiya 2021
  (:func:`resnet18_cifar`), whose submodule names are the positions :func:`featperm.protect` takes.
* :mod:`~featperm.models.feature_extractor` — a small re-ID network (:class:`ReidFeatureExtractor`),
  the proprietary feature extractor of the ShuffleBits experiments.
"""

from featperm.models.feature_extractor import ReidFeatureExtractor
from featperm.models.resnet_cifar import BasicBlock, ResNetCifar, resnet18_cifar

__all__ = ["BasicBlock", "ResNetCifar", "resnet18_cifar", "ReidFeatureExtractor"]
