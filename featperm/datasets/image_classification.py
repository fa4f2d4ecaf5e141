"""Image-classification data for the model-protection experiments (AprilPyone & Kiya: CIFAR-10,
ResNet-18); nothing is ever downloaded.

Every loader returns an :class:`ImageClassificationData`: ``train_images`` / ``test_images``
(N, 3, H, W) uint8 RGB, ``train_labels`` / ``test_labels`` (N,) int64 indices into ``classes``.

* :func:`load_digits_rgb` — scikit-learn's bundled 8x8 handwritten digits (1797 real images,
  shipped with scikit-learn, no download) as size x size RGB: the grey levels 0..16 scaled to
  0..255, resized bilinearly and replicated to 3 channels; a seeded stratified split. The small,
  always-available stand-in for CIFAR-10 (needs scikit-learn, imported on first use).
* :func:`load_cifar10` — CIFAR-10 in its python-pickle layout (``cifar-10-python.tar.gz``
  extracted): ``root/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch,
  batches.meta}`` or those files directly in ``root``. Any number of training batches
  ``data_batch_1..data_batch_k`` (k >= 1, no gaps) is accepted. The batches are unpickled with a
  restricted unpickler (only numpy arrays, lists, dicts, bytes, strings and numbers), so a
  hostile file cannot run code.
* :func:`load_image_folder` — a torchvision-style ImageFolder: one sub-folder per class (the
  sorted folder names are the classes), image files (``.jpg .jpeg .png .bmp .webp``, any case)
  anywhere below them; other files and names starting with ``.`` are ignored. With both
  ``root/train`` and ``root/test`` (holding the same class folders) those are the split;
  otherwise a seeded stratified split of all images.
* :func:`load_image_classification` — one of the above by name (``"digits"``, ``"cifar10"``,
  ``"imagefolder"``).

The stratified split puts ``round(n_c * test_fraction)`` images of each class (at least 1 and at
most n_c - 1; a class needs 2 images) in the test set, chosen with ``torch.Generator`` seeded
by ``seed``; both sets keep the original order. :meth:`ImageClassificationData.subset_train`
draws a class-balanced seeded subset of the training set (the fine-tuning attack's
|D'| = 50, 100, 500, 1000).

Argument mistakes raise TypeError (wrong kind: a bool or float where an integer is expected) or
ValueError (bad value), with messages naming the function, the argument, what was expected and
what was given. A missing folder or file raises FileNotFoundError naming the path and the
expected layout; a malformed file raises ValueError naming it.
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from featperm import _checks

__all__ = [
    "ImageClassificationData",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGE_EXTENSIONS",
    "load_digits_rgb",
    "load_cifar10",
    "load_image_folder",
    "load_image_classification",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

MAX_SIZE = 4096  # the largest size x size accepted (a sanity bound against typos like 22400)
_MAX_SEED = 2**63 - 1

PathArg = Union[str, "os.PathLike[str]"]

CIFAR10_LAYOUT = (
    "root/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta} "
    "(the python version of CIFAR-10, cifar-10-python.tar.gz extracted) or those files directly in root"
)
IMAGE_FOLDER_LAYOUT = (
    "root/<class>/<image> (one sub-folder per class holding .jpg/.jpeg/.png/.bmp/.webp files), "
    "optionally split as root/train/<class>/<image> and root/test/<class>/<image>"
)


# ----------------------------------------------------------------------------------------------
# argument checks


def _fraction(where: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: {name} must be a number strictly between 0 and 1, got {_checks.describe(value)}")
    result = float(value)
    if not 0.0 < result < 1.0:  # also refuses NaN
        raise ValueError(f"{where}: {name} must be strictly between 0 and 1, got {result!r}")
    return result


# ----------------------------------------------------------------------------------------------
# the container


@dataclass
class ImageClassificationData:
    """A train/test image-classification set.

    ``train_images`` / ``test_images``: (N, 3, H, W) uint8 RGB (both sets the same H, W);
    ``train_labels`` / ``test_labels``: (N,) int64 in 0..len(classes)-1; ``classes``: the class
    names; ``name``: the dataset's name (``"digits"``, ``"cifar10"``, the folder's name).
    Checked on construction (TypeError / ValueError).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: Tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        where = "ImageClassificationData"
        if not isinstance(self.name, str):
            raise TypeError(f"{where}: name must be a str, got {_checks.describe(self.name)}")
        if not isinstance(self.classes, (tuple, list)) or not all(isinstance(c, str) for c in self.classes):
            raise TypeError(f"{where}: classes must be a tuple of str, got {_checks.describe(self.classes)}")
        self.classes = tuple(self.classes)
        if len(self.classes) == 0:
            raise ValueError(f"{where}: classes must not be empty")
        shape: Optional[Tuple[int, ...]] = None
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            for arg, value in ((f"{split}_images", images), (f"{split}_labels", labels)):
                if not isinstance(value, torch.Tensor):
                    raise TypeError(f"{where}: {arg} must be a torch.Tensor, got {type(value).__name__}")
            if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(
                    f"{where}: {split}_images must be a (N, 3, H, W) uint8 tensor, "
                    f"got {images.dtype} of shape {tuple(images.shape)}"
                )
            if labels.dtype != torch.int64 or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
                raise ValueError(
                    f"{where}: {split}_labels must be a ({images.shape[0]},) int64 tensor, "
                    f"got {labels.dtype} of shape {tuple(labels.shape)}"
                )
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.classes)):
                raise ValueError(
                    f"{where}: {split}_labels must lie in 0..{len(self.classes) - 1}, "
                    f"got {int(labels.min())}..{int(labels.max())}"
                )
            if shape is not None and tuple(images.shape[2:]) != shape:
                raise ValueError(
                    f"{where}: train and test images must share their size, got {shape} and {tuple(images.shape[2:])}"
                )
            shape = tuple(images.shape[2:])

    @property
    def num_classes(self) -> int:
        """``len(classes)``: the number of classes (labels are 0 .. num_classes - 1)."""
        return len(self.classes)

    @property
    def image_size(self) -> Tuple[int, int]:
        """(H, W) of the images."""
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    def subset_train(self, count: int, seed: int) -> "ImageClassificationData":
        """A class-balanced, seeded subset of ``count`` training images (the test set unchanged).

        Each class gets ``count // num_classes`` images, the remainder going to classes picked
        by the seed; a class with too few images gives all it has and the rest is shared among
        the others. The same seed gives the same subset, and a larger count's subset contains a
        smaller one's. The images keep their original order. TypeError for a non-integer count
        or seed, ValueError for a count outside 1..len(train) or a seed outside 0..2**63-1.
        """
        where = "ImageClassificationData.subset_train"
        total = int(self.train_labels.shape[0])
        count = _checks.integer(where, "count", count, minimum=1)
        if count > total:
            raise ValueError(f"{where}: count must be <= the {total} training images, got {count}")
        seed = _checks.integer(where, "seed", seed, minimum=0, maximum=_MAX_SEED)
        generator = torch.Generator().manual_seed(seed)
        # The per-class orders and the priority of classes depend on the seed only, not on count,
        # so subsets for growing counts are nested.
        members: List[torch.Tensor] = []
        for c in range(self.num_classes):
            index = torch.nonzero(self.train_labels == c).flatten()
            members.append(index[torch.randperm(index.numel(), generator=generator)])
        priority = torch.randperm(self.num_classes, generator=generator).tolist()
        available = [int(members[c].numel()) for c in range(self.num_classes)]
        quota = [0] * self.num_classes
        remaining = count
        open_classes = [c for c in priority if available[c] > 0]
        while remaining > 0:  # water-filling: as equal as the classes' sizes allow
            share, extra = divmod(remaining, len(open_classes))
            capped = [c for c in open_classes if available[c] - quota[c] <= share]
            if capped:
                for c in capped:
                    remaining -= available[c] - quota[c]
                    quota[c] = available[c]
                open_classes = [c for c in open_classes if c not in capped]
                continue
            for i, c in enumerate(open_classes):
                quota[c] += share + (1 if i < extra else 0)
            remaining = 0
        chosen = torch.cat([members[c][: quota[c]] for c in range(self.num_classes)])
        chosen = torch.sort(chosen).values
        return ImageClassificationData(
            train_images=self.train_images[chosen],
            train_labels=self.train_labels[chosen],
            test_images=self.test_images,
            test_labels=self.test_labels,
            classes=self.classes,
            name=self.name,
        )


def _stratified_split(
    where: str, labels: torch.Tensor, classes: Sequence[str], test_fraction: float, seed: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(train_index, test_index), each sorted; round(n_c * test_fraction) of each class, clamped to
    1..n_c-1, in the test set."""
    generator = torch.Generator().manual_seed(seed)
    train: List[torch.Tensor] = []
    test: List[torch.Tensor] = []
    for c, class_name in enumerate(classes):
        index = torch.nonzero(labels == c).flatten()
        n = int(index.numel())
        if n < 2:
            raise ValueError(
                f"{where}: class {class_name!r} has {n} image(s); a stratified train/test split needs at least 2"
            )
        k = min(max(math.floor(n * test_fraction + 0.5), 1), n - 1)
        index = index[torch.randperm(n, generator=generator)]
        test.append(index[:k])
        train.append(index[k:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


def _from_split(
    where: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Tuple[str, ...],
    name: str,
    test_fraction: float,
    seed: int,
) -> ImageClassificationData:
    train_index, test_index = _stratified_split(where, labels, classes, test_fraction, seed)
    return ImageClassificationData(
        train_images=images[train_index],
        train_labels=labels[train_index],
        test_images=images[test_index],
        test_labels=labels[test_index],
        classes=classes,
        name=name,
    )


# ----------------------------------------------------------------------------------------------
# scikit-learn's digits


def load_digits_rgb(size: int = 32, seed: int = 0, test_fraction: float = 0.2) -> ImageClassificationData:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, classes ``"0"``..``"9"``) as
    size x size RGB uint8: 0..16 scaled to 0..255, resized bilinearly (``align_corners=False``),
    rounded, the grey replicated to 3 channels; a seeded stratified split (about 1437 / 360 at
    the default 0.2). Needs scikit-learn (ImportError without it); deterministic."""
    where = "load_digits_rgb"
    size = _checks.integer(where, "size", size, minimum=1, maximum=MAX_SIZE)
    seed = _checks.integer(where, "seed", seed, minimum=0, maximum=_MAX_SEED)
    test_fraction = _fraction(where, "test_fraction", test_fraction)
    try:
        sklearn_datasets = importlib.import_module("sklearn.datasets")
    except ImportError as error:
        raise ImportError(f"{where}: needs scikit-learn for its bundled digits (pip install scikit-learn)") from error
    digits = sklearn_datasets.load_digits()
    grey = torch.from_numpy(np.asarray(digits.images, dtype=np.float32)).unsqueeze(1) * (255.0 / 16.0)
    if grey.shape[-1] != size or grey.shape[-2] != size:
        grey = torch.nn.functional.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False)
    images = grey.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(np.asarray(digits.target, dtype=np.int64))
    classes = tuple(str(c) for c in range(10))
    return _from_split(where, images, labels, classes, "digits", test_fraction, seed)


# ----------------------------------------------------------------------------------------------
# CIFAR-10


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches without running arbitrary code: only numpy arrays (and plain
    containers, which need no globals) are allowed."""

    _CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol <= 2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        module = re.sub(r"^numpy\._?core\b", self._CORE, module)
        return super().find_class(module, name)


def _unpickle(where: str, path: Path) -> Dict[Any, Any]:
    with open(path, "rb") as handle:
        try:
            content = _BatchUnpickler(handle, encoding="bytes").load()
        except Exception as error:  # a truncated or hostile pickle fails in many ways
            raise ValueError(
                f"{where}: {path} is not a CIFAR-10 python pickle ({type(error).__name__}: {error})"
            ) from None
    if not isinstance(content, dict):
        raise ValueError(f"{where}: {path} must hold a dict, got {type(content).__name__}")
    return content


def _entry(where: str, path: Path, content: Dict[Any, Any], key: str) -> Any:
    for candidate in (key.encode(), key):
        if candidate in content:
            return content[candidate]
    raise ValueError(f"{where}: {path} has no {key!r} entry (found {sorted(map(repr, content))})")


def _read_batch(where: str, path: Path, num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    content = _unpickle(where, path)
    data = _entry(where, path, content, "data")
    labels = _entry(where, path, content, "labels")
    try:
        array = np.asarray(data)
        label_array = np.asarray(labels)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}: {path} has malformed data or labels ({error})") from None
    if array.ndim != 2 or array.shape[1] != 3 * 32 * 32 or array.dtype.kind not in "ui":
        raise ValueError(
            f"{where}: {path}: data must be an (N, 3072) array of integers, got {array.dtype} of shape {array.shape}"
        )
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
        raise ValueError(f"{where}: {path}: data must lie in 0..255, got {int(array.min())}..{int(array.max())}")
    if label_array.shape != (array.shape[0],) or (label_array.size and label_array.dtype.kind not in "ui"):
        raise ValueError(
            f"{where}: {path}: labels must be {array.shape[0]} integers, "
            f"got {label_array.dtype} of shape {label_array.shape}"
        )
    label_array = label_array.astype(np.int64)
    if label_array.size and (int(label_array.min()) < 0 or int(label_array.max()) >= num_classes):
        raise ValueError(
            f"{where}: {path}: labels must lie in 0..{num_classes - 1}, "
            f"got {int(label_array.min())}..{int(label_array.max())}"
        )
    images = torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8).reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(label_array.copy())


def _read_class_names(where: str, path: Path) -> Tuple[str, ...]:
    content = _unpickle(where, path)
    names = _entry(where, path, content, "label_names")
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"{where}: {path}: label_names must be a non-empty list, got {_checks.describe(names)}")
    classes: List[str] = []
    for item in names:
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{where}: {path}: label name {item!r} is not UTF-8") from None
        if not isinstance(item, str):
            raise ValueError(f"{where}: {path}: label names must be strings, got {_checks.describe(item)}")
        classes.append(item)
    return tuple(classes)


def load_cifar10(root: PathArg) -> ImageClassificationData:
    """CIFAR-10 from its python-pickle layout: ``root/cifar-10-batches-py/`` or ``root`` itself
    holding ``data_batch_1``..``data_batch_5``, ``test_batch`` and ``batches.meta`` (50000 / 10000
    images of 32x32, 10 classes named by ``batches.meta``). Any ``data_batch_1..k`` (k >= 1, no
    gaps) is read. FileNotFoundError (naming the path and the layout) for a missing folder or
    file, ValueError for a malformed one."""
    where = "load_cifar10"
    base = _checks.path(where, "root", root)
    if not base.is_dir():
        what = "is not a folder" if base.exists() else "does not exist"
        raise FileNotFoundError(f"{where}: {base} {what}; expected {CIFAR10_LAYOUT}")
    nested = base / "cifar-10-batches-py"
    folder = nested if nested.is_dir() else base
    numbers = sorted(
        int(match.group(1))
        for match in (re.fullmatch(r"data_batch_([1-9][0-9]*)", entry.name) for entry in folder.iterdir())
        if match is not None
    )
    missing = [name for name in ("test_batch", "batches.meta") if not (folder / name).is_file()]
    expected_batches = list(range(1, (numbers[-1] if numbers else 1) + 1))
    missing = [
        f"data_batch_{n}" for n in expected_batches if n not in numbers or not (folder / f"data_batch_{n}").is_file()
    ] + missing
    if missing:
        hint = ""
        if (base / "cifar-10-python.tar.gz").is_file():
            hint = f" ({base / 'cifar-10-python.tar.gz'} is there: extract it)"
        raise FileNotFoundError(f"{where}: {folder} lacks {', '.join(missing)}{hint}; expected {CIFAR10_LAYOUT}")
    classes = _read_class_names(where, folder / "batches.meta")
    train = [_read_batch(where, folder / f"data_batch_{n}", len(classes)) for n in expected_batches]
    test_images, test_labels = _read_batch(where, folder / "test_batch", len(classes))
    return ImageClassificationData(
        train_images=torch.cat([images for images, _ in train]),
        train_labels=torch.cat([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
        classes=classes,
        name="cifar10",
    )


# ----------------------------------------------------------------------------------------------
# ImageFolder


def _visible_dirs(folder: Path) -> List[Path]:
    return sorted((entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")), key=str)


def _image_files(folder: Path) -> List[Path]:
    """The image files anywhere below ``folder``, sorted by path; hidden names skipped."""
    found: List[Path] = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(directory) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _scan_classes(where: str, folder: Path) -> Tuple[Tuple[str, ...], List[Tuple[Path, int]]]:
    class_dirs = _visible_dirs(folder)
    if not class_dirs:
        raise FileNotFoundError(f"{where}: {folder} holds no class folders; expected {IMAGE_FOLDER_LAYOUT}")
    classes = tuple(d.name for d in class_dirs)
    items: List[Tuple[Path, int]] = []
    for label, directory in enumerate(class_dirs):
        files = _image_files(directory)
        if not files:
            raise FileNotFoundError(
                f"{where}: class folder {directory} holds no image files "
                f"({', '.join(IMAGE_EXTENSIONS)}); expected {IMAGE_FOLDER_LAYOUT}"
            )
        items.extend((path, label) for path in files)
    return classes, items


def _read_images(
    where: str, items: Sequence[Tuple[Path, int]], size: Optional[int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    arrays: List[np.ndarray] = []
    first: Optional[Tuple[Tuple[int, int], Path]] = None
    for path, _ in items:
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
                if size is not None and rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                array = np.asarray(rgb, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise ValueError(f"{where}: cannot read image {path} ({type(error).__name__}: {error})") from None
        if first is None:
            first = ((array.shape[0], array.shape[1]), path)
        elif (array.shape[0], array.shape[1]) != first[0]:
            raise ValueError(
                f"{where}: with size=None all images must share their size, got {first[1]} of "
                f"{first[0][1]}x{first[0][0]} and {path} of {array.shape[1]}x{array.shape[0]} (width x height); "
                "give size= to resize them"
            )
        arrays.append(array)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return images, labels


def load_image_folder(
    root: PathArg, size: Optional[int] = 32, seed: int = 0, test_fraction: float = 0.2
) -> ImageClassificationData:
    """An ImageFolder: ``root/<class>/...<image>`` (sorted class-folder names are the classes;
    ``.jpg .jpeg .png .bmp .webp`` in any case, in sub-folders too; other files and hidden names
    ignored). With both ``root/train`` and ``root/test`` (the same class folders) those are the
    split and ``seed`` / ``test_fraction`` are not used; otherwise a seeded stratified split.
    Images are converted to RGB and resized (bilinear) to size x size; ``size=None`` keeps them
    as they are, and then they must all share one size (ValueError otherwise). The name is the
    folder's name. FileNotFoundError for a missing folder or a class folder without images,
    ValueError for an unreadable image or only one of train/test."""
    where = "load_image_folder"
    base = _checks.path(where, "root", root)
    if size is not None:
        size = _checks.integer(where, "size", size, minimum=1, maximum=MAX_SIZE)
    seed = _checks.integer(where, "seed", seed, minimum=0, maximum=_MAX_SEED)
    test_fraction = _fraction(where, "test_fraction", test_fraction)
    if not base.is_dir():
        what = "is not a folder" if base.exists() else "does not exist"
        raise FileNotFoundError(f"{where}: {base} {what}; expected {IMAGE_FOLDER_LAYOUT}")
    name = base.resolve().name or str(base)
    has_train, has_test = (base / "train").is_dir(), (base / "test").is_dir()
    if has_train != has_test:
        present, absent = ("train", "test") if has_train else ("test", "train")
        raise ValueError(
            f"{where}: {base} has a {present}/ folder but no {absent}/ folder; give both for a fixed split, "
            f"or neither for a seeded one (expected {IMAGE_FOLDER_LAYOUT})"
        )
    if has_train:
        classes, train_items = _scan_classes(where, base / "train")
        test_classes, test_items = _scan_classes(where, base / "test")
        if test_classes != classes:
            raise ValueError(
                f"{where}: {base / 'train'} and {base / 'test'} must hold the same class folders, "
                f"got {list(classes)} and {list(test_classes)}"
            )
        train_images, train_labels = _read_images(where, train_items, size)
        test_images, test_labels = _read_images(where, test_items, size)
        if train_images.shape[2:] != test_images.shape[2:]:
            raise ValueError(
                f"{where}: with size=None train and test images must share their size, "
                f"got {tuple(train_images.shape[2:])} and {tuple(test_images.shape[2:])} (height, width)"
            )
        return ImageClassificationData(train_images, train_labels, test_images, test_labels, classes, name)
    classes, items = _scan_classes(where, base)
    images, labels = _read_images(where, items, size)
    return _from_split(where, images, labels, classes, name, test_fraction, seed)


# ----------------------------------------------------------------------------------------------
# by name

_LOADERS = ("digits", "cifar10", "imagefolder")


def load_image_classification(name: str, root: Optional[PathArg] = None, **kwargs: Any) -> ImageClassificationData:
    """``"digits"`` (:func:`load_digits_rgb`, no root), ``"cifar10"`` (:func:`load_cifar10`) or
    ``"imagefolder"`` (:func:`load_image_folder`), the name in any case; ``kwargs`` go to the
    loader (an unknown one raises its TypeError)."""
    where = "load_image_classification"
    if not isinstance(name, str):
        raise TypeError(f"{where}: name must be a str (one of {', '.join(_LOADERS)}), got {_checks.describe(name)}")
    key = name.strip().lower()
    if key not in _LOADERS:
        raise ValueError(f"{where}: name must be one of {', '.join(_LOADERS)}, got {name!r}")
    if key == "digits":
        if root is not None:
            raise ValueError(f"{where}: the digits come with scikit-learn and take no root, got root={root!r}")
        return load_digits_rgb(**kwargs)
    if root is None:
        raise ValueError(f"{where}: {key} needs root (the folder holding the data), got None")
    if key == "cifar10":
        return load_cifar10(root, **kwargs)
    return load_image_folder(root, **kwargs)
