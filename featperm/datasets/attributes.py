"""The container every attribute dataset of featperm returns: images (or their paths) with
identity, camera and per-attribute class labels.

Shapes: ``images`` (N, 3, H, W) uint8 (RGB, 0..255) or None when the dataset is read from files
(``paths`` then names them; :func:`featperm.datasets.reid.load_images` reads them at any size);
``identities`` and ``cameras`` (N,) int64; ``attributes[name]`` (N,) int64 class indices into
``classes[name]``, -1 where the attribute is not annotated.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

__all__ = ["AttributeImages", "MISSING"]

MISSING = -1  # the label of an attribute that is not annotated for a sample


@dataclasses.dataclass
class AttributeImages:
    """Images with identity, camera and attribute labels (see the module docstring for shapes)."""

    identities: torch.Tensor
    cameras: torch.Tensor
    attributes: Dict[str, torch.Tensor]
    classes: Dict[str, Tuple[str, ...]]
    images: Optional[torch.Tensor] = None
    paths: Optional[List[str]] = None
    name: str = ""

    def __post_init__(self) -> None:
        n = int(self.identities.shape[0])
        if self.identities.dim() != 1 or self.cameras.shape != self.identities.shape:
            raise ValueError(
                f"AttributeImages: identities and cameras must both have shape (N,), got "
                f"{tuple(self.identities.shape)} and {tuple(self.cameras.shape)}"
            )
        if self.images is not None and (self.images.dim() != 4 or self.images.shape[:2] != (n, 3)):
            raise ValueError(f"AttributeImages: images must have shape ({n}, 3, H, W), got {tuple(self.images.shape)}")
        if self.images is not None and self.images.dtype != torch.uint8:
            raise TypeError(f"AttributeImages: images must be uint8, got {self.images.dtype}")
        if self.paths is not None and len(self.paths) != n:
            raise ValueError(f"AttributeImages: {len(self.paths)} paths for {n} samples")
        if set(self.attributes) != set(self.classes):
            raise ValueError("AttributeImages: attributes and classes must name the same attributes")
        for name, labels in self.attributes.items():
            if labels.shape != (n,) or labels.dtype != torch.int64:
                raise ValueError(
                    f"AttributeImages: attribute {name!r} must be int64 of shape ({n},), "
                    f"got {labels.dtype} {tuple(labels.shape)}"
                )
            if labels.numel() and (labels.max() >= len(self.classes[name]) or labels.min() < MISSING):
                raise ValueError(
                    f"AttributeImages: attribute {name!r} has labels outside -1..{len(self.classes[name]) - 1}"
                )

    def __len__(self) -> int:
        return int(self.identities.shape[0])

    def subset(self, index: Union[torch.Tensor, Sequence[int], slice]) -> "AttributeImages":
        """The samples at ``index`` (a slice, a boolean mask or integer indices)."""
        if isinstance(index, slice):
            rows = torch.arange(len(self))[index]
        else:
            rows = torch.as_tensor(index)
            if rows.dtype == torch.bool:
                rows = rows.nonzero().flatten()
        return AttributeImages(
            identities=self.identities[rows],
            cameras=self.cameras[rows],
            attributes={k: v[rows] for k, v in self.attributes.items()},
            classes=dict(self.classes),
            images=None if self.images is None else self.images[rows],
            paths=None if self.paths is None else [self.paths[i] for i in rows.tolist()],
            name=self.name,
        )

    @property
    def num_identities(self) -> int:
        """How many distinct identities ``identities`` holds (not the largest identity number)."""
        return int(self.identities.unique().numel())
