"""The proprietary feature extractor: trained on the proprietary data (identity classification, as a
re-ID model is), cached on disk by its training settings and seed so that repeated runs reuse it.

The cache lives in ``$FEATPERM_CACHE`` (default ``~/.cache/featperm``) under ``extractors/``; the
file name is a hash of the settings, the dataset's identity and featperm's version. Only weights
are stored (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Callable, Optional, Tuple

import torch
from torch.nn import functional as F

from featperm._version import __version__
from featperm.datasets.attributes import AttributeImages
from featperm.models.feature_extractor import ReidFeatureExtractor

__all__ = ["ExtractorConfig", "train_extractor", "cached_extractor", "extract_features", "cache_dir", "to_float"]

ProgressCallback = Callable[[int, int], None]


@dataclasses.dataclass
class ExtractorConfig:
    """Training of the proprietary re-ID extractor: Adam, cross-entropy with label smoothing over
    identities, random flips and shifts."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    widths: Tuple[int, ...] = (32, 64, 128, 256)
    label_smoothing: float = 0.1
    seed: int = 0


def cache_dir() -> pathlib.Path:
    """``$FEATPERM_CACHE`` or ``~/.cache/featperm``."""
    return pathlib.Path(os.environ.get("FEATPERM_CACHE") or pathlib.Path.home() / ".cache" / "featperm")


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 in [0, 1]."""
    return images.to(torch.float32) / 255.0


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = batch.shape
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip.view(n, 1, 1, 1).to(batch.device), batch.flip(3), batch)
    pad = max(1, h // 16)
    padded = F.pad(batch, (pad, pad, pad, pad), mode="replicate")
    dy, dx = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    return padded[:, :, dy : dy + h, dx : dx + w]


def train_extractor(
    data: AttributeImages,
    config: Optional[ExtractorConfig] = None,
    *,
    device: torch.device | str = "cpu",
    progress: Optional[ProgressCallback] = None,
) -> ReidFeatureExtractor:
    """Train a :class:`ReidFeatureExtractor` to classify ``data``'s identities (images in memory)."""
    config = config or ExtractorConfig()
    if data.images is None:
        raise ValueError(
            "train_extractor: data must hold its images (load them with featperm.datasets.reid.load_images)"
        )
    torch.manual_seed(config.seed)
    _, labels = torch.unique(data.identities, return_inverse=True)
    model = ReidFeatureExtractor(int(labels.max()) + 1, config.widths).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=5e-4)
    steps = config.epochs * ((len(data) + config.batch_size - 1) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(steps, 1))
    generator = torch.Generator().manual_seed(config.seed)
    images = data.images.to(device)
    labels = labels.to(device)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(data), generator=generator).to(device)
        for start in range(0, order.numel(), config.batch_size):
            batch = order[start : start + config.batch_size]
            if batch.numel() < 2:
                scheduler.step()
                continue
            x = _augment(to_float(images[batch]), generator)
            loss = F.cross_entropy(model(x), labels[batch], label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        if progress is not None:
            progress(epoch, config.epochs)
    return model.eval()


def _cache_key(config: ExtractorConfig, data_tag: str, num_identities: int) -> str:
    text = json.dumps(
        {"config": dataclasses.asdict(config), "data": data_tag, "ids": num_identities, "version": __version__},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_extractor(
    data: AttributeImages,
    data_tag: str,
    config: Optional[ExtractorConfig] = None,
    *,
    device: torch.device | str = "cpu",
    progress: Optional[ProgressCallback] = None,
    use_cache: bool = True,
) -> Tuple[ReidFeatureExtractor, bool]:
    """(extractor, loaded from the cache?) for ``data``; ``data_tag`` names the data exactly (e.g.
    the generator's settings and seed) so that the cache never mixes two datasets."""
    config = config or ExtractorConfig()
    num_ids = int(data.identities.unique().numel())
    path = cache_dir() / "extractors" / f"reid-{_cache_key(config, data_tag, num_ids)}.pt"
    if use_cache and path.is_file():
        model = ReidFeatureExtractor(num_ids, config.widths)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.to(device).eval(), True
    model = train_extractor(data, config, device=device, progress=progress)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: a concurrent run never reads half a file
    return model, False


@torch.no_grad()
def extract_features(
    model: ReidFeatureExtractor, images: torch.Tensor, batch_size: int = 256, device: torch.device | str | None = None
) -> torch.Tensor:
    """Features (N, feature_dim) float32 of uint8 or [0, 1] float images (N, 3, H, W), computed in
    batches on the model's device; returned on that device."""
    model.eval()
    device = device or next(model.parameters()).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size].to(device)
        out.append(model.features(to_float(batch) if batch.dtype == torch.uint8 else batch))
    return torch.cat(out) if out else torch.empty(0, model.feature_dim, device=device)
