"""Feature files: the users' own format, and the ShuffleBits authors' extracted features.

**The user format** (:func:`load_feature_file`, :func:`save_feature_file`) is a NumPy ``.npz``
holding

* ``features``: (N, D), any real floating dtype (float16, float32, float64, ...), read as
  float32; every value must be finite (and within float32's range);
* one array per attribute, under any other name: (N,) integer (or bool, read as 0/1) class
  labels. Negative labels mean "not annotated" and become -1; the others are renumbered densely
  0..K-1 in the order of their sorted values, and ``FeatureSet.classes[name]`` keeps the original
  values as strings (e.g. labels 3, 7, 7, -1 become 0, 1, 1, -1 with classes ``("3", "7")``).
  Floating-point labels are refused (TypeError): labels are never rounded;
* optionally ``split``: (N,) 0/1 (integer or bool): 0 = the attacker's local data,
  1 = the intercepted users' data.

The file is read with ``allow_pickle=False``: a file that needs pickle (object arrays) is refused.

**The authors' format** (:func:`load_authors_feature_file`): a ``.npz`` with
``accumulated_image_file_paths`` (N,) strings and ``accumulated_feature_array`` (N, D);
:func:`features_for_paths` picks the rows of given image files out of it.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from featperm import _checks

__all__ = [
    "FeatureSet",
    "load_feature_file",
    "save_feature_file",
    "load_authors_feature_file",
    "features_for_paths",
    "RESERVED_NAMES",
    "AUTHORS_PATHS_KEY",
    "AUTHORS_FEATURES_KEY",
]

PathLike = Union[str, "os.PathLike[str]"]

RESERVED_NAMES = ("features", "split")  # every other array of a user feature file is an attribute
AUTHORS_PATHS_KEY = "accumulated_image_file_paths"
AUTHORS_FEATURES_KEY = "accumulated_feature_array"


@dataclasses.dataclass
class FeatureSet:
    """Features with per-attribute class labels (what :func:`load_feature_file` returns).

    ``features`` (N, D) float32; ``attributes[name]`` (N,) int64 class indices into
    ``classes[name]`` (-1 = not annotated); ``classes[name]`` the original label values as
    strings; ``split`` None or (N,) int64, 0 = the attacker's local data, 1 = the intercepted
    users' data; ``source`` where the features came from.
    """

    features: torch.Tensor
    attributes: Dict[str, torch.Tensor]
    classes: Dict[str, Tuple[str, ...]]
    split: Optional[torch.Tensor] = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.features.dim() != 2 or self.features.dtype != torch.float32:
            raise ValueError(
                f"FeatureSet: features must be float32 of shape (N, D), got {self.features.dtype} "
                f"{tuple(self.features.shape)}"
            )
        n = int(self.features.shape[0])
        if set(self.attributes) != set(self.classes):
            raise ValueError("FeatureSet: attributes and classes must name the same attributes")
        for name, labels in self.attributes.items():
            if labels.shape != (n,) or labels.dtype != torch.int64:
                raise ValueError(
                    f"FeatureSet: attribute {name!r} must be int64 of shape ({n},), got {labels.dtype} "
                    f"{tuple(labels.shape)}"
                )
            if labels.numel() and (labels.min() < -1 or labels.max() >= len(self.classes[name])):
                raise ValueError(f"FeatureSet: attribute {name!r} has labels outside -1..{len(self.classes[name]) - 1}")
        if self.split is not None:
            if self.split.shape != (n,) or self.split.dtype != torch.int64:
                raise ValueError(
                    f"FeatureSet: split must be int64 of shape ({n},), got {self.split.dtype} {tuple(self.split.shape)}"
                )
            if self.split.numel() and not bool(((self.split == 0) | (self.split == 1)).all()):
                raise ValueError("FeatureSet: split must hold 0 and 1 only")

    def __len__(self) -> int:
        return int(self.features.shape[0])


def _open_npz(where: str, file: Path, what: str) -> Dict[str, np.ndarray]:
    if not file.is_file():
        raise FileNotFoundError(f"{where}: no {what} at {file} (expected a NumPy .npz file)")
    try:
        data = np.load(file, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{where}: {file} is a single .npy array, expected a .npz archive ({what})")
        with data:
            return {key: data[key] for key in data.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(
                f"{where}: {file} holds pickled data or object arrays; featperm does not unpickle files "
                f"(that can run code). Store strings as a str array, e.g. np.asarray(list_of_str)"
            ) from error
        if "single .npy array" in str(error):
            raise
        raise ValueError(f"{where}: {file} is not a readable .npz file ({what}): {error}") from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{where}: {file} is not a readable .npz file ({what}): {error}") from error


def _float_features(where: str, name: str, array: np.ndarray) -> torch.Tensor:
    if array.dtype.kind != "f":
        raise TypeError(f"{where}: {name} must have a real floating dtype (float16/32/64), got {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{where}: {name} must have shape (N, D), got {array.shape}")
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(f"{where}: {name} must be finite, got {bad} non-finite values (NaN or inf)")
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(array, dtype=np.float32)
    bad = int(converted.size - np.count_nonzero(np.isfinite(converted)))
    if bad:
        raise ValueError(f"{where}: {name} has {bad} values outside float32's range")
    return torch.from_numpy(converted.copy() if converted is array else converted)


def _integer_labels(where: str, name: str, array: np.ndarray, n: int) -> np.ndarray:
    if array.dtype.kind not in "biu":
        raise TypeError(
            f"{where}: array {name!r} must hold integer (or bool) class labels, got dtype {array.dtype}"
            + (" (labels are never rounded: store them as integers)" if array.dtype.kind == "f" else "")
        )
    if array.shape != (n,):
        raise ValueError(f"{where}: array {name!r} must have shape ({n},) like features' rows, got {array.shape}")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{where}: array {name!r} has labels beyond int64's range")
    return array.astype(np.int64)


def _remap(labels: np.ndarray) -> Tuple[torch.Tensor, Tuple[str, ...]]:
    values = np.unique(labels[labels >= 0])
    out = np.full(labels.shape, -1, dtype=np.int64)
    known = labels >= 0
    out[known] = np.searchsorted(values, labels[known])
    return torch.from_numpy(out), tuple(str(int(v)) for v in values)


def load_feature_file(path: PathLike) -> FeatureSet:
    """Reads a user feature file (the format of the module docstring) into a :class:`FeatureSet`."""
    where = "load_feature_file"
    file = _checks.path(where, "path", path)
    arrays = _open_npz(where, file, "feature file")
    if "features" not in arrays:
        raise ValueError(
            f"{where}: {file} must hold an array named 'features', got arrays: {', '.join(sorted(arrays)) or 'none'}"
        )
    features = _float_features(where, "features", arrays["features"])
    n = int(features.shape[0])
    attributes: Dict[str, torch.Tensor] = {}
    classes: Dict[str, Tuple[str, ...]] = {}
    for name in sorted(arrays):
        if name in RESERVED_NAMES:
            continue
        attributes[name], classes[name] = _remap(_integer_labels(where, name, arrays[name], n))
    if not attributes:
        raise ValueError(
            f"{where}: {file} must hold at least one attribute array (integer labels of shape ({n},)) "
            f"besides {', '.join(RESERVED_NAMES)}; got arrays: {', '.join(sorted(arrays))}"
        )
    split = None
    if "split" in arrays:
        values = _integer_labels(where, "split", arrays["split"], n)
        bad = ~np.isin(values, (0, 1))
        if bad.any():
            raise ValueError(
                f"{where}: array 'split' must hold 0 (attacker's data) and 1 (intercepted data) only, "
                f"got {int(bad.sum())} other values (e.g. {int(values[bad][0])})"
            )
        split = torch.from_numpy(values)
    return FeatureSet(features=features, attributes=attributes, classes=classes, split=split, source=str(file))


def _tensor_arg(where: str, name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _label_tensor(where: str, name: str, value: object, n: int) -> np.ndarray:
    labels = _tensor_arg(where, name, value)
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise TypeError(f"{where}: {name} must hold integer (or bool) labels, got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{where}: {name} must have shape ({n},) like features' rows, got {tuple(labels.shape)}")
    return labels.detach().cpu().to(torch.int64).numpy()


def save_feature_file(
    path: PathLike,
    features: torch.Tensor,
    attributes: Mapping[str, torch.Tensor],
    split: Optional[torch.Tensor] = None,
) -> None:
    """Writes ``features`` (N, D) (floating, finite; stored as float32), ``attributes`` (name ->
    (N,) integer or bool labels, at least one) and optionally ``split`` ((N,) 0/1) to ``path``
    in the user format that :func:`load_feature_file` reads. The file is written exactly at
    ``path`` (no ``.npz`` is appended)."""
    where = "save_feature_file"
    file = _checks.path(where, "path", path)
    tensor = _tensor_arg(where, "features", features)
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{where}: features must have a floating dtype, got {tensor.dtype}")
    array = _float_features(where, "features", tensor.detach().cpu().to(torch.float64).numpy())
    n = int(array.shape[0])
    if not isinstance(attributes, Mapping):
        raise TypeError(f"{where}: attributes must be a mapping of name to tensor, got {_checks.describe(attributes)}")
    if not attributes:
        raise ValueError(f"{where}: attributes must name at least one attribute, got an empty mapping")
    arrays: Dict[str, np.ndarray] = {"features": array.numpy()}
    for name, labels in attributes.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: attribute names must be str, got {_checks.describe(name)}")
        if not name or name in RESERVED_NAMES or "/" in name:
            raise ValueError(
                f"{where}: attribute name must be non-empty, without '/', and not one of "
                f"{', '.join(RESERVED_NAMES)}; got {name!r}"
            )
        arrays[name] = _label_tensor(where, f"attributes[{name!r}]", labels, n)
    if split is not None:
        values = _label_tensor(where, "split", split, n)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{where}: split must hold 0 and 1 only, got values {sorted(set(values.tolist()))[:5]}")
        arrays["split"] = values
    if not file.parent.is_dir():
        raise FileNotFoundError(f"{where}: folder {file.parent} does not exist (to write the feature file into)")
    with open(file, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def load_authors_feature_file(path: PathLike) -> Tuple[List[str], torch.Tensor]:
    """The ShuffleBits authors' feature file: the image paths (N strings, as stored) and the
    features (N, D) float32 (finite, any real floating dtype in the file)."""
    where = "load_authors_feature_file"
    file = _checks.path(where, "path", path)
    arrays = _open_npz(where, file, "feature file of the ShuffleBits authors")
    missing = [k for k in (AUTHORS_PATHS_KEY, AUTHORS_FEATURES_KEY) if k not in arrays]
    if missing:
        raise ValueError(
            f"{where}: {file} must hold arrays {AUTHORS_PATHS_KEY} and {AUTHORS_FEATURES_KEY}; missing "
            f"{', '.join(missing)}; got arrays: {', '.join(sorted(arrays)) or 'none'}"
        )
    names = arrays[AUTHORS_PATHS_KEY]
    if names.dtype.kind not in "US":
        raise TypeError(f"{where}: {AUTHORS_PATHS_KEY} must hold strings, got dtype {names.dtype}")
    if names.ndim != 1:
        raise ValueError(f"{where}: {AUTHORS_PATHS_KEY} must have shape (N,), got {names.shape}")
    paths = [v.decode() if isinstance(v, bytes) else str(v) for v in names.tolist()]
    features = _float_features(where, AUTHORS_FEATURES_KEY, arrays[AUTHORS_FEATURES_KEY])
    if features.shape[0] != len(paths):
        raise ValueError(
            f"{where}: {AUTHORS_FEATURES_KEY} has {features.shape[0]} rows for {len(paths)} paths "
            f"in {AUTHORS_PATHS_KEY}"
        )
    return paths, features


def _components(path: str) -> Tuple[str, ...]:
    """A stored path's components, whatever the system that wrote it (``\\`` or ``/``)."""
    return tuple(p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in ("", ".", "/"))


def features_for_paths(
    file_paths: Sequence[str], features: torch.Tensor, paths: Sequence[PathLike], root: PathLike
) -> torch.Tensor:
    """The rows of ``features`` (rows named by ``file_paths``, e.g. from
    :func:`load_authors_feature_file`) for the images ``paths`` (e.g. ``AttributeImages.paths``),
    in the order of ``paths``.

    Each path is made relative to ``root`` (it must lie under it), and matched to a stored path
    by trailing components: a stored path matches when it ends with the relative path (stored
    absolute, or relative to a folder above ``root``), or when the relative path ends with it
    (stored relative to a folder below ``root``, e.g. ``bounding_box_train/0002_c1s1_000451_03.jpg``).
    ``\\`` in stored paths counts as a separator. ValueError names the first path not found and
    how many are missing, or a path that matches several stored paths.
    """
    where = "features_for_paths"
    if isinstance(file_paths, (str, bytes)) or not isinstance(file_paths, Sequence):
        raise TypeError(f"{where}: file_paths must be a sequence of str, got {_checks.describe(file_paths)}")
    for i, stored in enumerate(file_paths):
        if not isinstance(stored, str):
            raise TypeError(f"{where}: file_paths[{i}] must be a str, got {_checks.describe(stored)}")
    table = _tensor_arg(where, "features", features)
    if table.dim() != 2 or table.shape[0] != len(file_paths):
        raise ValueError(
            f"{where}: features must have shape ({len(file_paths)}, D) (one row per file path), "
            f"got {tuple(table.shape)}"
        )
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Sequence):
        raise TypeError(f"{where}: paths must be a sequence of paths, got {_checks.describe(paths)}")
    base = os.path.abspath(_checks.path(where, "root", root))
    wanted = []
    for i, p in enumerate(paths):
        full = os.path.abspath(_checks.path(where, f"paths[{i}]", p))
        relative = os.path.relpath(full, base)
        if relative == os.curdir or relative.split(os.sep)[0] == os.pardir:
            raise ValueError(f"{where}: paths[{i}] = {full} does not lie under root {base}")
        wanted.append((full, _components(relative.replace(os.sep, "/"))))

    exact: Dict[Tuple[str, ...], List[int]] = {}
    suffixes: Dict[Tuple[str, ...], List[int]] = {}
    for row, stored in enumerate(file_paths):
        parts = _components(stored)
        exact.setdefault(parts, []).append(row)
        for k in range(1, len(parts) + 1):
            suffixes.setdefault(parts[-k:], []).append(row)

    rows: List[int] = []
    missing: List[str] = []
    for full, parts in wanted:
        found = suffixes.get(parts)  # stored path ends with the relative path
        if not found:
            found = next((exact[parts[-k:]] for k in range(len(parts) - 1, 0, -1) if parts[-k:] in exact), None)
        if not found:
            missing.append(full)
            continue
        if len(set(found)) > 1:
            shown = ", ".join(repr(file_paths[r]) for r in found[:3])
            raise ValueError(f"{where}: {full} matches {len(found)} stored paths ({shown}); cannot tell which")
        rows.append(found[0])
    if missing:
        raise ValueError(
            f"{where}: no features for {missing[0]} ({len(missing)} of {len(wanted)} paths have none); "
            f"stored paths look like {file_paths[0] if file_paths else '(none stored)'!r}"
        )
    index = torch.tensor(rows, dtype=torch.int64, device=table.device)
    return table.index_select(0, index)
