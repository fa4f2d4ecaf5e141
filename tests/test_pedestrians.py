"""featperm.datasets.pedestrians: the procedurally drawn pedestrian-attribute dataset."""

import pytest
import torch
import torch.nn.functional as F

from featperm.datasets.attributes import AttributeImages
from featperm.datasets.pedestrians import ATTRIBUTE_CLASSES, CAMERAS, DOMAINS, synthetic_pedestrians


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The drawing runs many small ops: on a loaded shared machine one intra-op thread is much
    # faster than two that wait for each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mall():
    return synthetic_pedestrians(100, 8, domain="mall", seed=3)


@pytest.fixture(scope="module")
def street():
    return synthetic_pedestrians(100, 8, domain="street", seed=3)


@pytest.fixture(scope="module")
def campus():
    return synthetic_pedestrians(100, 8, domain="campus", seed=3)


def test_shapes_dtypes_and_layout(mall):
    assert isinstance(mall, AttributeImages)
    assert mall.images.shape == (800, 3, 64, 32) and mall.images.dtype == torch.uint8
    assert mall.identities.dtype == torch.int64 and mall.cameras.dtype == torch.int64
    assert torch.equal(mall.identities, torch.arange(100).repeat_interleave(8))
    assert mall.cameras.min() >= 0 and mall.cameras.max() < CAMERAS["mall"]
    assert mall.classes == ATTRIBUTE_CLASSES and set(mall.attributes) == set(ATTRIBUTE_CLASSES)
    for labels in mall.attributes.values():
        assert labels.dtype == torch.int64 and labels.shape == (800,)
    assert mall.name == "synthetic-mall" and mall.num_identities == 100
    assert mall.paths is None
    # Every identity is seen by at least two cameras.
    cams = mall.cameras.view(100, 8)
    assert bool(((cams != cams[:, :1]).any(1)).all())


@pytest.mark.parametrize("height,width", [(32, 16), (128, 64), (97, 41)])
def test_other_sizes(height, width):
    data = synthetic_pedestrians(3, 2, domain=1, height=height, width=width)
    assert data.images.shape == (6, 3, height, width)
    assert data.name == "synthetic-street" and data.cameras.max() < CAMERAS["street"]
    assert data.images.float().std() > 10  # something is drawn


def test_the_domains_by_name_and_number():
    assert DOMAINS == {"mall": 0, "street": 1, "campus": 2}
    assert CAMERAS == {"mall": 6, "street": 8, "campus": 5}


def test_campus_layout(campus):
    assert campus.images.shape == (800, 3, 64, 32) and campus.name == "synthetic-campus"
    assert campus.cameras.min() >= 0 and campus.cameras.max() == CAMERAS["campus"] - 1
    cams = campus.cameras.view(100, 8)
    assert bool(((cams != cams[:, :1]).any(1)).all())
    small = synthetic_pedestrians(3, 2, domain=2, height=97, width=41)
    assert small.images.shape == (6, 3, 97, 41) and small.name == "synthetic-campus"


@pytest.mark.parametrize("domain", ["street", "campus"])
def test_deterministic(domain):
    a = synthetic_pedestrians(7, 3, domain=domain, seed=11)
    b = synthetic_pedestrians(7, 3, domain=DOMAINS[domain], seed=11)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.identities, b.identities) and torch.equal(a.cameras, b.cameras)
    assert all(torch.equal(a.attributes[k], b.attributes[k]) for k in ATTRIBUTE_CLASSES)
    torch.set_num_threads(2)  # the same bits whatever the number of threads
    try:
        c = synthetic_pedestrians(7, 3, domain=domain, seed=11)
    finally:
        torch.set_num_threads(1)
    assert torch.equal(a.images, c.images)


def _identity_table(data, per):
    return torch.stack([data.attributes[k][::per] for k in ATTRIBUTE_CLASSES], 1)


def test_seeds_and_domains_give_different_identities():
    base = synthetic_pedestrians(30, 2, seed=0)
    other_seed = synthetic_pedestrians(30, 2, seed=1)
    other_domain = synthetic_pedestrians(30, 2, seed=0, domain="street")
    third_domain = synthetic_pedestrians(30, 2, seed=0, domain="campus")
    for other in (other_seed, other_domain, third_domain):
        assert not torch.equal(base.images, other.images)
        same = (_identity_table(base, 2) == _identity_table(other, 2)).all(1)
        assert same.float().mean() < 0.5


@pytest.mark.parametrize("domain", ["mall", "street", "campus"])
@pytest.mark.parametrize("seed", [0, 1, 2, 12345])
def test_every_class_of_every_attribute_occurs_with_100_identities(domain, seed):
    data = synthetic_pedestrians(100, 1, domain=domain, seed=seed, height=32, width=16)
    for name, classes in ATTRIBUTE_CLASSES.items():
        counts = torch.bincount(data.attributes[name], minlength=len(classes))
        assert counts.numel() == len(classes) and bool((counts > 0).all()), (name, counts.tolist())


def test_class_frequencies_are_imbalanced_like_real_annotations():
    data = synthetic_pedestrians(2000, 1, seed=5, height=32, width=16)
    freq = {k: v.float().mean().item() for k, v in data.attributes.items() if len(ATTRIBUTE_CLASSES[k]) == 2}
    assert 0.07 < freq["hat"] < 0.18
    assert 0.18 < freq["backpack"] < 0.32
    assert 0.35 < freq["gender"] < 0.55
    female = data.attributes["gender"] == 1
    for name in ("hair", "lower_type"):  # female -> more often long hair and a dress
        labels = data.attributes[name].float()
        assert labels[female].mean() > labels[~female].mean() + 0.25


def test_campus_priors_differ_a_little_from_the_mall():
    mall = synthetic_pedestrians(3000, 1, seed=5, height=32, width=16)
    campus = synthetic_pedestrians(3000, 1, seed=5, domain="campus", height=32, width=16)
    for name in ("gender", "backpack", "sleeve", "hat"):
        m, c = mall.attributes[name].float().mean().item(), campus.attributes[name].float().mean().item()
        assert 0.02 < abs(m - c) < 0.15, (name, m, c)
    assert campus.attributes["backpack"].float().mean() > mall.attributes["backpack"].float().mean()
    female = campus.attributes["gender"] == 1
    for name in ("hair", "lower_type"):  # the same correlations as in the mall
        labels = campus.attributes[name].float()
        assert labels[female].mean() > labels[~female].mean() + 0.2


def test_labels_are_constant_within_an_identity(mall, street, campus):
    for data in (mall, street, campus):
        for labels in data.attributes.values():
            table = labels.view(100, 8)
            assert torch.equal(table, table[:, :1].expand(-1, 8))


def test_the_domains_differ_in_their_backgrounds(mall, street):
    def border(data):  # the outermost columns: nearly always background
        x = data.images.float()
        strip = torch.cat([x[..., :2], x[..., -2:]], -1)
        return strip.mean().item(), strip.std(dim=(2, 3)).mean().item()

    (mall_mean, mall_texture), (street_mean, street_texture) = border(mall), border(street)
    assert mall_mean > street_mean + 50  # bright indoor walls vs darker outdoor scenes
    assert street_texture > mall_texture + 5  # plain walls vs blocks, stripes and greenery


def _border(data):
    x = data.images.float()
    return torch.cat([x[..., :2], x[..., -2:]], -1)


def test_campus_background_differs_from_the_mall_but_is_not_dark(mall, street, campus):
    m, c, s = _border(mall), _border(campus), _border(street)
    # Daylight outdoors: darker than the lit mall, clearly brighter than the street.
    assert m.mean() > c.mean() + 30 and c.mean() > s.mean() + 25
    # Moderately textured (walls with windows, lawns, paving, shadows): more than the mall's
    # plain walls, not more than the cluttered street.
    m_tex, c_tex, s_tex = (b.std(dim=(2, 3)).mean() for b in (m, c, s))
    assert c_tex > m_tex + 4 and c_tex < s_tex + 3

    # Cooler colour: blue relative to red is higher than in the warm mall and the street.
    def blue_red(b):
        rgb = b.mean((0, 2, 3))
        return (rgb[2] / rgb[0]).item()

    assert blue_red(c) > blue_red(m) + 0.04 and blue_red(c) > blue_red(s) + 0.15

    # Per-camera exposure varies more than in the mall.
    def camera_spread(data):
        means = _border(data).mean((1, 2, 3))
        per_cam = torch.stack([means[data.cameras == k].mean() for k in range(int(data.cameras.max()) + 1)])
        return (per_cam.std() / per_cam.mean()).item()

    assert camera_spread(campus) > camera_spread(mall)


def _torso_colour(data):
    return data.images[:, :, 24:31, 13:19].float().mean((2, 3))


def _nearest_centroid(train_x, train_y, test_x, test_y, k):
    present = [c for c in range(k) if bool((train_y == c).any())]
    centroids = torch.stack([train_x[train_y == c].mean(0) for c in present])
    predicted = torch.tensor(present)[torch.cdist(test_x, centroids).argmin(1)]
    return (predicted == test_y).float().mean().item()


def test_torso_colour_tells_the_upper_colour(mall, street, campus):
    k = len(ATTRIBUTE_CLASSES["upper_colour"])
    for data, least in ((mall, 0.6), (street, 0.4), (campus, 0.5)):
        x, y = _torso_colour(data), data.attributes["upper_colour"]
        train = data.identities < 50  # fitted on some identities, tested on others
        majority = torch.bincount(y[~train], minlength=k).max().item() / int((~train).sum())
        accuracy = _nearest_centroid(x[train], y[train], x[~train], y[~train], k)
        assert accuracy > max(least, majority + 0.2), (data.name, accuracy, majority)
    # The classes mean the same colours in both domains: centroids from the mall still work
    # (worse: other light, smaller and off-centre figures) on the street.
    across = _nearest_centroid(
        _torso_colour(mall),
        mall.attributes["upper_colour"],
        _torso_colour(street),
        street.attributes["upper_colour"],
        k,
    )
    assert across > 0.3
    # The campus is nearer to the mall than the street is.
    to_campus = _nearest_centroid(
        _torso_colour(mall),
        mall.attributes["upper_colour"],
        _torso_colour(campus),
        campus.attributes["upper_colour"],
        k,
    )
    assert to_campus > max(0.4, across)


def _ridge_balanced_accuracy(data, name, train):
    x = F.avg_pool2d(data.images.float() / 255, 4).flatten(1)
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-3
    x = torch.cat([(x - mu) / sd, torch.ones(len(x), 1)], 1)
    y = data.attributes[name]
    target = torch.where(y == 1, 1.0, -1.0)
    weight = torch.where(y[train] == 1, 0.5 / (y[train] == 1).float().mean(), 0.5 / (y[train] == 0).float().mean())
    xt = x[train] * weight[:, None]
    w = torch.linalg.solve(xt.T @ x[train] + 30.0 * torch.eye(x.shape[1]), xt.T @ target[train])
    predicted = (x[~train] @ w > 0).long()
    truth = y[~train]
    return 0.5 * ((predicted[truth == 1] == 1).float().mean() + (predicted[truth == 0] == 0).float().mean()).item()


def test_attributes_are_learnable_from_pixels(mall, street, campus):
    # A linear model on 16x8 pixels, fitted on 70 identities, tested on the other 30: far above
    # chance (balanced accuracy 0.5) for the length of the lower garment in every domain.
    for data, least in ((mall, 0.7), (street, 0.6), (campus, 0.65)):
        train = data.identities < 70
        accuracy = _ridge_balanced_accuracy(data, "lower_length", train)
        assert accuracy > least, (data.name, accuracy)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"num_identities": 0}, ValueError, "synthetic_pedestrians: num_identities must be an integer >= 1, got 0"),
        ({"num_identities": 2.0}, TypeError, "num_identities must be an integer >= 1, got float 2.0"),
        ({"num_identities": True}, TypeError, "num_identities must be an integer >= 1, got bool True"),
        ({"images_per_identity": -1}, ValueError, "images_per_identity must be an integer >= 1, got -1"),
        ({"images_per_identity": "3"}, TypeError, "images_per_identity must be an integer >= 1, got str '3'"),
        ({"height": 31}, ValueError, "height must be an integer >= 32, got 31"),
        ({"width": 15}, ValueError, "width must be an integer >= 16, got 15"),
        ({"width": 16.5}, TypeError, "width must be an integer >= 16, got float 16.5"),
        ({"height": False}, TypeError, "height must be an integer >= 32, got bool False"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
        ({"seed": 1.5}, TypeError, "seed must be an integer >= 0, got float 1.5"),
        ({"seed": None}, TypeError, "seed must be an integer >= 0, got NoneType None"),
        (
            {"domain": "beach"},
            ValueError,
            "synthetic_pedestrians: domain must be one of 'mall' \\(0\\) or 'street' \\(1\\) or 'campus' \\(2\\), "
            "got 'beach'",
        ),
        ({"domain": 3}, ValueError, "domain must be one of .*, got 3"),
        ({"domain": 1.0}, TypeError, "domain must be a name or number.*, got float 1.0"),
        ({"domain": True}, TypeError, "domain must be a name or number.*, got bool True"),
    ],
)
def test_argument_errors(kwargs, error, match):
    args = {"num_identities": 2, "images_per_identity": 1, **kwargs}
    with pytest.raises(error, match=match):
        synthetic_pedestrians(args.pop("num_identities"), args.pop("images_per_identity"), **args)


def test_integer_scalars_are_accepted():
    data = synthetic_pedestrians(torch.tensor(2), 1, seed=torch.tensor(4), domain=torch.tensor(1))
    assert data.images.shape == (2, 3, 64, 32) and data.name == "synthetic-street"
