"""featperm.nn modules, model protection and key handling; featperm.models."""

import copy
import io
import pickle

import pytest
import torch
from torch.nn import functional as F

import featperm
from featperm.models import resnet18_cifar
from featperm.nn import BlockShuffle, KeyNotLoadedError, ShuffleBits

CHANNELS = {"conv1": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}


def manual_forward(model, x, at, key):
    """ResNetCifar.forward with the block shuffle written in by hand after submodule `at`."""
    def maybe(name, t):
        return featperm.block_shuffle(t, key) if name == at else t
    out = F.relu(model.bn1(maybe("conv1", model.conv1(x))))
    for name in ("layer1", "layer2", "layer3", "layer4"):
        out = maybe(name, getattr(model, name)(out))
    return model.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))  # small: fast on CPU


def fresh_model():
    torch.manual_seed(0)
    return resnet18_cifar(num_classes=10).eval()


def test_resnet18_cifar_shapes(images):
    model = fresh_model()
    assert model(images).shape == (2, 10)
    assert model.layer1(F.relu(model.bn1(model.conv1(images)))).shape == (2, 64, 16, 16)
    assert sum(p.numel() for p in model.parameters()) == 11173962  # the CIFAR ResNet-18 of the literature


@pytest.mark.parametrize("at", list(CHANNELS))
def test_protect_inserts_the_shuffle_after_the_named_submodule(images, at):
    model = fresh_model()
    key = featperm.BlockKey.generate(channels=CHANNELS[at], block_size=2)
    with torch.no_grad():
        plain = model(images)
        expected = manual_forward(model, images, at, key)
        protected = featperm.protect(model, at=at, key=key)
        assert protected is model
        out = protected(images)
    assert torch.equal(out, expected)
    assert not torch.equal(out, plain)


def test_protect_dotted_name_and_errors(images):
    model = fresh_model()
    key = featperm.BlockKey.generate(channels=64, block_size=4)
    featperm.protect(model, at="layer1.0", key=key)
    with torch.no_grad():
        out = model(images)
        h = F.relu(model.bn1(model.conv1(images)))
        h = model.layer1[1](featperm.block_shuffle(model.layer1[0].forward(h), key))  # forward(): no hook
        expected = model.fc(F.adaptive_avg_pool2d(model.layer4(model.layer3(model.layer2(h))), 1).flatten(1))
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="already protected at 'layer1.0'"):
        featperm.protect(model, at="layer1.0", key=key)
    with pytest.raises(ValueError, match="no submodule 'layer9'"):
        featperm.protect(fresh_model(), at="layer9", key=key)
    with pytest.raises(TypeError, match="key must be a featperm.BlockKey"):
        featperm.protect(fresh_model(), at="layer1", key=torch.arange(256))


def test_set_key_wrong_key_no_transform_and_unprotect(images):
    model = fresh_model()
    with torch.no_grad():
        plain = model(images)
    key = featperm.BlockKey.generate(channels=128, block_size=2)
    featperm.protect(model, at="layer2", key=key)
    with torch.no_grad():
        right = model(images)
        featperm.set_key(model, featperm.BlockKey.generate(channels=128, block_size=2))
        wrong = model(images)
        featperm.set_key(model, None)
        none = model(images)
        featperm.set_key(model, key)
        assert torch.equal(model(images), right)
        featperm.unprotect(model)
        unprotected = model(images)
    assert not torch.equal(wrong, right)
    assert torch.equal(none, plain) and torch.equal(unprotected, plain)
    assert not any(isinstance(m, BlockShuffle) for m in model.modules())
    with pytest.raises(ValueError, match="no featperm module"):
        featperm.set_key(model, key)


def test_key_is_in_neither_state_dict_nor_pickle(images):
    model = fresh_model()
    plain_keys = list(model.state_dict())
    key = featperm.BlockKey.generate(channels=64, block_size=2)
    featperm.protect(model, at="layer1", key=key)
    assert list(model.state_dict()) == plain_keys
    secret = key.permutation().numpy().tobytes()

    # The detector works: a pickled key does hold its bytes.
    assert secret in pickle.dumps(key)
    whole, weights = io.BytesIO(), io.BytesIO()
    torch.save(model, whole)
    torch.save(model.state_dict(), weights)
    for blob in (whole.getvalue(), weights.getvalue(), pickle.dumps(model)):
        assert secret not in blob
        assert key.permutation().to(torch.int32).numpy().tobytes() not in blob

    with torch.no_grad():
        expected = model(images)
    whole.seek(0)
    loaded = torch.load(whole, weights_only=False)
    with pytest.raises(KeyNotLoadedError, match="keys are not saved with a model.*featperm.set_key"):
        loaded(images)
    assert "key=<not loaded>" in repr(loaded)
    featperm.set_key(loaded, key)
    with torch.no_grad():
        assert torch.equal(loaded(images), expected)

    # A state dict loads into a freshly protected model as into a plain one.
    other = featperm.protect(resnet18_cifar(), at="layer1", key=key).eval()
    weights.seek(0)
    other.load_state_dict(torch.load(weights))
    with torch.no_grad():
        assert torch.equal(other(images), expected)


def test_several_positions_with_their_own_keys(images):
    model = fresh_model()
    key1 = featperm.BlockKey.generate(channels=64, block_size=2)
    key3 = featperm.BlockKey.generate(channels=256, block_size=2)
    with torch.no_grad():
        expected_first = manual_forward(model, images, "layer1", key1)  # before the hooks exist
    featperm.protect(featperm.protect(model, at="layer1", key=key1), at="layer3", key=key3)
    with torch.no_grad():
        both = model(images)
        featperm.set_key(model, None, at="layer3")
        assert torch.equal(model(images), expected_first)
        assert not torch.equal(both, expected_first)
        featperm.set_key(model, key3, at="layer3")
        assert torch.equal(model(images), both)
    with pytest.raises(ValueError, match="not protected at 'layer2'"):
        featperm.set_key(model, key3, at="layer2")


def test_deepcopy_keeps_the_key(images):
    key = featperm.BlockKey.generate(channels=64, block_size=2)
    model = featperm.protect(fresh_model(), at="conv1", key=key)
    clone = copy.deepcopy(model)
    with torch.no_grad():
        assert torch.equal(clone(images), model(images))


def test_reprs_show_no_key_material():
    key = featperm.BlockKey.generate(channels=16, block_size=2)
    assert repr(BlockShuffle(key)) == "BlockShuffle(channels=16, block_size=2)"
    bit_key = featperm.BitKey.generate(32)
    assert repr(ShuffleBits(bit_key, as_integer=True)) == "ShuffleBits(bits=32, as_integer=True)"
    model = featperm.protect(fresh_model(), at="layer1", key=featperm.BlockKey.generate(channels=64, block_size=2))
    text = repr(model)
    assert "BlockShuffle(channels=64, block_size=2)" in text
    assert str(key.permutation().tolist()[:4])[1:-1] not in text


def test_shuffle_bits_module_encrypts_the_output(images):
    bit_key = featperm.BitKey.generate(32)
    extractor = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), ShuffleBits(bit_key))
    with torch.no_grad():
        features = extractor[:2](images)
        cipher = extractor(images)
    assert torch.equal(cipher.view(torch.int32), featperm.shuffle_bits(features, bit_key).view(torch.int32))
    assert torch.equal(featperm.unshuffle_bits(cipher, bit_key), features)
    as_int = ShuffleBits(bit_key, as_integer=True)
    assert as_int(features).dtype == torch.int32
    loaded = pickle.loads(pickle.dumps(extractor))
    with pytest.raises(KeyNotLoadedError):
        loaded(images)
    featperm.set_key(loaded, bit_key)
    with torch.no_grad():
        assert torch.equal(loaded(images).view(torch.int32), cipher.view(torch.int32))


def test_block_shuffle_module_trains(images):
    # Gradients flow through the protected position (the op is differentiable).
    key = featperm.BlockKey.generate(channels=64, block_size=2)
    model = featperm.protect(resnet18_cifar(), at="layer1", key=key).train()
    loss = F.cross_entropy(model(images), torch.tensor([1, 2]))
    loss.backward()
    assert model.conv1.weight.grad is not None and bool(model.conv1.weight.grad.abs().sum() > 0)


def test_shuffle_bits_module_emits_sealed_output(images):
    # The cascade as a layer: ShuffleBits, then ChaCha20-Poly1305 under fresh nonces.
    bit_key = featperm.BitKey.generate(32)
    sealer = featperm.crypto.Sealer()
    layer = ShuffleBits(bit_key, as_integer=True, sealer=sealer, aad=b"model-v1")
    features = images.flatten(1)
    first, second = layer(features), layer(features)
    assert isinstance(first, bytearray) and first != second  # a new nonce per call
    for sealed in (first, second):
        opened = featperm.crypto.open_shuffled(sealed, bit_key, sealer.key(), aad=b"model-v1")
        assert torch.equal(opened.view(torch.int32), features.view(torch.int32))
    with pytest.raises(featperm.crypto.AuthenticationError):
        featperm.crypto.open_shuffled(first, bit_key, sealer.key(), aad=b"model-v2")
    assert "sealed" in repr(layer) and sealer.key().hex() not in repr(layer)
    # Neither the bit key nor the AEAD key travels with the module.
    blob = pickle.dumps(layer)
    assert sealer.key() not in blob
    loaded = pickle.loads(blob)
    loaded.set_key(bit_key)
    with pytest.raises(KeyNotLoadedError, match="no sealer"):
        loaded(features)
    loaded.set_sealer(sealer)
    assert isinstance(loaded(features), bytearray)
    with pytest.raises(TypeError, match="Sealer"):
        layer.set_sealer(b"\x00" * 32)
