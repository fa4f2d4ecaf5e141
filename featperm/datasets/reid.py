"""Market-1501 and DukeMTMC-reID with their attribute files, read from a folder the user gives.

Nothing is downloaded. The expected layouts (see :func:`reid_layout_help`)::

    root/Market-1501-v15.09.15/{bounding_box_train,bounding_box_test,query}/*.jpg
    root/Market-1501-v15.09.15/Market-1501_Attribute/market_attribute.mat
    root/DukeMTMC-reID/{bounding_box_train,bounding_box_test,query}/*.jpg
    root/DukeMTMC-reID/DukeMTMC-attribute/duke_attribute.mat

``root`` may also be the dataset folder itself, and the attribute file may lie directly in the
dataset folder (or in ``root``).

What :func:`load_reid_dataset` returns, as the ShuffleBits authors use the data:

* ``"train"``: the images of ``bounding_box_train``, labelled with the ``train`` split of the
  attribute file; ``"test"``: the images of ``query`` followed by those of ``bounding_box_test``
  (the gallery), each folder sorted by path, labelled with the ``test`` split.
* Images of identity ``-1`` (junk) and ``0`` (distractors) are dropped.
* ``cameras`` are **0-based**: ``c1`` in a file name is camera 0.
* ``images`` is None and ``paths`` holds absolute paths; :func:`load_images` reads them at any size.
* Attributes keep the attribute file's names (``gender``, ``hair``, ``up``, ``down``, ``clothes``,
  ``hat``, ``backpack``, ``bag``, ``handbag``, ``age`` for Market; ``gender``, ``top``, ``boots``,
  ``hat``, ``backpack``, ``bag``, ``handbag``, ``shoes`` for Duke) with the class names of
  :data:`CLASS_NAMES` (``("1", "2", ...)`` for a name the table does not know). The file's value
  ``v`` (1, 2, ...) becomes class ``v - 1``; ``0`` becomes -1 (missing).
* The colour columns are merged, as the authors do: ``up<colour>`` columns into one attribute
  ``upper_colour`` and ``down<colour>`` columns into ``lower_colour``, whose classes are the colour
  names **sorted alphabetically** (e.g. Market's upper colours ``black, blue, gray, green, purple,
  red, white, yellow``). An identity with exactly one colour set gets that colour; one with no
  colour column annotated at all (every value 0) gets -1; an identity with no colour set, or with
  several, is **dropped from the dataset entirely** (all its images), as the authors do.
  :func:`read_attribute_file` reports the dropped identities per split.
* Identities that have images but no annotation get -1 for every attribute (e.g. Duke's gallery
  distractor identities).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.io
import torch
from PIL import Image

from featperm import _checks
from featperm.datasets.attributes import MISSING, AttributeImages

__all__ = [
    "DATASETS",
    "CLASS_NAMES",
    "COLOUR_ATTRIBUTES",
    "AttributeSplit",
    "AttributeTable",
    "load_reid_dataset",
    "read_attribute_file",
    "find_reid_folders",
    "load_images",
    "reid_layout_help",
]

PathLike = Union[str, "os.PathLike[str]"]

DATASETS = ("market1501", "duke")

_NO_YES = ("no", "yes")

# Class names of the attribute files' columns: class i is the file's value i + 1. Sources: the
# READMEs of Market-1501_Attribute and DukeMTMC-attribute (Lin et al., "Improving person
# re-identification by attribute and identity learning").
CLASS_NAMES: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "market1501": {
        "gender": ("male", "female"),
        "hair": ("short", "long"),  # hair length
        "up": ("long", "short"),  # sleeve length
        "down": ("long", "short"),  # length of the lower-body clothing
        "clothes": ("dress", "pants"),  # type of the lower-body clothing
        "hat": _NO_YES,
        "backpack": _NO_YES,
        "bag": _NO_YES,
        "handbag": _NO_YES,
        "age": ("young", "teenager", "adult", "old"),
    },
    "duke": {
        "gender": ("male", "female"),
        "top": ("short", "long"),  # length of the upper-body clothing
        "boots": _NO_YES,
        "shoes": ("dark", "light"),  # colour of the shoes
        "hat": _NO_YES,
        "backpack": _NO_YES,
        "bag": _NO_YES,
        "handbag": _NO_YES,
    },
}

# The merged colour attributes: (name, prefix of the file's columns).
COLOUR_ATTRIBUTES: Tuple[Tuple[str, str], ...] = (("upper_colour", "up"), ("lower_colour", "down"))

_FOLDERS = ("bounding_box_train", "bounding_box_test", "query")
_DATASET_DIRS = {"market1501": ("Market-1501-v15.09.15", "Market-1501"), "duke": ("DukeMTMC-reID",)}
_ATTRIBUTE_DIRS = {"market1501": "Market-1501_Attribute", "duke": "DukeMTMC-attribute"}
_ATTRIBUTE_VARIABLES = {"market1501": "market_attribute", "duke": "duke_attribute"}
_FILE_NAME = {
    # identity, camera (1-based); Market: 0002_c1s1_000451_03.jpg, Duke: 0005_c2_f0046985.jpg
    "market1501": re.compile(r"^(-?\d+)_c(\d+)s\d+_\d+_\d+\.jpg$"),
    "duke": re.compile(r"^(-?\d+)_c(\d+)_f\d+\.jpg$"),
}
_FILE_EXAMPLE = {"market1501": "0002_c1s1_000451_03.jpg", "duke": "0005_c2_f0046985.jpg"}


# ---------------------------------------------------------------------------------------------
# arguments


def _name_arg(where: str, value: object, *, optional: bool = False) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        expected = "None or a str" if optional else "a str"
        raise TypeError(
            f"{where}: name must be {expected} (one of {', '.join(DATASETS)}), got {_checks.describe(value)}"
        )
    if value not in DATASETS:
        raise ValueError(f"{where}: name must be one of {', '.join(DATASETS)}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# the attribute file


@dataclasses.dataclass(frozen=True)
class AttributeSplit:
    """One split (train or test) of an attribute file.

    ``identities`` (M,) int64: the annotated identities kept, in the file's order;
    ``attributes[name]`` (M,) int64 class indices (-1 where not annotated), row i for identity i;
    ``dropped_identities`` (K,) int64, sorted: identities dropped because their upper or lower
    colour is ambiguous (no colour or several colours set).
    """

    identities: torch.Tensor
    attributes: Dict[str, torch.Tensor]
    dropped_identities: torch.Tensor

    @property
    def num_dropped(self) -> int:
        """How many identities were dropped (ambiguous colour)."""
        return int(self.dropped_identities.numel())

    def labels_of(self, identities: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The labels of each entry of ``identities`` (any shape (N,) int64); -1 for every
        attribute of an identity this split does not annotate."""
        rows = {int(i): r for r, i in enumerate(self.identities.tolist())}
        index = torch.tensor([rows.get(int(i), -1) for i in identities.tolist()], dtype=torch.int64)
        known = index >= 0
        result = {}
        for name, labels in self.attributes.items():
            out = torch.full((index.numel(),), MISSING, dtype=torch.int64)
            out[known] = labels[index[known]]
            result[name] = out
        return result


@dataclasses.dataclass(frozen=True)
class AttributeTable:
    """What :func:`read_attribute_file` returns: the per-identity labels of both splits.

    ``classes[name]`` are the class names of attribute ``name`` (the same in both splits);
    ``name`` is the dataset (``"market1501"`` or ``"duke"``); ``source`` the file read.
    """

    name: str
    classes: Dict[str, Tuple[str, ...]]
    train: AttributeSplit
    test: AttributeSplit
    source: str = ""

    def split(self, which: str) -> AttributeSplit:
        """``"train"`` or ``"test"``."""
        if which == "train":
            return self.train
        if which == "test":
            return self.test
        raise ValueError(f"AttributeTable.split: which must be 'train' or 'test', got {which!r}")

    @property
    def dropped_identities(self) -> Dict[str, int]:
        """How many identities each split dropped (ambiguous colour): {"train": n, "test": m}."""
        return {"train": self.train.num_dropped, "test": self.test.num_dropped}


def _struct_fields(struct: object) -> Tuple[str, ...]:
    names = getattr(getattr(struct, "dtype", None), "names", None)
    return tuple(names) if names else ()


def _unwrap_struct(where: str, path: Path, value: object, what: str) -> np.ndarray:
    """The single record of a MATLAB 1x1 struct as loadmat returns it."""
    if not isinstance(value, np.ndarray) or not _struct_fields(value) or value.size != 1:
        raise ValueError(f"{where}: {path}: {what} must be a 1x1 MATLAB struct, got {_checks.describe(value)}")
    return value.reshape(-1)[0]


def _identity_strings(where: str, path: Path, split: str, value: np.ndarray) -> np.ndarray:
    ids = []
    for item in np.asarray(value, dtype=object).reshape(-1):
        while isinstance(item, np.ndarray):
            if item.size != 1:
                raise ValueError(f"{where}: {path}: {split}.image_index must hold one identity per entry, got {item!r}")
            item = item.reshape(-1)[0]
        text = item.decode() if isinstance(item, bytes) else str(item)
        try:
            ids.append(int(text.strip()))
        except ValueError:
            raise ValueError(
                f"{where}: {path}: {split}.image_index must hold identity numbers like '0002', got {text!r}"
            ) from None
    result = np.asarray(ids, dtype=np.int64)
    unique, counts = np.unique(result, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{where}: {path}: {split}.image_index lists identity {int(unique[counts > 1][0])} twice")
    return result


def _column(where: str, path: Path, split: str, field: str, value: object, n: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or array.size != n:
        raise ValueError(
            f"{where}: {path}: {split}.{field} must be a (1, {n}) numeric array like image_index, "
            f"got {array.dtype} {array.shape}"
        )
    array = array.reshape(-1)
    if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
        raise ValueError(f"{where}: {path}: {split}.{field} must hold whole numbers 0, 1, 2, ...")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError(f"{where}: {path}: {split}.{field} must hold values >= 0, got {int(array.min())}")
    return array


def _read_split(where: str, path: Path, split: str, record: np.ndarray) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    fields = _struct_fields(record)
    if "image_index" not in fields:
        raise ValueError(f"{where}: {path}: {split} has no image_index field (fields: {', '.join(fields)})")
    ids = _identity_strings(where, path, split, record["image_index"])
    columns = {f: _column(where, path, split, f, record[f], ids.size) for f in fields if f != "image_index"}
    return ids, columns


def _colour_columns(names: Sequence[str], prefix: str) -> List[str]:
    return sorted(n for n in names if n.startswith(prefix) and len(n) > len(prefix))


def _is_colour(name: str) -> bool:
    return any(name.startswith(p) and len(name) > len(p) for _, p in COLOUR_ATTRIBUTES)


def read_attribute_file(path: PathLike, name: Optional[str] = None) -> AttributeTable:
    """Reads ``market_attribute.mat`` or ``duke_attribute.mat`` (the per-identity attribute
    annotations of Lin et al.) into per-identity class labels of both splits.

    ``name`` (``"market1501"``, ``"duke"`` or None) selects the top-level variable
    (``market_attribute`` / ``duke_attribute``); None detects it. Fields are found by name (their
    order differs between the splits). The colour columns are merged and identities with an
    ambiguous colour dropped, as the module docstring describes; the result's
    ``dropped_identities`` says how many per split.
    """
    where = "read_attribute_file"
    file = _checks.path(where, "path", path)
    dataset = _name_arg(where, name, optional=True)
    if not file.is_file():
        raise FileNotFoundError(
            f"{where}: no attribute file at {file} (expected market_attribute.mat or duke_attribute.mat)"
        )
    try:
        content = scipy.io.loadmat(str(file))
    except (ValueError, OSError, TypeError, IndexError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise ValueError(f"{where}: {file} is not a readable MATLAB .mat file: {error}") from error
    variables = sorted(k for k in content if not k.startswith("__"))
    if dataset is None:
        found = [d for d in DATASETS if _ATTRIBUTE_VARIABLES[d] in content]
        if len(found) != 1:
            raise ValueError(
                f"{where}: {file} must hold one variable market_attribute or duke_attribute, "
                f"got variables {', '.join(variables) or 'none'}"
            )
        dataset = found[0]
    variable = _ATTRIBUTE_VARIABLES[dataset]
    if variable not in content:
        raise ValueError(
            f"{where}: {file} has no variable {variable} (for name={dataset!r}); "
            f"variables found: {', '.join(variables) or 'none'}"
        )
    top = _unwrap_struct(where, file, content[variable], variable)
    raw = {}
    for split in ("train", "test"):
        if split not in _struct_fields(top):
            raise ValueError(
                f"{where}: {file}: {variable} must have fields train and test, got {', '.join(_struct_fields(top))}"
            )
        raw[split] = _read_split(where, file, split, _unwrap_struct(where, file, top[split], f"{variable}.{split}"))
    names_train, names_test = set(raw["train"][1]), set(raw["test"][1])
    if names_train != names_test:
        raise ValueError(
            f"{where}: {file}: the train and test splits must annotate the same attributes; only in train: "
            f"{', '.join(sorted(names_train - names_test)) or '-'}, only in test: "
            f"{', '.join(sorted(names_test - names_train)) or '-'}"
        )

    classes: Dict[str, Tuple[str, ...]] = {}
    known = CLASS_NAMES[dataset]
    for attribute in sorted(a for a in names_train if not _is_colour(a)):
        top_value = max(int(raw[s][1][attribute].max(initial=0)) for s in raw)
        if attribute in known:
            classes[attribute] = known[attribute]
            if top_value > len(known[attribute]):
                raise ValueError(
                    f"{where}: {file}: attribute {attribute} must hold values 0..{len(known[attribute])}, "
                    f"got {top_value}"
                )
        else:
            classes[attribute] = tuple(str(v) for v in range(1, max(top_value, 2) + 1))
    for merged, prefix in COLOUR_ATTRIBUTES:
        colours = _colour_columns(sorted(names_train), prefix)
        if colours:
            classes[merged] = tuple(c[len(prefix) :] for c in colours)

    splits = {}
    for split, (ids, columns) in raw.items():
        labels = {a: np.where(columns[a] > 0, columns[a] - 1, MISSING) for a in classes if a in columns}
        ambiguous = np.zeros(ids.size, dtype=bool)
        for merged, prefix in COLOUR_ATTRIBUTES:
            names = _colour_columns(sorted(columns), prefix)
            if not names:
                continue
            values = np.stack([columns[c] for c in names], axis=1)
            if values.max(initial=0) > 2:
                raise ValueError(f"{where}: {file}: {split}: colour columns {prefix}* must hold values 0, 1 or 2")
            chosen = values == 2
            count = chosen.sum(axis=1)
            unannotated = (values == 0).all(axis=1)
            labels[merged] = np.where(count == 1, chosen.argmax(axis=1), MISSING)
            ambiguous |= (count != 1) & ~unannotated
        keep = ~ambiguous
        splits[split] = AttributeSplit(
            identities=torch.from_numpy(ids[keep].copy()),
            attributes={a: torch.from_numpy(labels[a][keep].astype(np.int64)) for a in classes},
            dropped_identities=torch.from_numpy(np.sort(ids[ambiguous])),
        )
    return AttributeTable(name=dataset, classes=classes, train=splits["train"], test=splits["test"], source=str(file))


# ---------------------------------------------------------------------------------------------
# the image folders


def reid_layout_help(name: str) -> str:
    """What the folder given to :func:`load_reid_dataset` must contain for dataset ``name``."""
    dataset = _name_arg("reid_layout_help", name)
    assert dataset is not None
    folder = _DATASET_DIRS[dataset][0]
    attribute_file = f"{_ATTRIBUTE_DIRS[dataset]}/{_ATTRIBUTE_VARIABLES[dataset]}.mat"
    pretty = "Market-1501" if dataset == "market1501" else "DukeMTMC-reID"
    return (
        f"{pretty} must be laid out as\n"
        f"  root/{folder}/bounding_box_train/*.jpg\n"
        f"  root/{folder}/bounding_box_test/*.jpg\n"
        f"  root/{folder}/query/*.jpg\n"
        f"  root/{folder}/{attribute_file}\n"
        f"(root may also be the {folder} folder itself, and {_ATTRIBUTE_VARIABLES[dataset]}.mat may lie "
        f"directly in it). Images are named like {_FILE_EXAMPLE[dataset]}. featperm downloads nothing: "
        f"get the dataset from its authors and the attribute file from {_ATTRIBUTE_DIRS[dataset]} "
        f"(Lin et al.)."
    )


def find_reid_folders(root: PathLike, name: str) -> Tuple[Path, Path]:
    """The dataset folder (holding ``bounding_box_train`` etc.) and the attribute file of dataset
    ``name`` under ``root``; FileNotFoundError, with :func:`reid_layout_help`, when either is missing."""
    where = "find_reid_folders"
    base = _checks.path(where, "root", root)
    dataset = _name_arg(where, name)
    assert dataset is not None
    return _find(where, base, dataset)


def _find(where: str, base: Path, dataset: str) -> Tuple[Path, Path]:
    if not base.is_dir():
        raise FileNotFoundError(f"{where}: root folder {base} does not exist.\n{reid_layout_help(dataset)}")
    candidates = [base / d for d in _DATASET_DIRS[dataset]] + [base]
    folder = next((c for c in candidates if (c / "bounding_box_train").is_dir()), None)
    if folder is None:
        raise FileNotFoundError(
            f"{where}: no {dataset} dataset folder (one holding bounding_box_train) in {base}; "
            f"looked at {', '.join(str(c) for c in candidates)}.\n{reid_layout_help(dataset)}"
        )
    for sub in _FOLDERS:
        if not (folder / sub).is_dir():
            raise FileNotFoundError(
                f"{where}: missing folder {folder / sub} (the {sub} images).\n{reid_layout_help(dataset)}"
            )
    file_name = f"{_ATTRIBUTE_VARIABLES[dataset]}.mat"
    places = [folder / _ATTRIBUTE_DIRS[dataset] / file_name, folder / file_name]
    if folder != base:
        places += [base / _ATTRIBUTE_DIRS[dataset] / file_name, base / file_name]
    attribute_file = next((p for p in places if p.is_file()), None)
    if attribute_file is None:
        raise FileNotFoundError(
            f"{where}: no attribute file {file_name}; looked at {', '.join(str(p) for p in places)}.\n"
            f"{reid_layout_help(dataset)}"
        )
    return folder, attribute_file


def _list_images(where: str, folder: Path, dataset: str) -> Tuple[List[str], List[int], List[int]]:
    """Sorted absolute paths, identities and 0-based cameras of the kept images of ``folder``."""
    paths, identities, cameras = [], [], []
    files = sorted(p for p in folder.iterdir() if p.suffix == ".jpg" and p.is_file())
    if not files:
        raise ValueError(f"{where}: {folder} holds no .jpg images.\n{reid_layout_help(dataset)}")
    pattern = _FILE_NAME[dataset]
    for file in files:
        match = pattern.match(file.name)
        if match is None:
            raise ValueError(
                f"{where}: image {file} is not named like a {dataset} image (e.g. {_FILE_EXAMPLE[dataset]})"
            )
        identity, camera = int(match.group(1)), int(match.group(2))
        if identity <= 0:  # -1: junk, 0: distractors
            continue
        if camera < 1:
            raise ValueError(f"{where}: image {file} names camera {camera}; cameras are numbered from 1")
        paths.append(str(file.absolute()))
        identities.append(identity)
        cameras.append(camera - 1)
    return paths, identities, cameras


def _assemble(
    paths: List[str],
    identities: List[int],
    cameras: List[int],
    split: AttributeSplit,
    table: AttributeTable,
    label: str,
) -> AttributeImages:
    ids = torch.tensor(identities, dtype=torch.int64)
    cams = torch.tensor(cameras, dtype=torch.int64)
    keep = ~torch.isin(ids, split.dropped_identities)
    rows = keep.nonzero().flatten()
    ids, cams = ids[rows], cams[rows]
    return AttributeImages(
        identities=ids,
        cameras=cams,
        attributes=split.labels_of(ids),
        classes=dict(table.classes),
        images=None,
        paths=[paths[i] for i in rows.tolist()],
        name=label,
    )


def load_reid_dataset(root: PathLike, name: str) -> Dict[str, AttributeImages]:
    """Market-1501 (``name="market1501"``) or DukeMTMC-reID (``name="duke"``) with attributes,
    from the folder ``root`` (see the module docstring for the layout and the conventions).

    Returns ``{"train": ..., "test": ...}``; ``test`` is the query images followed by the gallery.
    """
    where = "load_reid_dataset"
    base = _checks.path(where, "root", root)
    dataset = _name_arg(where, name)
    assert dataset is not None
    folder, attribute_file = _find(where, base, dataset)
    table = read_attribute_file(attribute_file, dataset)
    train = _list_images(where, folder / "bounding_box_train", dataset)
    query = _list_images(where, folder / "query", dataset)
    gallery = _list_images(where, folder / "bounding_box_test", dataset)
    test = (query[0] + gallery[0], query[1] + gallery[1], query[2] + gallery[2])
    return {
        "train": _assemble(*train, table.train, table, f"{dataset}/train"),
        "test": _assemble(*test, table.test, table, f"{dataset}/test"),
    }


def load_images(
    paths: Sequence[PathLike], height: int, width: int, progress: Optional[Callable[[int], None]] = None
) -> torch.Tensor:
    """The images at ``paths`` as a uint8 tensor (N, 3, height, width), RGB, resized with PIL's
    bilinear filter. ``progress``, when given, is called with the number of images read so far."""
    where = "load_images"
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Sequence):
        raise TypeError(f"{where}: paths must be a sequence of paths, got {_checks.describe(paths)}")
    h = _checks.integer(where, "height", height, minimum=1)
    w = _checks.integer(where, "width", width, minimum=1)
    if progress is not None and not callable(progress):
        raise TypeError(f"{where}: progress must be None or callable, got {_checks.describe(progress)}")
    files = [_checks.path(where, f"paths[{i}]", p) for i, p in enumerate(paths)]
    out = np.empty((len(files), h, w, 3), dtype=np.uint8)
    for i, file in enumerate(files):
        if not file.is_file():
            raise FileNotFoundError(f"{where}: no image file at {file}")
        try:
            with Image.open(file) as image:
                rgb = image.convert("RGB")
        except (OSError, ValueError) as error:
            raise ValueError(f"{where}: {file} is not a readable image: {error}") from error
        out[i] = np.asarray(rgb.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
        if progress is not None:
            progress(i + 1)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
