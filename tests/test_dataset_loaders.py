"""Loaders of Market-1501 / DukeMTMC-reID with their attribute files, and of feature files, on
tiny fake datasets written to tmp_path (the real ones are never needed)."""

import os

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from featperm.datasets import feature_files as ff
from featperm.datasets import reid
from featperm.datasets.attributes import MISSING, AttributeImages

MARKET_BINARY = ["gender", "hair", "up", "down", "clothes", "hat", "backpack", "bag", "handbag", "age"]
MARKET_UP = ["black", "white", "red", "purple", "yellow", "gray", "blue", "green"]
MARKET_DOWN = ["black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown"]
DUKE_BINARY = ["backpack", "bag", "handbag", "boots", "gender", "hat", "shoes", "top"]
DUKE_UP = ["black", "white", "red", "purple", "gray", "blue", "green", "brown"]
DUKE_DOWN = ["black", "white", "red", "gray", "blue", "green", "brown"]


def split_fields(people, binary, up, down, order):
    """The fields of one split: people maps an identity string to a dict of file values for the
    binary attributes (default 1) and "up"/"down" colour lists (value 2 for those, 1 for the
    rest; None = every column 0, i.e. not annotated). order: a permutation of the field names."""
    fields = {}
    ids = list(people)
    for name in binary:
        fields[name] = np.array([[people[i].get(name, 1) for i in ids]], dtype=np.uint8)
    for prefix, colours in (("up", up), ("down", down)):
        for colour in colours:
            values = []
            for i in ids:
                chosen = people[i].get("colours_" + prefix, [])
                values.append(0 if chosen is None else (2 if colour in chosen else 1))
            fields[prefix + colour] = np.array([values], dtype=np.float64)  # real files mix dtypes
    index = np.empty((1, len(ids)), dtype=object)
    for k, i in enumerate(ids):
        index[0, k] = i
    fields["image_index"] = index
    names = list(fields)
    return {n: fields[n] for n in order(names)}


def write_mat(path, variable, train, test):
    scipy.io.savemat(str(path), {variable: {"train": train, "test": test}})
    return path


def jpg(path, colour=(200, 30, 40), size=(8, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")


MARKET_TRAIN = {
    "0002": {"gender": 2, "age": 3, "colours_up": ["red"], "colours_down": ["blue"]},
    "0007": {"gender": 1, "age": 1, "hat": 2, "colours_up": ["white"], "colours_down": None},
    "0009": {"colours_up": ["red", "blue"], "colours_down": ["black"]},  # two upper colours: dropped
    "0010": {"colours_up": [], "colours_down": ["black"]},  # no upper colour: dropped (no images)
}
MARKET_TEST = {
    "0003": {"gender": 2, "backpack": 0, "age": 4, "colours_up": ["green"], "colours_down": ["pink"]},
    "0004": {"gender": 1, "colours_up": ["black"], "colours_down": ["black", "white"]},  # dropped
}
MARKET_FILES = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000001_01.jpg", "0007_c3s2_000100_02.jpg",
        "0009_c1s1_000002_01.jpg", "-1_c1s1_000401_03.jpg", "0000_c1s1_000000_01.jpg",
    ],
    "query": ["0003_c1s1_000010_00.jpg", "0004_c2s1_000020_00.jpg"],
    "bounding_box_test": [
        "0003_c6s1_000011_01.jpg", "0005_c4s1_000012_01.jpg", "0000_c1s1_000000_01.jpg",
        "-1_c3s1_000001_02.jpg",
    ],
}


def make_market(root, attribute_place="folder"):
    folder = root / "Market-1501-v15.09.15"
    for sub, names in MARKET_FILES.items():
        for name in names:
            jpg(folder / sub / name)
    train = split_fields(MARKET_TRAIN, MARKET_BINARY, MARKET_UP, MARKET_DOWN, lambda n: n)
    test = split_fields(MARKET_TEST, MARKET_BINARY, MARKET_UP, MARKET_DOWN, lambda n: list(reversed(n)))
    if attribute_place == "folder":
        (folder / "Market-1501_Attribute").mkdir()
        mat = folder / "Market-1501_Attribute" / "market_attribute.mat"
    else:
        mat = folder / "market_attribute.mat"
    write_mat(mat, "market_attribute", train, test)
    return folder, mat


DUKE_TRAIN = {
    "0005": {"top": 2, "shoes": 2, "boots": 2, "colours_up": ["brown"], "colours_down": ["gray"]},
    "0006": {"gender": 2, "colours_up": ["purple"], "colours_down": []},  # no lower colour: dropped
}
DUKE_TEST = {"0011": {"gender": 2, "colours_up": ["blue"], "colours_down": ["red"]}}
DUKE_FILES = {
    "bounding_box_train": ["0005_c2_f0046985.jpg", "0005_c5_f0050000.jpg", "0006_c1_f0000001.jpg"],
    "query": ["0011_c3_f0000100.jpg"],
    "bounding_box_test": ["0011_c8_f0000200.jpg", "0012_c1_f0000300.jpg", "0000_c1_f0000001.jpg"],
}


def make_duke(root):
    folder = root / "DukeMTMC-reID"
    for sub, names in DUKE_FILES.items():
        for name in names:
            jpg(folder / sub / name)
    train = split_fields(DUKE_TRAIN, DUKE_BINARY, DUKE_UP, DUKE_DOWN, sorted)
    test = split_fields(DUKE_TEST, DUKE_BINARY, DUKE_UP, DUKE_DOWN, lambda n: sorted(n, reverse=True))
    write_mat(folder / "duke_attribute.mat", "duke_attribute", train, test)
    return folder


# ---------------------------------------------------------------------------------------------
# the fake files have the real files' layout


def test_fake_attribute_file_has_the_real_layout(tmp_path):
    _, mat = make_market(tmp_path)
    content = scipy.io.loadmat(str(mat))
    train = content["market_attribute"][0, 0]["train"][0, 0]
    test = content["market_attribute"][0, 0]["test"][0, 0]
    assert train["gender"].shape == (1, 4)
    assert train["image_index"].shape == (1, 4)
    assert str(train["image_index"][0, 0][0]) == "0002"
    assert train.dtype.names != test.dtype.names  # the field order differs between the splits
    assert set(train.dtype.names) == set(test.dtype.names)


# ---------------------------------------------------------------------------------------------
# Market-1501


def by_path(data: AttributeImages):
    return {os.path.basename(p): i for i, p in enumerate(data.paths)}


def test_market_dataset(tmp_path):
    folder, _ = make_market(tmp_path)
    data = reid.load_reid_dataset(tmp_path, "market1501")
    assert set(data) == {"train", "test"}
    train, test = data["train"], data["test"]
    assert isinstance(train, AttributeImages) and train.images is None
    assert train.name == "market1501/train" and test.name == "market1501/test"

    # junk (-1), distractors (0) and the dropped identity 0009 are gone
    assert [os.path.basename(p) for p in train.paths] == [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000001_01.jpg", "0007_c3s2_000100_02.jpg",
    ]
    assert all(os.path.isabs(p) for p in train.paths)
    assert train.paths == sorted(train.paths)
    assert train.paths[0] == str((folder / "bounding_box_train" / "0002_c1s1_000451_03.jpg").absolute())
    assert train.identities.tolist() == [2, 2, 7]
    assert train.cameras.tolist() == [0, 1, 2]  # 0-based
    assert train.identities.dtype == torch.int64 and train.cameras.dtype == torch.int64

    # test = query (sorted) then gallery (sorted); 0004 dropped (two lower colours)
    assert [os.path.basename(p) for p in test.paths] == [
        "0003_c1s1_000010_00.jpg", "0003_c6s1_000011_01.jpg", "0005_c4s1_000012_01.jpg",
    ]
    assert os.path.basename(os.path.dirname(test.paths[0])) == "query"
    assert test.identities.tolist() == [3, 3, 5]
    assert test.cameras.tolist() == [0, 5, 3]

    # classes
    assert train.classes["gender"] == ("male", "female")
    assert train.classes["age"] == ("young", "teenager", "adult", "old")
    assert train.classes["up"] == ("long", "short")
    assert train.classes["clothes"] == ("dress", "pants")
    assert train.classes["upper_colour"] == tuple(sorted(MARKET_UP))
    assert train.classes["lower_colour"] == tuple(sorted(MARKET_DOWN))
    assert not any(k.startswith("upb") or k.startswith("downb") for k in train.attributes)
    assert set(train.attributes) == set(MARKET_BINARY) | {"upper_colour", "lower_colour"}

    # labels per identity, by name
    up, down = train.classes["upper_colour"], train.classes["lower_colour"]
    assert train.attributes["gender"].tolist() == [1, 1, 0]
    assert train.attributes["age"].tolist() == [2, 2, 0]
    assert train.attributes["hat"].tolist() == [0, 0, 1]
    assert train.attributes["upper_colour"].tolist() == [up.index("red"), up.index("red"), up.index("white")]
    assert train.attributes["lower_colour"].tolist() == [down.index("blue"), down.index("blue"), MISSING]

    # test: annotated by the test split; 0003's backpack is 0 in the file (missing);
    # 0005 has no annotation at all
    assert test.attributes["gender"].tolist() == [1, 1, MISSING]
    assert test.attributes["age"].tolist() == [3, 3, MISSING]
    assert test.attributes["backpack"].tolist() == [MISSING, MISSING, MISSING]
    assert test.attributes["upper_colour"].tolist() == [up.index("green")] * 2 + [MISSING]
    assert test.attributes["lower_colour"].tolist() == [down.index("pink")] * 2 + [MISSING]
    for name in test.attributes:
        assert test.attributes[name][2] == MISSING


def test_market_dataset_folder_as_root_and_attribute_file_inside(tmp_path):
    folder, _ = make_market(tmp_path, attribute_place="inside")
    a = reid.load_reid_dataset(folder, "market1501")
    b = reid.load_reid_dataset(str(tmp_path), "market1501")
    assert a["train"].paths == b["train"].paths
    assert torch.equal(a["test"].attributes["gender"], b["test"].attributes["gender"])
    assert reid.find_reid_folders(tmp_path, "market1501") == (folder, folder / "market_attribute.mat")


def test_read_attribute_file(tmp_path):
    _, mat = make_market(tmp_path)
    table = reid.read_attribute_file(mat)
    assert table.name == "market1501" and table.source == str(mat)
    assert reid.read_attribute_file(str(mat), "market1501").classes == table.classes
    assert table.train.identities.tolist() == [2, 7]
    assert table.train.dropped_identities.tolist() == [9, 10]
    assert table.train.num_dropped == 2
    assert table.test.identities.tolist() == [3]
    assert table.dropped_identities == {"train": 2, "test": 1}
    assert table.split("test") is table.test
    labels = table.train.labels_of(torch.tensor([7, 2, 99]))
    assert labels["gender"].tolist() == [0, 1, MISSING]
    assert list(table.classes)[-2:] == ["upper_colour", "lower_colour"]
    for split in (table.train, table.test):
        for name, values in split.attributes.items():
            assert values.dtype == torch.int64 and values.shape == split.identities.shape, name


def test_unknown_attribute_gets_numbered_classes(tmp_path):
    people = {"0001": {"gender": 1, "extra": 3, "colours_up": ["red"], "colours_down": ["blue"]}}
    fields = split_fields(people, ["gender", "extra"], ["red"], ["blue"], lambda n: n)
    mat = write_mat(tmp_path / "a.mat", "market_attribute", fields, fields)
    table = reid.read_attribute_file(mat)
    assert table.classes["extra"] == ("1", "2", "3")
    assert table.train.attributes["extra"].tolist() == [2]
    assert table.classes["upper_colour"] == ("red",)


# ---------------------------------------------------------------------------------------------
# DukeMTMC-reID


def test_duke_dataset(tmp_path):
    folder = make_duke(tmp_path)
    data = reid.load_reid_dataset(folder, "duke")  # the dataset folder itself, attribute file inside
    train, test = data["train"], data["test"]
    assert train.identities.tolist() == [5, 5]  # 0006 dropped: no lower colour
    assert train.cameras.tolist() == [1, 4]
    assert train.classes["top"] == ("short", "long")
    assert train.classes["shoes"] == ("dark", "light")
    assert train.classes["boots"] == ("no", "yes")
    assert train.classes["upper_colour"] == tuple(sorted(DUKE_UP))
    assert train.classes["lower_colour"] == tuple(sorted(DUKE_DOWN))
    assert train.attributes["top"].tolist() == [1, 1]
    assert train.attributes["shoes"].tolist() == [1, 1]
    assert train.attributes["gender"].tolist() == [0, 0]
    assert train.attributes["upper_colour"].tolist() == [train.classes["upper_colour"].index("brown")] * 2
    assert train.attributes["lower_colour"].tolist() == [train.classes["lower_colour"].index("gray")] * 2
    assert [os.path.basename(p) for p in test.paths] == [
        "0011_c3_f0000100.jpg", "0011_c8_f0000200.jpg", "0012_c1_f0000300.jpg",
    ]
    assert test.cameras.tolist() == [2, 7, 0]
    assert test.attributes["gender"].tolist() == [1, 1, MISSING]  # 0012: a gallery distractor, unannotated
    assert test.attributes["lower_colour"].tolist() == [test.classes["lower_colour"].index("red")] * 2 + [MISSING]
    assert reid.read_attribute_file(folder / "duke_attribute.mat").dropped_identities == {"train": 1, "test": 0}


# ---------------------------------------------------------------------------------------------
# errors


def test_missing_folders_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        reid.load_reid_dataset(tmp_path / "nowhere", "market1501")
    with pytest.raises(FileNotFoundError, match="bounding_box_train") as info:
        reid.load_reid_dataset(tmp_path, "market1501")
    assert "Market-1501-v15.09.15" in str(info.value)  # the layout help
    folder, mat = make_market(tmp_path)
    os.remove(mat)
    with pytest.raises(FileNotFoundError, match=r"market_attribute\.mat"):
        reid.load_reid_dataset(tmp_path, "market1501")
    with pytest.raises(FileNotFoundError, match="no attribute file"):
        reid.read_attribute_file(mat)
    for name in MARKET_FILES["query"]:
        os.remove(folder / "query" / name)
    os.rmdir(folder / "query")
    with pytest.raises(FileNotFoundError, match="query"):
        reid.load_reid_dataset(tmp_path, "market1501")


def test_duke_folder_is_not_market(tmp_path):
    make_duke(tmp_path)
    with pytest.raises(FileNotFoundError, match="market1501"):
        reid.load_reid_dataset(tmp_path, "market1501")


def test_badly_named_image(tmp_path):
    folder, _ = make_market(tmp_path)
    jpg(folder / "query" / "holiday.jpg")
    with pytest.raises(ValueError, match=r"holiday\.jpg"):
        reid.load_reid_dataset(tmp_path, "market1501")


def test_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="load_reid_dataset: root"):
        reid.load_reid_dataset(3, "market1501")
    with pytest.raises(TypeError, match="load_reid_dataset: name"):
        reid.load_reid_dataset(tmp_path, None)
    with pytest.raises(ValueError, match="load_reid_dataset: name must be one of market1501, duke, got 'cuhk03'"):
        reid.load_reid_dataset(tmp_path, "cuhk03")
    with pytest.raises(ValueError, match="reid_layout_help: name"):
        reid.reid_layout_help("market")
    with pytest.raises(TypeError, match="read_attribute_file: path"):
        reid.read_attribute_file(None)


def test_bad_attribute_files(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file at all")
    with pytest.raises(ValueError, match="not a readable MATLAB"):
        reid.read_attribute_file(bad)
    other = tmp_path / "other.mat"
    scipy.io.savemat(str(other), {"something": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="something"):
        reid.read_attribute_file(other)
    _, mat = make_market(tmp_path)
    with pytest.raises(ValueError, match="no variable duke_attribute"):
        reid.read_attribute_file(mat, "duke")
    people = {"0001": {"colours_up": ["red"], "colours_down": ["blue"]}}
    train = split_fields(people, ["gender"], ["red"], ["blue"], lambda n: n)
    test = split_fields(people, ["hair"], ["red"], ["blue"], lambda n: n)
    with pytest.raises(ValueError, match=r"same attributes.*only in train: gender.*only in test: hair"):
        reid.read_attribute_file(write_mat(tmp_path / "m.mat", "market_attribute", train, test))
    people = {"0001": {"gender": 3, "colours_up": ["red"], "colours_down": ["blue"]}}
    fields = split_fields(people, ["gender"], ["red"], ["blue"], lambda n: n)
    with pytest.raises(ValueError, match=r"gender must hold values 0\.\.2, got 3"):
        reid.read_attribute_file(write_mat(tmp_path / "g.mat", "market_attribute", fields, fields))


# ---------------------------------------------------------------------------------------------
# load_images


def test_load_images(tmp_path):
    jpg(tmp_path / "a.jpg", (250, 10, 10), size=(20, 40))
    Image.new("L", (10, 10), 128).save(tmp_path / "b.jpg")  # greyscale becomes RGB
    seen = []
    images = reid.load_images([tmp_path / "a.jpg", str(tmp_path / "b.jpg")], 12, 6, progress=seen.append)
    assert images.shape == (2, 3, 12, 6) and images.dtype == torch.uint8
    assert images.is_contiguous()
    assert images[0, 0].float().mean() > 200 and images[0, 1].float().mean() < 60
    assert abs(images[1].float().mean() - 128) < 5
    assert seen == [1, 2]
    assert reid.load_images([], 4, 4).shape == (0, 3, 4, 4)


def test_load_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg"):
        reid.load_images([tmp_path / "missing.jpg"], 4, 4)
    (tmp_path / "x.jpg").write_bytes(b"no image")
    with pytest.raises(ValueError, match=r"x\.jpg"):
        reid.load_images([tmp_path / "x.jpg"], 4, 4)
    with pytest.raises(TypeError, match="load_images: height must be an integer, got float"):
        reid.load_images([], 4.0, 4)
    with pytest.raises(TypeError, match="load_images: width"):
        reid.load_images([], 4, True)
    with pytest.raises(ValueError, match="load_images: height must be >= 1, got 0"):
        reid.load_images([], 0, 4)
    with pytest.raises(TypeError, match="load_images: paths"):
        reid.load_images(str(tmp_path / "x.jpg"), 4, 4)


def test_layout_help():
    text = reid.reid_layout_help("duke")
    assert "DukeMTMC-reID/bounding_box_train" in text and "duke_attribute.mat" in text


# ---------------------------------------------------------------------------------------------
# user feature files


def test_feature_file_round_trip(tmp_path):
    features = torch.randn(5, 3, dtype=torch.float64)
    attributes = {
        "colour": torch.tensor([3, 7, 7, -1, 3]),
        "flag": torch.tensor([True, False, True, True, False]),
        "age": torch.tensor([0, 1, 2, 1, 0], dtype=torch.int32),
    }
    path = tmp_path / "feats.bin"  # written exactly there, no .npz appended
    ff.save_feature_file(path, features, attributes, split=torch.tensor([0, 0, 1, 1, 1]))
    assert path.is_file()
    loaded = ff.load_feature_file(path)
    assert isinstance(loaded, ff.FeatureSet) and len(loaded) == 5
    assert loaded.features.dtype == torch.float32
    assert torch.equal(loaded.features, features.float())
    assert loaded.attributes["colour"].tolist() == [0, 1, 1, -1, 0]
    assert loaded.classes["colour"] == ("3", "7")
    assert loaded.attributes["flag"].tolist() == [1, 0, 1, 1, 0]
    assert loaded.classes["flag"] == ("0", "1")
    assert loaded.attributes["age"].tolist() == [0, 1, 2, 1, 0]
    assert loaded.split.tolist() == [0, 0, 1, 1, 1] and loaded.split.dtype == torch.int64
    assert loaded.source == str(path)
    for labels in loaded.attributes.values():
        assert labels.dtype == torch.int64
    ff.save_feature_file(tmp_path / "nosplit.npz", features.half(), {"a": torch.tensor([1, 1, 2, 2, 9])})
    again = ff.load_feature_file(str(tmp_path / "nosplit.npz"))
    assert again.split is None and again.classes["a"] == ("1", "2", "9")


def test_feature_file_written_by_numpy(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, features=np.ones((3, 2), dtype=np.float16), gender=np.array([1, 0, 1], dtype=np.uint8),
             split=np.array([True, False, True]))
    loaded = ff.load_feature_file(path)
    assert loaded.features.dtype == torch.float32 and loaded.features.shape == (3, 2)
    assert loaded.attributes["gender"].tolist() == [1, 0, 1]
    assert loaded.split.tolist() == [1, 0, 1]


def save(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def test_feature_file_errors(tmp_path):
    f = np.zeros((3, 2), dtype=np.float32)
    labels = np.array([0, 1, 0])
    with pytest.raises(ValueError, match="'features', got arrays: gender, split"):
        ff.load_feature_file(save(tmp_path, gender=labels, split=labels))
    with pytest.raises(ValueError, match=r"features must have shape \(N, D\), got \(3,\)"):
        ff.load_feature_file(save(tmp_path, features=np.zeros(3), gender=labels))
    with pytest.raises(TypeError, match="features must have a real floating dtype"):
        ff.load_feature_file(save(tmp_path, features=np.zeros((3, 2), dtype=np.int32), gender=labels))
    nan = f.copy()
    nan[0, 0], nan[2, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match="2 non-finite"):
        ff.load_feature_file(save(tmp_path, features=nan, gender=labels))
    with pytest.raises(ValueError, match="3 values outside float32"):
        ff.load_feature_file(save(tmp_path, features=np.array([[1e300, 0.0]] * 3), gender=labels))
    with pytest.raises(ValueError, match=r"array 'gender' must have shape \(3,\)"):
        ff.load_feature_file(save(tmp_path, features=f, gender=np.array([0, 1])))
    with pytest.raises(TypeError, match="array 'gender' must hold integer"):
        ff.load_feature_file(save(tmp_path, features=f, gender=np.array([0.0, 1.0, 1.0])))
    with pytest.raises(TypeError, match="array 'name' must hold integer"):
        ff.load_feature_file(save(tmp_path, features=f, name=np.array(["a", "b", "c"])))
    with pytest.raises(ValueError, match="at least one attribute"):
        ff.load_feature_file(save(tmp_path, features=f, split=labels))
    with pytest.raises(ValueError, match=r"'split' must hold 0 .* 1 other values \(e.g. 2\)"):
        ff.load_feature_file(save(tmp_path, features=f, gender=labels, split=np.array([0, 1, 2])))
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        ff.load_feature_file(tmp_path / "nothing.npz")
    np.save(tmp_path / "single.npy", f)
    with pytest.raises(ValueError, match=r"single \.npy array"):
        ff.load_feature_file(tmp_path / "single.npy")
    np.savez(tmp_path / "obj.npz", features=f, gender=np.array([0, "a", None], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        ff.load_feature_file(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        ff.load_feature_file(tmp_path / "junk.npz")
    with pytest.raises(TypeError, match="load_feature_file: path"):
        ff.load_feature_file(5)


def test_save_feature_file_errors(tmp_path):
    f = torch.zeros(3, 2)
    g = {"gender": torch.tensor([0, 1, 0])}
    with pytest.raises(TypeError, match=r"save_feature_file: features must be a torch\.Tensor, got ndarray"):
        ff.save_feature_file(tmp_path / "x.npz", np.zeros((3, 2)), g)
    with pytest.raises(TypeError, match="features must have a floating dtype"):
        ff.save_feature_file(tmp_path / "x.npz", torch.zeros(3, 2, dtype=torch.int64), g)
    with pytest.raises(ValueError, match="at least one attribute"):
        ff.save_feature_file(tmp_path / "x.npz", f, {})
    with pytest.raises(ValueError, match="not one of features, split; got 'split'"):
        ff.save_feature_file(tmp_path / "x.npz", f, {"split": torch.tensor([0, 1, 0])})
    with pytest.raises(TypeError, match=r"attributes\['gender'\] must hold integer"):
        ff.save_feature_file(tmp_path / "x.npz", f, {"gender": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"attributes\['gender'\] must have shape \(3,\)"):
        ff.save_feature_file(tmp_path / "x.npz", f, {"gender": torch.zeros(4, dtype=torch.int64)})
    with pytest.raises(ValueError, match="split must hold 0 and 1"):
        ff.save_feature_file(tmp_path / "x.npz", f, g, split=torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="non-finite"):
        ff.save_feature_file(tmp_path / "x.npz", torch.tensor([[float("nan")]] * 3), g)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ff.save_feature_file(tmp_path / "no" / "x.npz", f, g)
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------------------------------------
# the ShuffleBits authors' feature files


def authors_file(tmp_path, stored, features):
    path = tmp_path / "authors.npz"
    np.savez(path, accumulated_image_file_paths=np.asarray(stored), accumulated_feature_array=features)
    return path


@pytest.mark.parametrize("style", ["relative", "absolute", "windows", "dataset_relative"])
def test_features_for_paths(tmp_path, style):
    names = ["bounding_box_train/0002_c1s1_000451_03.jpg", "query/0003_c1s1_000010_00.jpg",
             "bounding_box_test/0003_c6s1_000011_01.jpg"]
    stored = {
        "relative": names,
        "absolute": ["/home/author/data/Market-1501-v15.09.15/" + n for n in names],
        "windows": ["D:\\data\\Market-1501-v15.09.15\\" + n.replace("/", "\\") for n in names],
        "dataset_relative": ["Market-1501-v15.09.15/" + n for n in names],
    }[style]
    table = np.arange(6, dtype=np.float64).reshape(3, 2)
    file_paths, features = ff.load_authors_feature_file(authors_file(tmp_path, stored, table))
    assert file_paths == stored
    assert features.dtype == torch.float32 and features.shape == (3, 2)
    root = tmp_path / "data"
    wanted = [str(root / "Market-1501-v15.09.15" / n) for n in (names[2], names[0])]
    out = ff.features_for_paths(file_paths, features, wanted, root)
    assert out.tolist() == [[4.0, 5.0], [0.0, 1.0]]
    # the same with the dataset folder as root
    out = ff.features_for_paths(file_paths, features, wanted, root / "Market-1501-v15.09.15")
    assert out.tolist() == [[4.0, 5.0], [0.0, 1.0]]


def test_features_for_paths_errors(tmp_path):
    stored = ["bounding_box_train/a.jpg", "bounding_box_train/b.jpg", "x/c.jpg", "y/c.jpg"]
    features = torch.zeros(4, 2)
    root = tmp_path
    missing = [root / "bounding_box_train" / "a.jpg", root / "query" / "m.jpg", root / "query" / "n.jpg"]
    with pytest.raises(ValueError, match=r"no features for .*m\.jpg \(2 of 3 paths have none\)"):
        ff.features_for_paths(stored, features, missing, root)
    with pytest.raises(ValueError, match="matches 2 stored paths"):
        ff.features_for_paths(stored, features, [root / "c.jpg"], root)
    with pytest.raises(ValueError, match="does not lie under root"):
        ff.features_for_paths(stored, features, [tmp_path.parent / "a.jpg"], root)
    with pytest.raises(ValueError, match=r"features must have shape \(4, D\)"):
        ff.features_for_paths(stored, torch.zeros(3, 2), [], root)
    with pytest.raises(TypeError, match="file_paths"):
        ff.features_for_paths("a.jpg", features, [], root)
    with pytest.raises(TypeError, match=r"features_for_paths: features must be a torch\.Tensor"):
        ff.features_for_paths(stored, np.zeros((4, 2)), [], root)
    assert ff.features_for_paths(stored, features, [], root).shape == (0, 2)


def test_authors_feature_file_errors(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, accumulated_feature_array=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="missing accumulated_image_file_paths"):
        ff.load_authors_feature_file(path)
    np.savez(path, accumulated_image_file_paths=np.array(["a"]), accumulated_feature_array=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2 rows for 1 paths"):
        ff.load_authors_feature_file(path)
    np.savez(path, accumulated_image_file_paths=np.array([1, 2]), accumulated_feature_array=np.zeros((2, 2)))
    with pytest.raises(TypeError, match="must hold strings"):
        ff.load_authors_feature_file(path)
    with pytest.raises(FileNotFoundError):
        ff.load_authors_feature_file(tmp_path / "none.npz")
