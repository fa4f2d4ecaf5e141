"""The bugs a fuzzer found by calling the public API as a hostile caller would: one test each.

Every test here failed on the code before the fix (issue 9) and passes after it.
"""

import os
import re
import struct
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import torch

import featperm
from featperm import crypto, keys
from featperm.errors import KeyExportError, NonceReuseError
from featperm.transforms import FFX, FFXKey, NegativePositive, NPKey

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- nonce reuse in Sealer ---------------------------------------------------------------------

def _nonce_of(sealed, ndim):
    start = 8 + 8 * ndim
    return bytes(sealed[start:start + 12])


def test_sealer_never_reuses_an_explicit_nonce_for_an_automatic_one():
    s = crypto.Sealer(sender_id=b"ABCD")
    x, y, z = torch.randn(8), torch.randn(8), torch.randn(8)
    a = s.seal(x, nonce=b"ABCD" + (1).to_bytes(8, "little"))  # counter 1, given explicitly
    s.seal(y)          # counter 0
    b = s.seal(z)      # must not take counter 1 again
    nonces = {_nonce_of(a, 1), _nonce_of(b, 1)}
    assert len(nonces) == 2
    # and the reverse order: an explicit nonce the sequence has already issued is refused
    with pytest.raises(NonceReuseError, match="already used"):
        s.seal(x, nonce=_nonce_of(b, 1))


def test_sealer_encrypt_never_reuses_a_nonce_in_any_mix():
    s = crypto.Sealer(sender_id=b"WXYZ")
    data = torch.zeros(16, dtype=torch.uint8)
    used = [s.encrypt(data, nonce=b"WXYZ" + (k).to_bytes(8, "little"))[0] for k in (0, 2, 3)]
    used += [s.encrypt(data)[0] for _ in range(5)]
    used.append(s.seal(torch.zeros(3), nonce=b"WXYZ" + (9).to_bytes(8, "little")) and b"WXYZ" + (9).to_bytes(8, "little"))
    used += [s.encrypt(data)[0] for _ in range(3)]
    assert len(used) == len(set(used)) == 12
    for nonce in used:
        with pytest.raises(NonceReuseError):
            s.encrypt(data, nonce=nonce)


# -- SIGFPE from a huge block size ---------------------------------------------------------------

def test_huge_block_size_is_a_clean_error_in_every_entry_point():
    # In a subprocess: before the fix this killed the interpreter (SIGFPE), which would take the
    # whole test run down with it.
    code = """
import torch, featperm
x, key = torch.empty(1, 1, 0, 0), torch.tensor([0])
for call in (lambda: featperm.block_shuffle(x, key, block_size=2**32),
             lambda: featperm.block_unshuffle_(x, key, block_size=2**32),
             lambda: torch.ops.featperm.block_shuffle(x, key, 2**32),
             lambda: torch.ops.featperm.block_unshuffle_(x, key, 2**32),
             lambda: torch.ops.featperm.block_shuffle(x, key, 65536),
             lambda: featperm.block_shuffle(x, key, block_size=2**64)):
    try:
        call()
    except ValueError as err:
        print("ValueError", err)
    else:
        print("accepted")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("ValueError") and "block_size must be" in line
                                   for line in lines), lines


# -- denial of service from a forged key id ----------------------------------------------------

@pytest.mark.parametrize("kind,a,b", [(2, 32, 4_000_000_000), (2, 64, 5000), (3, 2**31, 2**15), (3, 70000, 1),
                                      (3, 1, 46341)])
def test_forged_key_id_is_refused_at_once(kind, a, b):
    server = keys.RequestKeys(os.urandom(32), "responses")
    forged = os.urandom(16) + struct.pack(">BII", kind, a, b)
    outcome = []

    def attempt():
        try:
            server.key_for(forged)
            outcome.append("accepted")
        except ValueError as err:
            outcome.append(str(err))

    # A daemon thread: were the bound missing, the derivation would run for days, and the test
    # must fail instead of hanging the run.
    start = time.perf_counter()
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "key_for of a forged id is still deriving after 10 s"
    assert time.perf_counter() - start < 1.0
    assert re.search("exceeds max_samples|more than max_positions|names no valid key", outcome[0]), outcome


def test_request_key_bounds_apply_to_new_keys_and_are_adjustable():
    server = keys.RequestKeys(os.urandom(32), "responses", max_samples=8, max_positions=64)
    with pytest.raises(ValueError, match="max_samples=8"):
        server.new_bit_key(samples=9)
    with pytest.raises(ValueError, match="max_positions=64"):
        server.new_block_key(channels=17, block_size=2)
    key_id, key = server.new_block_key(channels=16, block_size=2)
    assert server.key_for(key_id) == key


# -- silently wrong gradients after in-place ops ------------------------------------------------

@pytest.mark.parametrize("op", ["shuffle_bits_", "unshuffle_bits_", "block_shuffle_", "block_unshuffle_"])
def test_in_place_ops_bump_the_version_counter(op):
    a = torch.randn(1, 4, 2, 2, requires_grad=True)
    b = torch.randn(1, 4, 2, 2)
    y = (a * b).sum()  # saves b for the gradient of a
    version = b._version
    if op.startswith("block"):
        getattr(featperm, op)(b, featperm.BlockKey.generate(channels=4, block_size=2))
    else:
        getattr(featperm, op)(b, featperm.BitKey.generate(32))
    assert b._version > version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_raw_in_place_ops_bump_the_version_counter_too():
    b = torch.randn(4, 8)
    version = b._version
    torch.ops.featperm.shuffle_bits_(b, torch.arange(32))
    torch.ops.featperm.block_unshuffle_(b.view(1, 2, 4, 4), torch.arange(8), 2)
    assert b._version == version + 2


# -- one overlap rule for both in-place ops -------------------------------------------------------

def _overlapping_view():
    return torch.arange(40.).unfold(0, 16, 8)[:2].view(1, 2, 4, 4)  # rows share 8 elements


def test_in_place_ops_refuse_every_overlapping_view():
    with pytest.raises(ValueError, match="share memory"):
        featperm.block_shuffle_(_overlapping_view(), torch.arange(8), block_size=2)
    with pytest.raises(ValueError, match="share memory"):
        featperm.shuffle_bits_(_overlapping_view(), torch.arange(32))
    with pytest.raises(ValueError, match="share memory"):
        featperm.block_unshuffle_(torch.randn(1, 2, 4, 1).expand(1, 2, 4, 4), torch.arange(8), block_size=2)


@pytest.mark.parametrize("make_view", [lambda t: t[::3], lambda t: t[:, :3], lambda t: t.t()[::2],
                                       lambda t: t.unfold(0, 2, 2)])
def test_in_place_ops_accept_every_non_overlapping_view(make_view):
    base = torch.randn(12, 8)
    view = make_view(base)
    key = featperm.BitKey.generate(32)
    expected = featperm.shuffle_bits(view, key)
    before = base.clone()
    featperm.shuffle_bits_(view, key)
    assert torch.equal(view.view(torch.int32), expected.view(torch.int32))
    featperm.unshuffle_bits_(view, key)
    assert torch.equal(base.view(torch.int32), before.view(torch.int32))


def test_block_shuffle_in_place_on_a_strided_view():
    base = torch.randn(2, 4, 8, 12)
    view = base[:, :, :, ::3]  # (2, 4, 8, 4), not dense, no overlap
    key = featperm.BlockKey.generate(channels=4, block_size=2)
    expected = featperm.block_shuffle(view, key)
    featperm.block_shuffle_(view, key)
    assert torch.equal(view, expected)


# -- floats and bools are never truncated into integers ---------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: featperm.block_shuffle(torch.randn(1, 1, 2, 2), [3.9, 2.5, 1.1, 0.7], block_size=2),
    lambda: featperm.block_shuffle(torch.randn(1, 1, 2, 2), np.array([3.0, 2.0, 1.0, 0.0]), block_size=2),
    lambda: featperm.block_shuffle(torch.randn(1, 2, 1, 1), [True, False], block_size=1),
    lambda: featperm.block_shuffle(torch.randn(1, 1, 2, 2), [3, 2, 1, 0], block_size=2.5),
    lambda: featperm.block_shuffle(torch.randn(1, 1, 2, 2), [3, 2, 1, 0], block_size="2"),
    lambda: featperm.shuffle_bits(torch.randn(3), [float(i) for i in range(32)]),
    lambda: featperm.shuffle_bits(torch.randn(3), np.arange(32, dtype=np.float64)),
    lambda: featperm.BitKey.from_reference_index([float(i) for i in range(32)]),
    lambda: featperm.BitKey.generate(32, samples=2.7),
    lambda: featperm.BitKey.generate(32, samples="3"),
    lambda: featperm.BitKey.generate(32.0),
    lambda: featperm.BlockKey.generate(channels=4.9, block_size=2),
    lambda: featperm.BlockKey.generate(channels=True, block_size=2),
    lambda: featperm.BlockKey(torch.arange(4), channels=1, block_size=2.0),
    lambda: crypto.Sealer(sender_id=4),
    lambda: crypto.NonceSequence(sender_id=4),
    lambda: featperm.ops.cpu_isa(0.0),
    lambda: keys.RequestKeys(os.urandom(32), "x").new_block_key(channels=2.5, block_size=2),
    lambda: FFXKey(os.urandom(32), channels=3.0, block_size=2),
    lambda: FFXKey("a password", channels=3, block_size=2),
    lambda: NPKey(torch.tensor([0.0, 1.0, 0.0, 1.0]), channels=1, block_size=2),
    lambda: featperm.shuffle_bits(None, featperm.BitKey.generate(32)),
    lambda: featperm.shuffle_bits([1.0, 2.0], featperm.BitKey.generate(32)),
    lambda: featperm.block_shuffle("x", featperm.BlockKey.generate(channels=1, block_size=1)),
    lambda: featperm.seal("x", bytes(32), bytes(12)),
    lambda: crypto.aead_decrypt(torch.zeros(4, dtype=torch.uint8), 16, bytes(32), bytes(12)),
], ids=lambda f: "")
def test_wrong_types_are_type_errors(call):
    with pytest.raises(TypeError) as raised:
        call()
    assert type(raised.value) is TypeError


@pytest.mark.parametrize("call,match", [
    (lambda: featperm.ops.cpu_isa(-7), "request must be >= -1"),
    (lambda: FFXKey(os.urandom(32), channels=0, block_size=2), "channels must be >= 1"),
    (lambda: FFXKey(os.urandom(8), channels=3, block_size=2), "at least 16 bytes"),
    (lambda: featperm.BlockKey.generate(channels=0, block_size=2), "channels must be >= 1"),
    (lambda: featperm.BitKey.generate(32, samples=0), "samples must be >= 1"),
    (lambda: crypto.Sealer(sender_id=b"abc"), "sender_id must be exactly 4 bytes"),
    (lambda: crypto.aead_decrypt(torch.zeros(4, dtype=torch.uint8), b"x" * 15, bytes(32), bytes(12)),
     "tag must be exactly 16 bytes"),
])
def test_bad_values_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_int_tag_is_not_a_zero_tag():
    data = torch.zeros(4, dtype=torch.uint8)
    with pytest.raises(TypeError, match="tag must be bytes"):
        crypto.aead_decrypt(data, 16, bytes(32), bytes(12))


# -- the key inside exported models ---------------------------------------------------------------

def _protected():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    return featperm.protect(model, at="0", key=featperm.BlockKey.generate(channels=4, block_size=2))


def _trace(model, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace is deprecated in torch 2.14
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.trace(model, x)


def test_tracing_or_exporting_a_protected_model_is_refused():
    model, x = _protected(), torch.randn(1, 3, 8, 8)
    with pytest.raises(KeyExportError, match="allow_key_export"):
        _trace(model, x)
    with pytest.raises(KeyExportError, match="allow_key_export"):
        torch.export.export(model, (x,))


def test_export_with_the_opt_in_warns_and_runs_with_the_key(tmp_path):
    model, x = _protected(), torch.randn(1, 3, 8, 8)
    with featperm.nn.allow_key_export(), pytest.warns(featperm.nn.KeyExportWarning, match="key is embedded"):
        traced = _trace(model, x)
        exported = torch.export.export(model, (x,))
    assert torch.equal(traced(x), model(x))
    assert torch.equal(exported.module()(x), model(x))
    # The opt-in ends with the block: tracing is refused again.
    with pytest.raises(KeyExportError):
        _trace(model, x)
    # A model without its key (set_key(None)) exports without the opt-in.
    featperm.set_key(model, None)
    torch.export.export(model, (x,))


def test_shuffle_bits_module_is_guarded_too():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), featperm.nn.ShuffleBits(featperm.BitKey.generate(32)))
    with pytest.raises(KeyExportError):
        _trace(model, torch.randn(2, 4))


# -- NegativePositive and FFX on the inputs they were not exact on -------------------------------------

def test_np_is_exact_on_8_bit_integer_images_and_documented_on_floats():
    key = NPKey(torch.ones(12, dtype=torch.bool), channels=3, block_size=2)
    np_ = NegativePositive(key)
    values = torch.arange(256).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    for dtype in (torch.uint8, torch.int16, torch.int32, torch.int64):
        img = values.to(dtype)
        y = np_(img)
        assert y.dtype == dtype and bool((y >= 0).all() and (y <= 255).all())
        assert torch.equal(y, 255 - img) and torch.equal(np_.inverse(y), img)
    with pytest.raises(ValueError, match="8-bit pixel values 0..255"):
        np_(torch.full((1, 3, 2, 2), 300, dtype=torch.int16))
    # Floats: 1 - (1 - x) differs from x by at most 2**-24 for float32 in [0, 1] (documented).
    x = values.to(torch.float32) / 255
    error = (np_.inverse(np_(x)) - x).abs().max().item()
    assert 0 < error <= 2**-24


def test_ffx_refuses_non_finite_pixels():
    ffx = FFX.generate(block_size=2)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.rand(1, 3, 4, 4)
        x[0, 1, 2, 3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            ffx(x)


# -- clearer errors ---------------------------------------------------------------------------

def test_reserved_byte_flip_names_the_reserved_byte():
    sealed = bytearray(crypto.seal(torch.randn(3), bytes(32), bytes(12)))
    sealed[7] ^= 1
    with pytest.raises(crypto.MalformedSealedError, match="reserved header byte is 1, expected 0") as raised:
        crypto.open_sealed(sealed, bytes(32))
    assert "version" not in str(raised.value)


def test_wrong_width_key_names_the_width():
    with pytest.raises(ValueError, match="key has 31 positions but x has 32-bit words"):
        featperm.shuffle_bits(torch.randn(3), list(range(31)))


def test_protect_refuses_an_empty_name_and_a_key_of_the_wrong_channel_count():
    from featperm.models import resnet18_cifar
    with pytest.raises(ValueError, match="at must name a submodule"):
        featperm.protect(resnet18_cifar(), at="", key=featperm.BlockKey.generate(channels=64, block_size=2))
    with pytest.raises(ValueError, match="outputs 128 channels .* channels=64"):
        featperm.protect(resnet18_cifar(), at="layer2", key=featperm.BlockKey.generate(channels=64, block_size=2))
    model = featperm.protect(resnet18_cifar(), at="layer2", key=featperm.BlockKey.generate(channels=128, block_size=2))
    with pytest.raises(ValueError, match="outputs 128 channels"):
        featperm.set_key(model, featperm.BlockKey.generate(channels=64, block_size=2))


def test_unprotect_removes_the_hook_through_its_handle():
    from featperm.models import resnet18_cifar
    model = featperm.protect(resnet18_cifar(), at="layer1", key=featperm.BlockKey.generate(channels=64, block_size=2))
    unrelated = model.layer1.register_forward_hook(lambda module, inputs, output: None)
    assert len(model.layer1._forward_hooks) == 2
    featperm.unprotect(model)
    assert list(model.layer1._forward_hooks) == [unrelated.id]


# -- found in review ----------------------------------------------------------------------------

def test_overlap_check_is_exact_and_cheap():
    import torch as t
    storage = t.zeros(64)
    # interleaved strides whose offsets never collide: accepted, and exact
    view = storage.as_strided((3, 2), (2, 5))
    expected = featperm.shuffle_bits(view, torch.arange(32))
    featperm.shuffle_bits_(view, torch.arange(32).flip(0))
    featperm.shuffle_bits_(view, torch.arange(32).flip(0))
    assert torch.equal(view, expected)
    # interleaved strides that do collide (offset 6 twice), found by the bitset
    with pytest.raises(ValueError, match="share memory"):
        featperm.shuffle_bits_(storage.as_strided((4, 3), (2, 3)), torch.arange(32))
    # a large overlapping unfold is refused at once, without listing its 64 million offsets
    big = torch.zeros(1 << 20).unfold(0, 64, 1)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="share memory"):
        featperm.shuffle_bits_(big, torch.arange(32))
    assert time.perf_counter() - start < 1.0


def test_old_pickles_and_module_paths_still_load():
    import pickle
    key = featperm.BitKey.generate(32)
    block_key = featperm.BlockKey.generate(channels=3, block_size=2)
    # Protocol 0 names classes as text lines: rewrite them to the module paths of featperm < 0.1.
    old_bit = pickle.dumps(key, protocol=0).replace(b"featperm.keys.bit_key\n", b"featperm.bits\n")
    old_block = pickle.dumps(block_key, protocol=0).replace(b"featperm.keys.block_key\n", b"featperm.block\n")
    assert b"featperm.bits\n" in old_bit and b"featperm.block\n" in old_block
    assert pickle.loads(old_bit) == key and pickle.loads(old_block) == block_key
    from featperm.block import to_blocks  # noqa: F401
    from featperm.nn import _ApplyAfter  # noqa: F401


def test_moved_attack_names_still_work_from_keys_with_a_warning():
    x = torch.randn(64)
    key = featperm.BitKey.generate(32)
    with pytest.warns(DeprecationWarning, match="moved to featperm.attacks.known_plaintext"):
        recovered = keys.recover_bit_key(x, featperm.shuffle_bits(x, key))
    assert recovered in (key, None)


def test_a_nonce_sequence_refuses_to_continue_in_a_forked_child():
    sealer = crypto.Sealer(sender_id=b"FORK")
    sealer.seal(torch.zeros(2))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            sealer.seal(torch.zeros(2))
            os.write(write, b"issued")
        except NonceReuseError:
            os.write(write, b"refused")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"refused"
    sealer.seal(torch.zeros(2))  # the parent goes on


@pytest.mark.parametrize("call,error,match", [
    (lambda: featperm.nn.ShuffleBits(None, aad=3), TypeError, "aad must be bytes"),
    (lambda: NegativePositive(NPKey(torch.ones(12, dtype=torch.bool), channels=3, block_size=2))(
        torch.zeros(1, 3, 2, 2, dtype=torch.int8)), TypeError, "can hold 0..255"),
    (lambda: featperm.ops.to_blocks(torch.zeros(4, 4), 2), ValueError, r"x must have shape \(N, C, H, W\)"),
    (lambda: featperm.ops.from_blocks(torch.zeros(1, 2, 2, 5), 3, 2), ValueError, "C\\*M\\*M = 12"),
    (lambda: featperm.BitKey([]), ValueError, "must have shape"),
    (lambda: keys.load_key(__file__, expected_kind=5), TypeError, "expected_kind must be"),
])
def test_review_findings(call, error, match):
    with pytest.raises(error, match=match) as raised:
        call()
    assert type(raised.value) is error
