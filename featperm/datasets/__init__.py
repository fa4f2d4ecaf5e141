"""Datasets for featperm's experiments; nothing is ever downloaded at run time.

* :mod:`~featperm.datasets.attributes` — :class:`AttributeImages`, the container every attribute
  dataset returns (images or paths, identities, cameras, attribute labels).
* :mod:`~featperm.datasets.pedestrians` — :func:`synthetic_pedestrians`: procedurally drawn
  pedestrians with Market-1501-style attributes, in several domains (built in, deterministic).
* :mod:`~featperm.datasets.reid` — Market-1501 and DukeMTMC-reID from a folder the user gives,
  with their attribute files (:func:`load_reid_dataset`, :func:`read_attribute_file`).
* :mod:`~featperm.datasets.feature_files` — a user's own features (:func:`load_feature_file`) and
  the ShuffleBits authors' feature files (:func:`load_authors_feature_file`).
* :mod:`~featperm.datasets.image_classification` — image classification data for the
  model-protection experiments: scikit-learn's bundled digits as 32x32 RGB (built in), CIFAR-10
  (python-pickle layout) and ImageFolder layouts from a folder the user gives.

Layer: datasets may import keys, ops, crypto, nn, models and transforms; only attacks,
experiments, report and the command line import datasets. Names load on first use (the loaders
need scipy and Pillow; the synthetic data needs only torch).
"""

from __future__ import annotations

from featperm._lazy import lazy_names

_MODULES = {
    "featperm.datasets.attributes": ["AttributeImages", "MISSING"],
    "featperm.datasets.pedestrians": ["synthetic_pedestrians", "ATTRIBUTE_CLASSES", "DOMAINS", "CAMERAS"],
    "featperm.datasets.reid": ["load_reid_dataset", "read_attribute_file", "load_images", "reid_layout_help"],
    "featperm.datasets.image_classification": [
        "ImageClassificationData",
        "CIFAR10_MEAN",
        "CIFAR10_STD",
        "load_digits_rgb",
        "load_cifar10",
        "load_image_folder",
        "load_image_classification",
    ],
    "featperm.datasets.feature_files": [
        "FeatureSet",
        "load_feature_file",
        "save_feature_file",
        "load_authors_feature_file",
        "features_for_paths",
    ],
}
__all__, __getattr__, __dir__ = lazy_names(__name__, _MODULES, globals())
