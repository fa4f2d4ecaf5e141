"""The feature extractors ``featperm serve`` can serve, behind one interface (:class:`ServedModel`).

* ``builtin``: the built-in re-ID extractor (:class:`~featperm.models.ReidFeatureExtractor`)
  trained on the built-in synthetic pedestrians ("mall" domain, 100 identities x 8 images of
  64x32, 6 epochs: the settings of ``featperm attack-features --quick``, so the two share one
  cache entry). It is trained on first use and cached in ``$FEATPERM_CACHE`` (default
  ``~/.cache/featperm``); later starts load the cached weights.
* a torchvision architecture name (``resnet50``, ``mobilenet_v3_small``, ...) with the user's
  weights file (a state dict saved by ``torch.save(model.state_dict(), path)``, loaded with
  ``weights_only=True``); the classifier head is replaced by the identity, so the output is the
  pooled features, and the input is normalised with the ImageNet mean and std first.
* a TorchScript file (``.pt`` / ``.pth`` from ``torch.jit.save``): called on float32 images in
  [0, 1] of shape (N, 3, H, W); it does its own normalisation.

Every model takes uint8 images (N, 3, H, W) (RGB, 0..255) of exactly ``input_size`` = (H, W);
:meth:`ServedModel.features` divides them by 255 and returns float32 features (N, D) on the
model's device (a model whose output has more than two dimensions is flattened after the first).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
from typing import Callable, Optional, Tuple

import torch
from torch import nn

from featperm import _checks
from featperm.datasets.pedestrians import synthetic_pedestrians
from featperm.experiments.extractor import ExtractorConfig, cache_dir, cached_extractor, to_float
from featperm.models.feature_extractor import IMAGE_MEAN, IMAGE_STD

__all__ = [
    "ServedModel",
    "load_model",
    "builtin_extractor",
    "BUILTIN",
    "BUILTIN_INPUT_SIZE",
    "DEFAULT_INPUT_SIZE",
]

BUILTIN = "builtin"
BUILTIN_INPUT_SIZE = (64, 32)  # the synthetic pedestrians' size, H x W
DEFAULT_INPUT_SIZE = (224, 224)  # torchvision and TorchScript models, unless --input-size says otherwise
# The settings of `featperm attack-features --quick`'s proprietary extractor (same cache entry).
_BUILTIN_IDENTITIES = 100
_BUILTIN_IMAGES_PER_IDENTITY = 8
_BUILTIN_EPOCHS = 6
_BUILTIN_SEED = 0

ProgressCallback = Callable[[int, int], None]


@dataclasses.dataclass
class ServedModel:
    """A feature extractor as the server uses it.

    Attributes:
        name: what ``GET /v1/info`` reports (``"builtin"``, ``"resnet50"``, the file name).
        module: maps float32 images in [0, 1] (N, 3, H, W) on ``device`` to features.
        input_size: (H, W) the images must have.
        feature_dim: D, the length of each feature vector.
        device: where the forward pass runs.
        description: one line about where the weights came from.
    """

    name: str
    module: Callable[[torch.Tensor], torch.Tensor]
    input_size: Tuple[int, int]
    feature_dim: int
    device: torch.device
    description: str = ""

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) (any device) -> float32 features (N, D) on :attr:`device`.

        Raises:
            ValueError: the images are not (N, 3, H, W) with (H, W) = :attr:`input_size`.
            TypeError: the images are not uint8.
        """
        where = "ServedModel.features"
        images = _checks.tensor(where, "images", images)
        if images.dtype != torch.uint8:
            raise TypeError(f"{where}: images must be uint8, got {images.dtype}")
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != self.input_size:
            raise ValueError(
                f"{where}: images must have shape (N, 3, {self.input_size[0]}, {self.input_size[1]}), "
                f"got {tuple(images.shape)}"
            )
        out = self.module(to_float(images.to(self.device)))
        return out.reshape(out.shape[0], -1).to(torch.float32)


class _PooledFeatures(nn.Module):
    """``extractor.features``: the re-ID extractor's pooled features (no neck, no classifier)."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor.features(images)  # type: ignore[operator]


class _Normalized(nn.Module):
    """ImageNet normalisation, then the backbone (torchvision's models expect normalised input)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images - self.mean) / self.std)


def builtin_extractor(
    device: torch.device | str = "cpu", *, progress: Optional[ProgressCallback] = None
) -> Tuple[nn.Module, bool]:
    """(the built-in re-ID extractor on ``device`` in eval mode, loaded from the cache?).

    Trains it on first use (6 epochs over 800 synthetic 64x32 images) and caches the weights in
    ``$FEATPERM_CACHE/extractors/``; ``progress(epoch, epochs)`` is called during training.
    """
    data = synthetic_pedestrians(
        _BUILTIN_IDENTITIES,
        _BUILTIN_IMAGES_PER_IDENTITY,
        domain="mall",
        seed=_BUILTIN_SEED,
        height=BUILTIN_INPUT_SIZE[0],
        width=BUILTIN_INPUT_SIZE[1],
    )
    h, w = BUILTIN_INPUT_SIZE
    # The data tag of experiments.feature_attacks for the same settings: one cache entry for both.
    tag = (
        f"synthetic-pedestrians mall seed={_BUILTIN_SEED} ids={_BUILTIN_IDENTITIES} "
        f"per={_BUILTIN_IMAGES_PER_IDENTITY} {h}x{w}"
    )
    model, cached = cached_extractor(
        data, tag, ExtractorConfig(epochs=_BUILTIN_EPOCHS, seed=_BUILTIN_SEED), device=device, progress=progress
    )
    return model.eval(), cached


def _torchvision_backbone(name: str, weights: pathlib.Path) -> nn.Module:
    where = "load_model"
    try:
        torchvision = importlib.import_module("torchvision")
    except ImportError:
        raise ImportError(f"{where}: --model {name} needs torchvision (pip install torchvision)") from None
    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        raise ValueError(
            f"{where}: model {name!r} is neither 'builtin', a TorchScript file nor a torchvision "
            f"classification model (e.g. resnet50, mobilenet_v3_small, efficientnet_b0)"
        )
    model: nn.Module = torchvision.models.get_model(name, weights=None)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{where}: {weights} holds a {type(state).__name__}, expected a state dict of {name}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{where}: {weights} is not a state dict of torchvision's {name}: {first}") from None
    # Remove the classifier head: the pooled features are what the API returns.
    for head in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, head, None), nn.Module):
            setattr(model, head, nn.Identity())
            return model
    raise ValueError(f"{where}: torchvision's {name} has no fc/classifier/heads/head to remove")


def load_model(
    model: str = BUILTIN,
    *,
    weights: Optional[str] = None,
    input_size: Optional[Tuple[int, int]] = None,
    device: torch.device | str = "cpu",
    progress: Optional[ProgressCallback] = None,
) -> ServedModel:
    """The :class:`ServedModel` for ``model``: ``"builtin"``, a torchvision architecture name (with
    ``weights``, a state-dict file) or the path of a TorchScript file.

    Args:
        model: see above. A path that exists is read as TorchScript.
        weights: the state dict of a torchvision architecture (required for one, refused otherwise).
        input_size: (H, W) of the served images; default (64, 32) for the built-in model (the only
            size it accepts), (224, 224) otherwise.
        device: where to run the model.
        progress: ``(epoch, epochs)`` callback while the built-in model trains on first use.

    Raises:
        ValueError: an unknown model name, a weights file that does not fit, a missing or
            unexpected ``weights``, a model whose output is not one feature vector per image.
        OSError: a file cannot be read.
    """
    where = "load_model"
    device = torch.device(device)
    size = None
    if input_size is not None:
        size = (
            _checks.integer(where, "input_size[0]", input_size[0], minimum=1),
            _checks.integer(where, "input_size[1]", input_size[1], minimum=1),
        )
    if model == BUILTIN:
        if weights is not None:
            raise ValueError(f"{where}: the built-in model takes no weights file (it trains and caches its own)")
        if size is not None and size != BUILTIN_INPUT_SIZE:
            raise ValueError(f"{where}: the built-in model serves {BUILTIN_INPUT_SIZE} images, not {size}")
        extractor, cached = builtin_extractor(device, progress=progress)
        origin = "loaded from" if cached else "trained and saved in"
        return _described(
            BUILTIN,
            _PooledFeatures(extractor),
            BUILTIN_INPUT_SIZE,
            device,
            f"built-in re-ID extractor, {origin} {cache_dir() / 'extractors'}",
        )
    size = size or DEFAULT_INPUT_SIZE
    if os.path.exists(model):
        if weights is not None:
            raise ValueError(f"{where}: a TorchScript file carries its weights; --weights is for torchvision names")
        try:
            scripted = torch.jit.load(model, map_location=device)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ValueError(f"{where}: {model} is not a TorchScript file (torch.jit.save): {first}") from None
        return _described(os.path.basename(model), scripted.eval(), size, device, f"TorchScript file {model}")
    if os.sep in model or model.endswith((".pt", ".pth", ".ts", ".jit")):
        raise ValueError(f"{where}: no such TorchScript file: {model}")
    if weights is None:
        raise ValueError(
            f"{where}: model {model!r} is not a file; a torchvision architecture needs its weights "
            "file (--weights W.pth, a state dict)"
        )
    backbone = _torchvision_backbone(model, pathlib.Path(weights))
    return _described(
        model, _Normalized(backbone).to(device).eval(), size, device, f"torchvision {model}, weights {weights}"
    )


def _described(
    name: str, module: Callable[[torch.Tensor], torch.Tensor], size: Tuple[int, int], device: torch.device, text: str
) -> ServedModel:
    """Runs one zero image through ``module`` to learn the feature size (and to fail now, not at
    the first request, when the model does not fit the input size)."""
    if isinstance(module, nn.Module):
        module = module.to(device).eval()
    with torch.inference_mode():
        try:
            out = module(torch.zeros(1, 3, *size, device=device))
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ValueError(f"load_model: {name} fails on a (1, 3, {size[0]}, {size[1]}) image: {first}") from None
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != 1 or not out.is_floating_point():
        got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"load_model: {name} must return float features (N, D...) for N images, got {got}")
    dim = int(out.reshape(1, -1).shape[1])
    return ServedModel(name, module, size, dim, device, text)
