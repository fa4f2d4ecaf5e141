"""Key estimation for block-shuffle-protected models (featperm.attacks.key_estimation) and the
ResNetCifar helpers it uses (features_at, forward_from, width)."""

import pytest
import torch
from torch import nn

import featperm
from featperm.attacks.key_estimation import (
    KeyEstimationConfig,
    estimate_key,
    estimate_key_literal,
    positions_recovered,
    random_block_key,
    random_key_search,
    shuffle_many,
)
from featperm.models import resnet18_cifar
from featperm.ops import block_shuffle

torch.set_num_threads(1)

POSITIONS = ("conv1", "layer1", "layer2", "layer3", "layer4")


# -- ResNetCifar helpers ------------------------------------------------------------------------


def test_width_default_is_unchanged():
    model = resnet18_cifar()
    assert sum(p.numel() for p in model.parameters()) == 11173962
    small = resnet18_cifar(num_classes=5, in_channels=1, width=8)
    assert small.conv1.out_channels == 8 and small.layer4[0].conv1.out_channels == 64
    assert small.fc.in_features == 64 and small.fc.out_features == 5
    assert list(small.state_dict()) == list(resnet18_cifar(num_classes=5, in_channels=1).state_dict())
    with pytest.raises(ValueError, match=r"ResNetCifar: width"):
        resnet18_cifar(width=0)
    with pytest.raises(TypeError, match=r"ResNetCifar: width"):
        resnet18_cifar(width=8.0)


@pytest.mark.parametrize("at", POSITIONS)
def test_features_at_and_forward_from_compose_to_forward(at):
    torch.manual_seed(0)
    model = resnet18_cifar(width=4).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        feats = model.features_at(x, at)
        assert torch.equal(model.forward_from(at, feats), model(x))
        channels = feats.shape[1]
        key = featperm.BlockKey.generate(channels=channels, block_size=2)
        expected = model.forward_from(at, block_shuffle(feats, key))
        featperm.protect(model, at=at, key=key)
        assert torch.equal(model(x), expected)
        assert torch.equal(model.features_at(x, at), feats)  # the shuffle at `at` is skipped
    if at == "conv1":
        assert torch.equal(feats, model.conv1.forward(x))  # the raw convolution, before bn1/relu


def test_features_at_errors():
    model = resnet18_cifar(width=4).eval()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"ResNetCifar.features_at: at must be one of"):
        model.features_at(x, "fc")
    with pytest.raises(TypeError, match=r"ResNetCifar.forward_from: at must be a str"):
        model.forward_from(1, x)
    with pytest.raises(TypeError, match=r"ResNetCifar.forward_from: activations"):
        model.forward_from("conv1", [1.0])


# -- the gather ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,m", [((3, 4, 8, 6), 2), ((2, 3, 6, 9), 3), ((1, 2, 4, 4), 1)])
def test_shuffle_many_matches_block_shuffle(shape, m):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g)
    p = shape[1] * m * m
    keys = torch.stack([torch.randperm(p, generator=g) for _ in range(5)])
    y = shuffle_many(x, keys, m)
    n = shape[0]
    for s in range(5):
        assert torch.equal(y[s * n : (s + 1) * n], block_shuffle(x, keys[s], m))


# -- a tiny protected model ---------------------------------------------------------------------


def tiny_setup(seed=0, n=48, dtype=torch.float64):
    """Activations (n, 4, 8, 8) below a block shuffle (C*M*M = 16 positions) and a small
    untrained conv net above it, with labels = its own predictions under a true key (so the key
    matters)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).to(dtype).eval()
    acts = torch.randn(n, 4, 8, 8, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    true = random_block_key(channels=4, block_size=2, seed=seed + 100)
    with torch.no_grad():
        net[-1].bias -= net(block_shuffle(acts, true)).mean(0)  # spread the predictions
        labels = net(block_shuffle(acts, true)).argmax(1)
    return acts, labels, net, true


def same_result(a, b):
    assert a.key == b.key
    assert (a.correct, a.accepted, a.evaluated) == (b.correct, b.accepted, b.evaluated)
    strip = lambda h: [(e["round"], e["correct"], e["accepted"], e["evaluated"]) for e in h]
    assert strip(a.history) == strip(b.history)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_key_equals_the_literal_loop(seed):
    acts, labels, above, _ = tiny_setup(seed)
    initial = random_block_key(channels=4, block_size=2, seed=seed)
    literal = estimate_key_literal(acts, labels, above, initial, rounds=2)
    assert literal.evaluated == 2 * 16 * 15 // 2 and literal.forward_images == literal.evaluated * 48
    assert literal.accepted >= 1 and literal.correct > 0
    cases = [(1, True, False), (1, False, False), (3, True, True), (3, True, False), (64, True, True),
             (64, False, True), (64, True, False)]
    for per_batch, early, adaptive in cases:
        config = KeyEstimationConfig(
            rounds=2, candidates_per_batch=per_batch, early_rejection=early, adaptive=adaptive,
            image_chunk=8, image_batch=100,
        )
        same_result(estimate_key(acts, labels, above, initial, config), literal)


def test_early_rejection_saves_images_and_resume_and_limit():
    acts, labels, above, true = tiny_setup(3)
    # start near the true key: almost every swap is rejected
    v = true.permutation()
    v[[0, 5]] = v[[5, 0]]
    near = featperm.BlockKey(v, channels=4, block_size=2)
    acc0 = int((above(block_shuffle(acts, near)).argmax(1) == labels).sum())
    literal = estimate_key_literal(acts, labels, above, near, rounds=1, initial_correct=acc0, max_candidates=70)
    assert literal.evaluated == 70 and literal.history[-1]["evaluated"] == 70
    config = KeyEstimationConfig(rounds=1, candidates_per_batch=16, image_chunk=4, max_candidates=70)
    batched = estimate_key(acts, labels, above, near, config, initial_correct=acc0)
    same_result(batched, literal)
    assert batched.forward_images < literal.forward_images


def test_estimate_key_random_initial_and_progress():
    acts, labels, above, _ = tiny_setup(4)
    seen = []
    config = KeyEstimationConfig(rounds=2, seed=9)
    result = estimate_key(acts, labels, above, None, config, block_size=2, progress=seen.append)
    initial = random_block_key(channels=4, block_size=2, seed=9)
    same_result(result, estimate_key_literal(acts, labels, above, initial, rounds=2))
    assert [e["round"] for e in seen] == [1, 2] and seen[-1]["correct"] == result.correct


def test_float32_batched_equals_literal():
    # float32 kernels may round differently for different batch sizes; on this model they agree
    acts, labels, above, _ = tiny_setup(5, dtype=torch.float32)
    initial = random_block_key(channels=4, block_size=2, seed=5)
    literal = estimate_key_literal(acts, labels, above, initial, rounds=1)
    same_result(estimate_key(acts, labels, above, initial, KeyEstimationConfig(rounds=1, image_chunk=8)), literal)


def test_random_key_search_equals_sequential_best():
    acts, labels, above, _ = tiny_setup(6)
    key, correct = random_key_search(acts, labels, above, channels=4, block_size=2, keys=20, seed=3, batch=7)
    g = torch.Generator().manual_seed(3)
    best, best_count = None, -1
    for _ in range(20):
        v = torch.randperm(16, generator=g)
        count = int((above(block_shuffle(acts, v, 2)).argmax(1) == labels).sum())
        if count > best_count:
            best, best_count = v, count
    assert correct == best_count and torch.equal(key.permutation(), best)


def test_positions_recovered():
    a = featperm.BlockKey(list(range(8)), channels=2, block_size=2)
    b = featperm.BlockKey([1, 0] + list(range(2, 8)), channels=2, block_size=2)
    assert positions_recovered(a, a) == 1.0 and positions_recovered(a, b) == 0.75
    with pytest.raises(ValueError, match=r"positions_recovered"):
        positions_recovered(a, featperm.BlockKey(list(range(4)), channels=1, block_size=2))
    with pytest.raises(TypeError, match=r"positions_recovered: true"):
        positions_recovered(a, list(range(8)))


# -- a model trained with the key ---------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm], y[perm]


def train_protected(digits, width, key, steps=250):
    x, y = digits
    torch.manual_seed(0)
    model = resnet18_cifar(num_classes=10, in_channels=1, width=width)
    featperm.protect(model, at="conv1", key=key)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, 1400, (64,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    featperm.unprotect(model)
    return model.eval()


def accuracy(above, acts, labels, key):
    with torch.no_grad():
        return (above(block_shuffle(acts, key)).argmax(1) == labels).float().mean().item()


def test_estimated_key_restores_a_trained_models_accuracy(digits):
    x, y = digits
    true = random_block_key(channels=4, block_size=2, seed=123)
    model = train_protected(digits, 4, true)
    above = lambda a: model.forward_from("conv1", a)
    with torch.no_grad():
        attack = model.features_at(x[1400:1600], "conv1")
        test = model.features_at(x[1600:], "conv1")
    initial = random_block_key(channels=4, block_size=2, seed=7)
    result = estimate_key(attack, y[1400:1600], above, initial, KeyEstimationConfig(rounds=2))
    true_acc, initial_acc = accuracy(above, test, y[1600:], true), accuracy(above, test, y[1600:], initial)
    estimated_acc = accuracy(above, test, y[1600:], result.key)
    assert true_acc > 0.8 and initial_acc < 0.5
    assert estimated_acc > initial_acc + 0.3 and estimated_acc > true_acc - 0.25
    baseline, _ = random_key_search(attack, y[1400:1600], above, channels=4, block_size=2, keys=20, seed=0)
    assert accuracy(above, test, y[1600:], baseline) <= estimated_acc + 0.05


def test_tiny_key_recovered_to_equivalent_accuracy(digits):
    x, y = digits
    true = random_block_key(channels=2, block_size=2, seed=5)  # 8 positions
    model = train_protected(digits, 2, true)
    above = lambda a: model.forward_from("conv1", a)
    with torch.no_grad():
        attack = model.features_at(x[1400:1600], "conv1")
    labels = y[1400:1600]
    result = estimate_key(attack, labels, above, random_block_key(channels=2, block_size=2, seed=1),
                          KeyEstimationConfig(rounds=3))
    true_correct = int(accuracy(above, attack, labels, true) * 200 + 0.5)
    assert positions_recovered(result.key, true) == 1.0 or result.correct >= true_correct


# -- argument errors ----------------------------------------------------------------------------


def test_argument_errors():
    acts, labels, above, true = tiny_setup(0, n=4)
    cfg = KeyEstimationConfig(rounds=1)
    with pytest.raises(TypeError, match=r"estimate_key: activations must be a torch.Tensor"):
        estimate_key(acts.tolist(), labels, above, true, cfg)
    with pytest.raises(ValueError, match=r"estimate_key: activations must have shape \(N, C, H, W\)"):
        estimate_key(acts[0], labels, above, true, cfg)
    with pytest.raises(TypeError, match=r"estimate_key: labels must be an integer tensor"):
        estimate_key(acts, labels.float(), above, true, cfg)
    with pytest.raises(ValueError, match=r"estimate_key: labels must have shape"):
        estimate_key(acts, labels[:2], above, true, cfg)
    with pytest.raises(TypeError, match=r"estimate_key: above must be callable"):
        estimate_key(acts, labels, "model", true, cfg)
    with pytest.raises(TypeError, match=r"estimate_key: initial must be a featperm.BlockKey"):
        estimate_key(acts, labels, above, list(range(16)), cfg)
    with pytest.raises(ValueError, match=r"estimate_key: initial is for channels=2"):
        estimate_key(acts, labels, above, random_block_key(channels=2, block_size=2, seed=0), cfg)
    with pytest.raises(ValueError, match=r"estimate_key: initial's block_size 3 must divide"):
        estimate_key(acts, labels, above, random_block_key(channels=4, block_size=3, seed=0), cfg)
    with pytest.raises(TypeError, match=r"estimate_key: config must be a KeyEstimationConfig"):
        estimate_key(acts, labels, above, true, {"rounds": 1})
    with pytest.raises(ValueError, match=r"estimate_key: config.candidates_per_batch must be >= 1"):
        estimate_key(acts, labels, above, true, KeyEstimationConfig(candidates_per_batch=0))
    with pytest.raises(TypeError, match=r"estimate_key: config.rounds must be an integer"):
        estimate_key(acts, labels, above, true, KeyEstimationConfig(rounds=1.5))
    with pytest.raises(TypeError, match=r"estimate_key: block_size is required"):
        estimate_key(acts, labels, above, None, cfg)
    with pytest.raises(ValueError, match=r"estimate_key: initial_correct must be <= 4"):
        estimate_key(acts, labels, above, true, cfg, initial_correct=5)
    with pytest.raises(ValueError, match=r"estimate_key: above must return logits"):
        estimate_key(acts, labels, lambda a: a.sum((1, 2, 3)), true, cfg)
    with pytest.raises(ValueError, match=r"estimate_key_literal: rounds must be >= 0"):
        estimate_key_literal(acts, labels, above, true, rounds=-1)
    with pytest.raises(ValueError, match=r"estimate_key_literal: above belongs to a module in training mode"):
        estimate_key_literal(acts, labels, above.train(), true, rounds=1)
    above.eval()
    model = resnet18_cifar(num_classes=4, in_channels=1, width=4).double()  # training mode
    with pytest.raises(ValueError, match=r"estimate_key: above belongs to a module in training mode"):
        estimate_key(acts, labels, model.forward_from, true, cfg)
    with pytest.raises(ValueError, match=r"random_key_search: the key .* is for channels=3"):
        random_key_search(acts, labels, above, channels=3, block_size=2, keys=2)
    with pytest.raises(ValueError, match=r"random_key_search: keys must be >= 1"):
        random_key_search(acts, labels, above, channels=4, block_size=2, keys=0)
    with pytest.raises(TypeError, match=r"random_key_search: seed must be an integer"):
        random_key_search(acts, labels, above, channels=4, block_size=2, keys=1, seed="1")
