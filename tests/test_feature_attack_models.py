"""Attribute inference and reconstruction, on data where the answer is known."""

import pytest
import torch
from torch.nn import functional as F

from featperm.attacks.attribute_inference import (
    AttributeHeads,
    AttributeInferenceConfig,
    _class_weights,
    _weighted_cross_entropy,
    balanced_accuracy,
    chance_level,
    evaluate_attribute_heads,
    identity_split,
    train_attribute_heads,
)
from featperm.attacks.interception import feature_range, read_as_features, sealed_ciphertext_words
from featperm.attacks.reconstruction import (
    Generator,
    ReconstructionConfig,
    cosine_distance,
    random_pair_cosine_distance,
    reconstruct,
    train_reconstruction,
    upsampling_blocks,
)
from featperm.crypto import seal


def _encoded_attributes(n=600, d=32, seed=0):
    """Features in which a binary and a 4-class attribute are linearly encoded, plus an
    attribute that the features do not encode at all."""
    g = torch.Generator().manual_seed(seed)
    binary = (torch.rand(n, generator=g) < 0.2).long()  # imbalanced, as real annotations
    four = torch.randint(0, 4, (n,), generator=g)
    noise_attr = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g)
    x[:, 0] += 3.0 * binary
    x[:, 1:5] += 3.0 * F.one_hot(four, 4).float()
    labels = {"binary": binary, "four": four, "unencoded": noise_attr}
    identities = torch.arange(n) // 4
    return x.relu(), labels, {"binary": 2, "four": 4, "unencoded": 2}, identities


def test_balanced_accuracy_table():
    labels = torch.tensor([0, 0, 0, 1, -1])
    assert balanced_accuracy(torch.tensor([0, 0, 0, 0, 1]), labels, 2) == pytest.approx(0.5)  # majority vote: chance
    assert balanced_accuracy(torch.tensor([0, 0, 1, 1, 0]), labels, 2) == pytest.approx((2 / 3 + 1) / 2)
    assert balanced_accuracy(torch.tensor([0, 0, 0, 1, 0]), labels, 2) == pytest.approx(1.0)  # -1 ignored
    assert balanced_accuracy(torch.tensor([1]), torch.tensor([-1]), 2) != balanced_accuracy(
        torch.tensor([1]), torch.tensor([-1]), 2
    )  # NaN when nothing is annotated
    assert chance_level(4) == 0.25


def test_class_weights_are_inverse_counts():
    w = _class_weights(torch.tensor([0, 0, 0, 1, -1]), 3)
    assert w.tolist() == pytest.approx([4 / (3 * 3), 4 / (3 * 1), 0.0])


def test_heads_train_together_and_equal_separate_heads():
    """One batched pass computes exactly what one BatchNorm1d + Linear per attribute computes."""
    torch.manual_seed(0)
    heads = AttributeHeads(8, {"a": 2, "b": 5}).train()
    with torch.no_grad():
        heads.scale.uniform_(0.5, 2)
        heads.shift.normal_()
    x = torch.randn(16, 8)
    out = heads(x)
    for i, (name, classes) in enumerate([("a", 2), ("b", 5)]):
        bn = torch.nn.BatchNorm1d(8).train()
        with torch.no_grad():
            bn.weight.copy_(heads.scale[i])
            bn.bias.copy_(heads.shift[i])
        expected = F.linear(bn(x), heads.weight[i, :classes], heads.bias[i, :classes])
        torch.testing.assert_close(out[name], expected)
    assert out["a"].shape == (16, 2) and out["b"].shape == (16, 5)


def test_weighted_loss_equals_torch_cross_entropy_per_head():
    torch.manual_seed(1)
    logits = torch.randn(10, 2, 3)
    logits[:, 0, 2] = float("-inf")  # head 0 has 2 classes
    targets = torch.stack([torch.randint(0, 2, (10,)), torch.randint(0, 3, (10,))], 1)
    targets[3, 1] = -1
    weights = torch.tensor([[1.0, 3.0, 0.0], [0.5, 1.0, 2.0]])
    expected = F.cross_entropy(logits[:, 0, :2], targets[:, 0], weight=weights[0, :2]) + F.cross_entropy(
        logits[:, 1], targets[:, 1], weight=weights[1], ignore_index=-1
    )
    torch.testing.assert_close(_weighted_cross_entropy(logits, targets, weights), expected)


def test_identity_split_keeps_identities_apart():
    ids = torch.arange(100) // 5
    train, val = identity_split(100, 0.2, 0, ids)
    assert set(ids[train].tolist()).isdisjoint(ids[val].tolist())
    assert len(set(ids[val].tolist())) == 4 and train.numel() + val.numel() == 100


def test_attribute_inference_learns_what_is_encoded_and_nothing_else():
    x, labels, classes, ids = _encoded_attributes()
    test_x, test_labels, _, _ = _encoded_attributes(seed=1)
    result = train_attribute_heads(x, labels, classes, AttributeInferenceConfig(epochs=30, lr=5e-3), identities=ids)
    scores = evaluate_attribute_heads(result.heads, test_x, test_labels)
    assert scores["binary"] > 0.8 and scores["four"] > 0.8  # Bayes-optimal: about 0.93 and 0.9
    assert abs(scores["unencoded"] - 0.5) < 0.1  # no signal: chance, whatever the heads do
    assert 1 <= result.best_epoch <= 30 and len(result.history) == 30


def test_attribute_inference_is_deterministic_for_a_seed():
    x, labels, classes, ids = _encoded_attributes(n=200)
    cfg = AttributeInferenceConfig(epochs=3, lr=1e-3, seed=5)
    a = train_attribute_heads(x, labels, classes, cfg, identities=ids).heads.state_dict()
    b = train_attribute_heads(x, labels, classes, cfg, identities=ids).heads.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k])


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(features=torch.zeros(4, 3, dtype=torch.int32)), ValueError),
        (dict(features=[[0.0]]), TypeError),
        (dict(labels={"a": torch.zeros(3, dtype=torch.int64)}), ValueError),
        (dict(labels={"a": torch.zeros(4)}), ValueError),
        (dict(labels={}), TypeError),
        (dict(num_classes={}), ValueError),
    ],
)
def test_attribute_inference_argument_errors(kwargs, error):
    args = dict(features=torch.zeros(4, 3), labels={"a": torch.zeros(4, dtype=torch.int64)}, num_classes={"a": 2})
    args.update(kwargs)
    with pytest.raises(error, match="train_attribute_heads"):
        train_attribute_heads(args["features"], args["labels"], args["num_classes"], AttributeInferenceConfig(epochs=1))


@pytest.mark.parametrize("field, value, error", [("epochs", 0, ValueError), ("epochs", 1.5, TypeError),
                                                 ("validation_fraction", 1.0, ValueError), ("lr", 0.0, ValueError)])
def test_attribute_config_rules(field, value, error):
    with pytest.raises(error, match="AttributeInferenceConfig"):
        AttributeInferenceConfig(**{field: value})


def test_generator_shapes_scale_with_image_size():
    assert upsampling_blocks(384, 128) == 5 and upsampling_blocks(64, 32) == 5 and upsampling_blocks(24, 8) == 3
    g = Generator(16, 384, 128)
    assert g.start == (16 * 32, 12, 4)  # the authors' smallest map is 12x4
    assert [m.main[3].out_channels for m in g.ups] == [256, 128, 64, 32, 16]  # their filters 256..16
    out = Generator(16, 32, 16, base_filters=4)(torch.randn(3, 16))
    assert out.shape == (3, 3, 32, 16) and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="Generator"):
        Generator(16, 30, 16, blocks=2)


def test_reconstruction_learns_the_mapping():
    """Images that are a function of the features: the generator trained on pairs beats the
    random-pairs distance by a wide margin on new pairs (the metric's features: the inputs)."""
    torch.manual_seed(0)
    colours = torch.rand(400, 3)
    images = colours.view(400, 3, 1, 1).expand(400, 3, 16, 8).contiguous()
    features = torch.cat([colours, torch.rand(400, 5) * 0.1], 1)
    cfg = ReconstructionConfig.autoencoder(epochs=25, batch_size=32, base_filters=4, lr_generator=3e-3)
    result = train_reconstruction(features[:300], images[:300], cfg)
    recon = reconstruct(result.generator, features[300:])
    error = F.mse_loss(recon, images[300:])
    baseline = F.mse_loss(images[300:], images[300:].mean(0, keepdim=True).expand_as(images[300:]))
    assert error < 0.3 * baseline
    mean_colour = recon.mean(dim=(2, 3))
    assert cosine_distance(mean_colour, colours[300:]).mean() < 0.5 * random_pair_cosine_distance(colours[300:])


def test_gan_setting_runs_all_losses():
    torch.manual_seed(0)
    perceptual_net = torch.nn.Conv2d(3, 4, 3, padding=1)
    from featperm.attacks.reconstruction import PerceptualNetwork

    cfg = ReconstructionConfig(epochs=1, batch_size=8, base_filters=2)
    result = train_reconstruction(torch.randn(16, 6), torch.rand(16, 3, 8, 8), cfg,
                                  perceptual=PerceptualNetwork(perceptual_net, "conv"))
    assert set(result.losses[0]) == {"pixel", "perceptual", "adversarial", "discriminator"}
    with pytest.raises(ValueError, match="perceptual"):
        train_reconstruction(torch.randn(16, 6), torch.rand(16, 3, 8, 8), cfg)


def test_cosine_distance_and_chance():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert cosine_distance(a, a).tolist() == pytest.approx([0.0, 0.0])
    assert cosine_distance(a, a.flip(0)).tolist() == pytest.approx([1.0, 1.0])
    assert random_pair_cosine_distance(a, seed=0) == pytest.approx(1.0)  # every pair is two different rows


def test_naive_reading_of_ciphertext_is_finite_and_bounded():
    plain = torch.rand(50, 8)
    words = torch.tensor([[0x7FC00000, 0x7F800000, 0x7F7FFFFF, 0x00000001, 0xFF800000 - (1 << 32), 0, 1, 2]],
                         dtype=torch.int64).to(torch.int32)
    limits = feature_range(plain)
    out = read_as_features(words, limits)
    assert torch.isfinite(out).all()
    assert (out >= limits[0]).all() and (out <= limits[1]).all()
    with pytest.raises(ValueError, match="read_as_features"):
        read_as_features(torch.zeros(2, 8, dtype=torch.int16), limits)


def test_sealed_words_are_the_ciphertext_body():
    x = torch.randn(3, 5)
    key, nonce = bytes(range(32)), bytes(12)
    sealed = seal(x, key, nonce)
    words = sealed_ciphertext_words(sealed, torch.float32, (3, 5))
    assert words.shape == (3, 5) and words.dtype == torch.int32
    # ChaCha20 is a stream cipher: the body XOR the plaintext is the keystream, the same for any plaintext
    other = sealed_ciphertext_words(seal(torch.zeros(3, 5), key, nonce), torch.float32, (3, 5))
    assert torch.equal(words ^ x.view(torch.int32), other)
    with pytest.raises(ValueError, match="sealed_ciphertext_words"):
        sealed_ciphertext_words(sealed, torch.float32, (3, 4))


def test_no_validation_split_keeps_the_last_epoch():
    x, labels, classes, _ = _encoded_attributes(n=64)
    result = train_attribute_heads(x, labels, classes, AttributeInferenceConfig(epochs=3, validation_fraction=0.0))
    assert result.best_epoch == 3 and result.validation == {} and result.history == []


def test_bootstrap_interval_brackets_the_estimate():
    from featperm.attacks.attribute_inference import bootstrap_interval, predict_attributes, mean_score

    x, labels, classes, ids = _encoded_attributes(n=400)
    result = train_attribute_heads(x, labels, classes, AttributeInferenceConfig(epochs=10, lr=5e-3), identities=ids)
    predicted = predict_attributes(result.heads, x)
    point = mean_score({k: balanced_accuracy(predicted[k], labels[k], classes[k]) for k in labels})
    low, high = bootstrap_interval(predicted, labels, classes, ids, seed=1)
    assert low < point < high and high - low < 0.2
    assert bootstrap_interval(predicted, labels, classes, ids, seed=1) == (low, high)  # seeded


@pytest.mark.parametrize("call, error", [
    (lambda: chance_level(0), ValueError),
    (lambda: chance_level(2.0), TypeError),
    (lambda: balanced_accuracy(torch.tensor([0, 1]), torch.tensor([0, 2]), 2), ValueError),
    (lambda: balanced_accuracy(torch.tensor([0]), torch.tensor([0, 1]), 2), ValueError),
    (lambda: AttributeInferenceConfig(lr="0.1"), TypeError),
    (lambda: AttributeInferenceConfig(lr_drop_factor=0), ValueError),
])
def test_scoring_argument_rules(call, error):
    with pytest.raises(error):
        call()
