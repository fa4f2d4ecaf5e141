"""featperm.datasets.image_classification: scikit-learn's digits, CIFAR-10's pickle layout (a
tiny fake written here), ImageFolder trees, the class-balanced training subsets and every
argument and file error."""

import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featperm.datasets import image_classification as ic
from featperm.datasets.image_classification import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ImageClassificationData,
    load_cifar10,
    load_digits_rgb,
    load_image_classification,
    load_image_folder,
)

torch.set_num_threads(1)

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    return load_digits_rgb()


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_dtypes_classes(digits):
    assert digits.name == "digits"
    assert digits.classes == tuple(str(i) for i in range(10))
    assert digits.num_classes == 10
    n_train, n_test = digits.train_images.shape[0], digits.test_images.shape[0]
    assert n_train + n_test == 1797
    assert abs(n_test - 0.2 * 1797) <= 10
    assert digits.train_images.shape == (n_train, 3, 32, 32)
    assert digits.test_images.shape == (n_test, 3, 32, 32)
    assert digits.train_images.dtype == digits.test_images.dtype == torch.uint8
    assert digits.train_labels.dtype == digits.test_labels.dtype == torch.int64
    assert digits.train_labels.shape == (n_train,) and digits.test_labels.shape == (n_test,)
    assert digits.image_size == (32, 32)
    # grey replicated to 3 channels, the full 0..255 range used
    assert torch.equal(digits.train_images[:, 0], digits.train_images[:, 1])
    assert torch.equal(digits.train_images[:, 0], digits.train_images[:, 2])
    assert int(digits.train_images.max()) == 255 and int(digits.train_images.min()) == 0


def test_digits_split_is_stratified_and_disjoint(digits):
    train_counts = torch.bincount(digits.train_labels, minlength=10).double()
    test_counts = torch.bincount(digits.test_labels, minlength=10).double()
    fraction = test_counts / (train_counts + test_counts)
    assert torch.all((fraction - 0.2).abs() < 0.01)
    # a partition: at size 8 the two sets together are exactly the scaled digits, each once
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    raw = sklearn_datasets.load_digits()
    eight = load_digits_rgb(size=8)
    both = torch.cat([eight.train_images, eight.test_images])[:, 0].reshape(-1, 64).numpy()
    expected = np.round(raw.images * 255 / 16).astype(np.uint8).reshape(-1, 64)
    assert Counter(map(bytes, both)) == Counter(map(bytes, expected))


def test_digits_size_8_is_the_scaled_original():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    raw = sklearn_datasets.load_digits()
    data = load_digits_rgb(size=8, test_fraction=0.5, seed=3)
    expected = {bytes(np.round(img * 255 / 16).astype(np.uint8).ravel()) for img in raw.images}
    assert data.train_images.shape[2:] == (8, 8)
    for row in data.test_images[:20, 0].reshape(20, -1).numpy():
        assert bytes(row) in expected


def test_digits_deterministic_and_seeded(digits):
    again = load_digits_rgb()
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(digits, field), getattr(again, field))
    other = load_digits_rgb(seed=1)
    assert not torch.equal(digits.test_labels, other.test_labels) or not torch.equal(
        digits.test_images, other.test_images
    )
    assert torch.equal(torch.bincount(digits.test_labels), torch.bincount(other.test_labels))


def test_digits_size_and_fraction_options():
    small = load_digits_rgb(size=16, test_fraction=0.5)
    assert small.train_images.shape[1:] == (3, 16, 16)
    assert abs(small.test_images.shape[0] - 1797 / 2) <= 10
    one = load_digits_rgb(size=1)
    assert one.train_images.shape[1:] == (3, 1, 1)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"size": 32.0}, TypeError, "load_digits_rgb: size must be an integer, got float"),
        ({"size": True}, TypeError, "size must be an integer, got bool"),
        ({"size": "32"}, TypeError, "size must be an integer, got str"),
        ({"size": 0}, ValueError, "size must be >= 1, got 0"),
        ({"size": 10**6}, ValueError, "size must be <= 4096"),
        ({"seed": 1.0}, TypeError, "seed must be an integer, got float"),
        ({"seed": False}, TypeError, "seed must be an integer, got bool"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"seed": 2**63}, ValueError, "seed must be <="),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction must be a number"),
        ({"test_fraction": True}, TypeError, "test_fraction must be a number"),
        ({"test_fraction": 0.0}, ValueError, "test_fraction must be strictly between 0 and 1, got 0.0"),
        ({"test_fraction": 1}, ValueError, "strictly between 0 and 1, got 1.0"),
        ({"test_fraction": float("nan")}, ValueError, "strictly between 0 and 1"),
    ],
)
def test_digits_argument_errors(kwargs, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(")):
        load_digits_rgb(**kwargs)


def test_digits_accepts_numpy_integers():
    data = load_digits_rgb(size=np.int64(8), seed=np.int32(2))
    assert data.image_size == (8, 8)


# ---------------------------------------------------------------------------------------------
# subset_train


def test_subset_train_balanced_and_seeded(digits):
    for count in (50, 100, 500, 1000):
        subset = digits.subset_train(count, seed=0)
        counts = torch.bincount(subset.train_labels, minlength=10)
        assert int(counts.sum()) == count and int(counts.max() - counts.min()) <= 1
        assert subset.test_images is digits.test_images and subset.test_labels is digits.test_labels
        assert subset.classes == digits.classes and subset.name == digits.name
    a, b = digits.subset_train(100, seed=5), digits.subset_train(100, seed=5)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.train_labels, b.train_labels)
    c = digits.subset_train(100, seed=6)
    assert not torch.equal(a.train_images, c.train_images)


def test_subset_train_rows_come_from_the_training_set_and_nest(digits):
    flat = digits.train_images.reshape(digits.train_images.shape[0], -1)
    index = {bytes(row.numpy()): i for i, row in enumerate(flat)}

    def rows(data):
        return {index[bytes(row.numpy())] for row in data.train_images.reshape(data.train_images.shape[0], -1)}

    small, middle, large = (digits.subset_train(n, seed=1) for n in (100, 500, 1000))
    assert len(rows(small)) == 100  # distinct images
    assert rows(small) <= rows(middle) <= rows(large)
    for subset in (small, large):
        picked = sorted(rows(subset))
        assert torch.equal(subset.train_labels, digits.train_labels[picked])


def test_subset_train_remainder_and_unbalanced_classes():
    images = torch.zeros(13, 3, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(13, dtype=torch.uint8)
    labels = torch.tensor([0] * 10 + [1] * 2 + [2] * 1)
    data = ImageClassificationData(images, labels, images[:1], labels[:1], ("a", "b", "c"), "toy")
    full = data.subset_train(13, seed=0)
    assert torch.equal(full.train_labels, labels)  # every image, original order
    counts = torch.bincount(data.subset_train(7, seed=0).train_labels, minlength=3)
    assert counts.tolist() == [4, 2, 1]  # the small classes give all they have
    counts = torch.bincount(data.subset_train(2, seed=0).train_labels, minlength=3)
    assert int(counts.sum()) == 2 and int(counts.max()) == 1
    picked = {tuple(torch.bincount(data.subset_train(1, seed=s).train_labels, minlength=3).tolist()) for s in range(20)}
    assert len(picked) > 1  # the class taking the remainder depends on the seed


@pytest.mark.parametrize(
    "count, seed, error, words",
    [
        (10.0, 0, TypeError, "subset_train: count must be an integer, got float"),
        (True, 0, TypeError, "count must be an integer, got bool"),
        (0, 0, ValueError, "count must be >= 1, got 0"),
        (10**6, 0, ValueError, "count must be <= the"),
        (10, 0.5, TypeError, "seed must be an integer, got float"),
        (10, None, TypeError, "seed must be an integer, got NoneType"),
        (10, -3, ValueError, "seed must be >= 0"),
    ],
)
def test_subset_train_errors(digits, count, seed, error, words):
    with pytest.raises(error, match=words):
        digits.subset_train(count, seed)


def test_container_checks():
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    ImageClassificationData(images, labels, images, labels, ("a", "b"), "ok")
    with pytest.raises(TypeError, match=r"train_images must be a torch\.Tensor"):
        ImageClassificationData(images.numpy(), labels, images, labels, ("a", "b"), "x")
    with pytest.raises(ValueError, match=r"train_images must be a \(N, 3, H, W\) uint8"):
        ImageClassificationData(images.float(), labels, images, labels, ("a", "b"), "x")
    with pytest.raises(ValueError, match="test_labels must be a"):
        ImageClassificationData(images, labels, images, labels.int(), ("a", "b"), "x")
    with pytest.raises(ValueError, match=r"train_labels must lie in 0..1"):
        ImageClassificationData(images, labels + 1, images, labels, ("a", "b"), "x")
    with pytest.raises(ValueError, match="share their size"):
        ImageClassificationData(images, labels, torch.zeros(4, 3, 3, 3, dtype=torch.uint8), labels, ("a", "b"), "x")
    with pytest.raises(TypeError, match="classes must be a tuple of str"):
        ImageClassificationData(images, labels, images, labels, ("a", 1), "x")
    with pytest.raises(TypeError, match="name must be a str"):
        ImageClassificationData(images, labels, images, labels, ("a", "b"), None)
    with pytest.raises(ValueError, match="classes must not be empty"):
        ImageClassificationData(images[:0], labels[:0], images[:0], labels[:0], (), "x")


def test_cifar_constants():
    assert len(CIFAR10_MEAN) == len(CIFAR10_STD) == 3
    assert all(0 < m < 1 for m in CIFAR10_MEAN) and all(0 < s < 1 for s in CIFAR10_STD)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (a tiny fake in the real format)

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _batch(seed, n=20):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": [int(x) for x in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def _dump(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)


def _write_cifar(folder, batches=2, protocol=pickle.DEFAULT_PROTOCOL):
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(1, batches + 1):
        written[f"data_batch_{i}"] = _batch(i)
        _dump(folder / f"data_batch_{i}", written[f"data_batch_{i}"], protocol)
    written["test_batch"] = _batch(99, n=10)
    _dump(folder / "test_batch", written["test_batch"], protocol)
    _dump(
        folder / "batches.meta",
        {b"num_cases_per_batch": 20, b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072},
        protocol,
    )
    return written


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_both_layouts(tmp_path, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    written = _write_cifar(folder)
    (folder / "readme.html").write_text("ignored")
    data = load_cifar10(tmp_path)
    assert data.name == "cifar10" and data.classes == tuple(CIFAR_NAMES)
    assert data.train_images.shape == (40, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (10, 3, 32, 32)
    assert data.train_labels.dtype == torch.int64
    expected = np.concatenate([written["data_batch_1"][b"data"], written["data_batch_2"][b"data"]])
    assert torch.equal(data.train_images, torch.from_numpy(expected.reshape(-1, 3, 32, 32)))
    # the row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major
    assert int(data.train_images[0, 1, 0, 1]) == int(written["data_batch_1"][b"data"][0, 1024 + 1])
    assert data.train_labels.tolist() == written["data_batch_1"][b"labels"] + written["data_batch_2"][b"labels"]
    assert data.test_labels.tolist() == written["test_batch"][b"labels"]
    assert torch.equal(data.test_images, torch.from_numpy(written["test_batch"][b"data"].reshape(-1, 3, 32, 32)))


def test_cifar10_path_kinds_and_by_name(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py", batches=1)
    for root in (str(tmp_path), tmp_path, tmp_path / "cifar-10-batches-py"):
        assert load_cifar10(root).train_images.shape[0] == 20
    data = load_image_classification("CIFAR10", str(tmp_path))
    assert data.train_images.shape[0] == 20


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_old_and_new_pickle_protocols(tmp_path, protocol):
    written = _write_cifar(tmp_path, batches=1, protocol=protocol)
    data = load_cifar10(tmp_path)
    assert data.train_labels.tolist() == written["data_batch_1"][b"labels"]
    assert torch.equal(data.train_images.reshape(20, -1), torch.from_numpy(written["data_batch_1"][b"data"]))


def test_cifar10_missing_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_cifar10: .*nowhere does not exist; expected root/cifar-10"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_cifar10(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"lacks data_batch_1, test_batch, batches\.meta; expected"):
        load_cifar10(empty)
    (empty / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="extract it"):
        load_cifar10(empty)
    folder = tmp_path / "partial" / "cifar-10-batches-py"
    _write_cifar(folder, batches=3)
    os.remove(folder / "data_batch_2")
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py lacks data_batch_2;"):
        load_cifar10(tmp_path / "partial")
    _write_cifar(folder, batches=3)
    os.remove(folder / "batches.meta")
    with pytest.raises(FileNotFoundError, match=r"lacks batches\.meta"):
        load_cifar10(folder)


def _broken(tmp_path, name, obj=None, raw=None):
    _write_cifar(tmp_path, batches=1)
    if raw is not None:
        (tmp_path / name).write_bytes(raw)
    else:
        _dump(tmp_path / name, obj)
    return tmp_path


@pytest.mark.parametrize(
    "name, obj, raw, words",
    [
        ("data_batch_1", None, b"not a pickle", "data_batch_1 is not a CIFAR-10 python pickle"),
        ("data_batch_1", None, pickle.dumps(_batch(1))[:500], "is not a CIFAR-10 python pickle"),
        ("test_batch", [1, 2, 3], None, "test_batch must hold a dict, got list"),
        ("data_batch_1", {b"labels": [0]}, None, "has no 'data' entry"),
        ("data_batch_1", {b"data": np.zeros((2, 3072), np.uint8)}, None, "has no 'labels' entry"),
        ("data_batch_1", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, None, r"\(N, 3072\)"),
        ("data_batch_1", {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, None, "array of integers"),
        ("data_batch_1", {b"data": np.full((2, 3072), 256, np.int64), b"labels": [0, 1]}, None, "0..255"),
        ("data_batch_1", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, None, "labels must be 2 integers"),
        ("data_batch_1", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, None, r"must lie in 0\.\.9"),
        ("data_batch_1", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.5, 1]}, None, "must be 2 integers"),
        ("batches.meta", {b"label_names": []}, None, "label_names must be a non-empty list"),
        ("batches.meta", {b"label_names": [1, 2]}, None, "label names must be strings"),
        ("batches.meta", {b"names": [b"a"]}, None, "has no 'label_names' entry"),
        ("batches.meta", {b"label_names": [b"\xff"]}, None, "is not UTF-8"),
    ],
)
def test_cifar10_malformed_files(tmp_path, name, obj, raw, words):
    root = _broken(tmp_path, name, obj, raw)
    with pytest.raises(ValueError, match=words):
        load_cifar10(root)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_refuses_code_in_pickles(tmp_path):
    root = _broken(tmp_path, "data_batch_1", {b"data": _Evil(), b"labels": []})
    with pytest.raises(ValueError, match=r"is not allowed in a CIFAR-10 batch"):
        load_cifar10(root)


def test_cifar10_str_keys_accepted(tmp_path):
    _write_cifar(tmp_path, batches=1)
    _dump(tmp_path / "batches.meta", {"label_names": CIFAR_NAMES})
    _dump(tmp_path / "test_batch", {"data": np.ones((3, 3072), np.uint8), "labels": np.array([1, 2, 3])})
    data = load_cifar10(tmp_path)
    assert data.classes == tuple(CIFAR_NAMES) and data.test_labels.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    "root, error, words",
    [
        (3, TypeError, "load_cifar10: root must be a path \\(str or os.PathLike\\), got int 3"),
        (b"/tmp", TypeError, "root must be a path"),
        (None, TypeError, "root must be a path"),
        ("", ValueError, "root must be a non-empty path"),
    ],
)
def test_cifar10_root_errors(root, error, words):
    with pytest.raises(error, match=words):
        load_cifar10(root)


# ---------------------------------------------------------------------------------------------
# ImageFolder


def _save(path, size=(10, 8), colour=(200, 30, 40), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path, format=fmt)


def _write_folder(root, classes=("cat", "ant", "bee"), per_class=5, size=(10, 8)):
    extensions = [".png", ".JPG", ".jpeg", ".bmp", ".PNG", ".webp"]
    for c, name in enumerate(classes):
        for i in range(per_class):
            extension = extensions[(c + i) % len(extensions)]
            fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}[extension.lower()]
            _save(root / name / f"{i:02d}{extension}", size=size, colour=(40 * c, 10 * i, 100), fmt=fmt)
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".hidden.png").write_bytes(b"garbage")
    (root / "readme.md").write_text("top-level files are ignored")


def test_image_folder_seeded_split_resize_and_class_order(tmp_path):
    _write_folder(tmp_path / "pets")
    data = load_image_folder(tmp_path / "pets", size=16, seed=0, test_fraction=0.4)
    assert data.name == "pets"
    assert data.classes == ("ant", "bee", "cat")  # sorted folder names
    assert data.train_images.shape == (9, 3, 16, 16) and data.test_images.shape == (6, 3, 16, 16)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert torch.bincount(data.test_labels).tolist() == [2, 2, 2]
    # written in the order cat, ant, bee with red 0, 40, 80 (JPEG/WebP are lossy)
    red = data.train_images[:, 0].float().mean(dim=(1, 2))
    for label, value in ((0, 40), (1, 80), (2, 0)):
        assert torch.all((red[data.train_labels == label] - value).abs() < 6)
    again = load_image_folder(str(tmp_path / "pets"), size=16, seed=0, test_fraction=0.4)
    assert torch.equal(again.test_images, data.test_images) and torch.equal(again.test_labels, data.test_labels)
    other = load_image_folder(tmp_path / "pets", size=16, seed=1, test_fraction=0.4)
    assert torch.equal(torch.bincount(other.test_labels), torch.bincount(data.test_labels))
    assert load_image_classification("imagefolder", tmp_path / "pets", size=16, seed=0, test_fraction=0.4).classes == (
        data.classes
    )


def test_image_folder_with_train_and_test(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for name in ("b", "a"):
            for i in range(count):
                _save(tmp_path / split / name / f"{i}.png", size=(6, 6), colour=(1, 2, 3) if name == "a" else (9, 9, 9))
    data = load_image_folder(tmp_path, size=None)
    assert data.classes == ("a", "b")
    assert data.train_images.shape == (8, 3, 6, 6) and data.test_images.shape == (4, 3, 6, 6)
    assert data.train_labels.tolist() == [0] * 4 + [1] * 4 and data.test_labels.tolist() == [0, 0, 1, 1]
    assert data.train_images[0, :, 0, 0].tolist() == [1, 2, 3]
    assert load_image_folder(tmp_path, size=3).train_images.shape == (8, 3, 3, 3)


def test_image_folder_converts_modes_and_recurses(tmp_path):
    _save(tmp_path / "grey" / "deep" / "er" / "0.png", mode="L", colour=(77, 0, 0))
    _save(tmp_path / "grey" / "1.png", mode="L", colour=(77, 0, 0))
    Image.new("RGBA", (10, 8), (5, 6, 7, 128)).save(tmp_path / "rgba.png")
    (tmp_path / "rgba").mkdir()
    for i in range(2):
        Image.new("RGBA", (10, 8), (5, 6, 7, 128)).save(tmp_path / "rgba" / f"{i}.png")
    Image.new("P", (10, 8), 3).save(tmp_path / "rgba" / "2.gif")  # not an accepted extension
    data = load_image_folder(tmp_path, size=None, test_fraction=0.5)
    assert data.classes == ("grey", "rgba")
    assert data.image_size == (8, 10)
    assert data.train_images.shape[0] + data.test_images.shape[0] == 4
    grey = torch.cat([data.train_images[data.train_labels == 0], data.test_images[data.test_labels == 0]])
    assert torch.all(grey == 77)
    rgba = torch.cat([data.train_images[data.train_labels == 1], data.test_images[data.test_labels == 1]])
    assert rgba[:, :, 0, 0].tolist() == [[5, 6, 7], [5, 6, 7]]


def test_image_folder_mixed_sizes_need_size(tmp_path):
    _save(tmp_path / "a" / "0.png", size=(10, 8))
    _save(tmp_path / "a" / "1.png", size=(12, 8))
    _save(tmp_path / "b" / "0.png", size=(10, 8))
    _save(tmp_path / "b" / "1.png", size=(10, 8))
    with pytest.raises(ValueError, match=r"load_image_folder: with size=None all images must share their size.*1\.png"):
        load_image_folder(tmp_path, size=None)
    assert load_image_folder(tmp_path, size=5).image_size == (5, 5)


def test_image_folder_train_and_test_sizes_differ(tmp_path):
    for split, size in (("train", (4, 4)), ("test", (5, 5))):
        _save(tmp_path / split / "a" / "0.png", size=size)
    with pytest.raises(ValueError, match="train and test images must share their size"):
        load_image_folder(tmp_path, size=None)
    assert load_image_folder(tmp_path, size=4).test_images.shape == (1, 3, 4, 4)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_image_folder: .*missing does not exist; expected root/<class>"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_image_folder(tmp_path / "f.png")
    empty = tmp_path / "empty"
    (empty / ".git").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no class folders"):
        load_image_folder(empty)
    no_images = tmp_path / "no_images"
    (no_images / "a").mkdir(parents=True)
    (no_images / "a" / "x.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"class folder .*a holds no image files"):
        load_image_folder(no_images)
    broken = tmp_path / "broken"
    _save(broken / "a" / "0.png")
    (broken / "a" / "1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read image .*1\.jpg"):
        load_image_folder(broken)
    single = tmp_path / "single"
    _save(single / "a" / "0.png")
    _save(single / "a" / "1.png")
    _save(single / "b" / "0.png")
    with pytest.raises(ValueError, match="class 'b' has 1 image"):
        load_image_folder(single)
    half = tmp_path / "half"
    _save(half / "train" / "a" / "0.png")
    with pytest.raises(ValueError, match="has a train/ folder but no test/ folder"):
        load_image_folder(half)
    differ = tmp_path / "differ"
    _save(differ / "train" / "a" / "0.png")
    _save(differ / "test" / "b" / "0.png")
    with pytest.raises(ValueError, match="must hold the same class folders"):
        load_image_folder(differ)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"size": 8.0}, TypeError, "load_image_folder: size must be an integer, got float"),
        ({"size": True}, TypeError, "size must be an integer, got bool"),
        ({"size": 0}, ValueError, "size must be >= 1"),
        ({"seed": 0.0}, TypeError, "seed must be an integer"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"test_fraction": None}, TypeError, "test_fraction must be a number"),
        ({"test_fraction": 1.5}, ValueError, "test_fraction must be strictly between 0 and 1, got 1.5"),
    ],
)
def test_image_folder_argument_errors(tmp_path, kwargs, error, words):
    _write_folder(tmp_path, per_class=2)
    with pytest.raises(error, match=words):
        load_image_folder(tmp_path, **kwargs)


@pytest.mark.parametrize(
    "root, error, words",
    [(1.5, TypeError, "load_image_folder: root must be a path"), ("", ValueError, "non-empty path")],
)
def test_image_folder_root_errors(root, error, words):
    with pytest.raises(error, match=words):
        load_image_folder(root)


# ---------------------------------------------------------------------------------------------
# by name


def test_load_by_name(tmp_path):
    data = load_image_classification("digits", size=8)
    assert data.name == "digits" and data.image_size == (8, 8)
    assert load_image_classification(" Digits ", seed=1, size=8).name == "digits"


@pytest.mark.parametrize(
    "args, kwargs, error, words",
    [
        ((3,), {}, TypeError, "load_image_classification: name must be a str"),
        (("mnist",), {}, ValueError, "name must be one of digits, cifar10, imagefolder, got 'mnist'"),
        (("digits", "/data"), {}, ValueError, "take no root"),
        (("cifar10",), {}, ValueError, "cifar10 needs root"),
        (("imagefolder",), {}, ValueError, "imagefolder needs root"),
        (("digits",), {"colour": True}, TypeError, "colour"),
        (("digits",), {"size": 2.5}, TypeError, "load_digits_rgb: size must be an integer"),
    ],
)
def test_load_by_name_errors(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        load_image_classification(*args, **kwargs)


def test_module_surface():
    assert set(ic.__all__) >= {
        "ImageClassificationData",
        "CIFAR10_MEAN",
        "CIFAR10_STD",
        "load_digits_rgb",
        "load_cifar10",
        "load_image_folder",
        "load_image_classification",
    }
    assert Path(ic.__file__).name == "image_classification.py"


def test_cifar10_numpy_1_pickles(tmp_path):
    # The real files were pickled by numpy 1.x, whose arrays name numpy.core.multiarray._reconstruct.
    written = _write_cifar(tmp_path, batches=1, protocol=2)
    raw = (tmp_path / "data_batch_1").read_bytes()
    assert b"numpy._core.multiarray" in raw
    (tmp_path / "data_batch_1").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    data = load_cifar10(tmp_path)
    assert torch.equal(data.train_images.reshape(20, -1), torch.from_numpy(written["data_batch_1"][b"data"]))
