"""Modules that apply featperm's keyed transforms inside a model, and model protection.

* :class:`BlockShuffle` permutes the blocks of a feature map (AprilPyone & Kiya 2021);
  :func:`protect` inserts one after a named submodule of any model, :func:`set_key` swaps its key
  (a wrong key, or ``None`` for no transform), :func:`unprotect` removes it.
* :class:`ShuffleBits` encrypts a model's output (the last layer of a feature extractor).

Keys are never part of a model's ``state_dict()`` or its pickle: a module holds its key as a
plain attribute (not a parameter or buffer) and drops it when pickled, so ``torch.save(model)``
and ``torch.save(model.state_dict())`` hold no key material. A model loaded that way raises a
clear error in forward until its key is set again with :func:`set_key`. Save keys separately.
"""

from __future__ import annotations

import copy
from typing import Optional, Union

import torch
from torch import nn

from featperm.bits import BitKey, shuffle_bits
from featperm.block import BlockKey, block_shuffle

__all__ = ["BlockShuffle", "ShuffleBits", "protect", "unprotect", "set_key", "KeyNotLoadedError"]


class KeyNotLoadedError(RuntimeError):
    """A keyed module was used before its key was set (e.g. after loading a saved model)."""


class _KeyNotLoaded:
    """Marks a key dropped by pickling (distinct from None, which means 'no transform')."""

    def __repr__(self):
        return "<key not loaded>"

    def __reduce__(self):
        return "_KEY_NOT_LOADED"  # unpickles as the module's singleton


_KEY_NOT_LOADED = _KeyNotLoaded()


class _KeyedModule(nn.Module):
    """Holds a key outside the state dict and outside pickles."""

    _key_type = object

    def __init__(self, key):
        super().__init__()
        self.set_key(key)

    def set_key(self, key) -> None:
        if key is not None and not isinstance(key, self._key_type):
            raise TypeError(f"{type(self).__name__}.set_key: expected a {self._key_type.__name__} or "
                            f"None, got {type(key).__name__}")
        # object.__setattr__: a plain attribute, never a parameter, buffer or submodule.
        object.__setattr__(self, "_key", key)

    @property
    def key(self):
        return self._key

    @property
    def has_key(self) -> bool:
        return self._key is not _KEY_NOT_LOADED

    def _require_key(self):
        if self._key is _KEY_NOT_LOADED:
            raise KeyNotLoadedError(
                f"{type(self).__name__} has no key: keys are not saved with a model. Load the key "
                "separately and set it with featperm.set_key(model, key) (or module.set_key(key)); "
                "set_key(model, None) runs the model without the transform")
        return self._key

    # Plain attributes that hold key material: never pickled, kept by deepcopy.
    _secret_attributes = ("_key",)

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in self._secret_attributes:
            if state.get(name) is not None:  # None (no transform, no sealer) holds no secret
                del state[name]  # never pickle key material
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        for name in self._secret_attributes:
            if name not in self.__dict__:
                object.__setattr__(self, name, _KEY_NOT_LOADED)

    def __deepcopy__(self, memo):
        # An in-memory copy keeps the key (only serialisation drops it).
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        state = {name: value for name, value in self.__dict__.items() if name not in self._secret_attributes}
        clone.__dict__.update(copy.deepcopy(state, memo))
        for name in self._secret_attributes:
            object.__setattr__(clone, name, self.__dict__[name])
        return clone


class BlockShuffle(_KeyedModule):
    """Block-wise shuffle of a feature map by a :class:`~featperm.BlockKey`.

    ``BlockShuffle(None)`` (or ``set_key(None)``) is the identity: evaluating a protected model
    without its transform.
    """

    _key_type = BlockKey

    def __init__(self, key: Optional[BlockKey]):
        super().__init__(key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = self._require_key()
        return x if key is None else block_shuffle(x, key)

    def extra_repr(self) -> str:
        if self._key is _KEY_NOT_LOADED:
            return "key=<not loaded>"
        if self._key is None:
            return "key=None"
        return f"channels={self._key.channels}, block_size={self._key.block_size}"


class ShuffleBits(_KeyedModule):
    """Encrypts its input with :func:`featperm.shuffle_bits` (e.g. as the last layer of a feature
    extractor: the model then outputs ciphertext). ``as_integer`` returns the integer view.

    With a ``sealer`` (a :class:`featperm.crypto.Sealer`), the output is then sealed with
    ChaCha20-Poly1305 under a fresh nonce (the cascade the ShuffleBits paper suggests): forward
    returns the sealed container (a ``bytearray`` for CPU input, a ``memoryview`` over pinned host
    memory for CUDA input; see :func:`featperm.crypto.seal`), which opens with
    ``featperm.crypto.open_shuffled(sealed, bit_key, sealer.key(), aad)``. Like the bit key, the
    sealer (and its AEAD key) is never pickled with the module.
    """

    _key_type = BitKey
    _secret_attributes = ("_key", "_sealer")

    def __init__(self, key: Optional[BitKey], as_integer: bool = False, sealer=None, aad: bytes = b""):
        super().__init__(key)
        self.as_integer = bool(as_integer)
        self.aad = bytes(aad)
        self.set_sealer(sealer)

    def set_sealer(self, sealer) -> None:
        from featperm.crypto import Sealer
        if sealer is not None and not isinstance(sealer, Sealer):
            raise TypeError(f"ShuffleBits.set_sealer: expected a featperm.crypto.Sealer or None, "
                            f"got {type(sealer).__name__}")
        object.__setattr__(self, "_sealer", sealer)

    def forward(self, x: torch.Tensor):
        key = self._require_key()
        y = x if key is None else shuffle_bits(x, key, as_integer=self.as_integer)
        if self._sealer is _KEY_NOT_LOADED:
            raise KeyNotLoadedError("ShuffleBits has no sealer: sealers (and their keys) are not saved "
                                    "with a model. Set it again with module.set_sealer(sealer)")
        return y if self._sealer is None else self._sealer.seal(y, aad=self.aad)

    def extra_repr(self) -> str:
        sealed = ", sealed" if self._sealer not in (None, _KEY_NOT_LOADED) else ""
        if self._key is _KEY_NOT_LOADED:
            return f"key=<not loaded>, as_integer={self.as_integer}{sealed}"
        if self._key is None:
            return f"key=None, as_integer={self.as_integer}{sealed}"
        return f"bits={self._key.bits}, as_integer={self.as_integer}{sealed}"


# -- protecting a model -------------------------------------------------------------------------

_CHILD_PREFIX = "featperm_block_shuffle"


class _ApplyAfter:
    """Forward hook that passes a submodule's output through a BlockShuffle (picklable)."""

    def __init__(self, shuffle: BlockShuffle):
        self.shuffle = shuffle

    def __call__(self, module, inputs, output):
        return self.shuffle(output)


def _child_name(at: str) -> str:
    return f"{_CHILD_PREFIX}__{at.replace('.', '__')}"


def protect(model: nn.Module, at: str = "layer1", key: Optional[BlockKey] = None) -> nn.Module:
    """Insert a :class:`BlockShuffle` after submodule ``at`` of ``model``; returns ``model``.

    ``at`` is a (dotted) submodule name, e.g. ``"conv1"``, ``"layer1"`` ... ``"layer4"`` for the
    positions of the paper on :func:`featperm.models.resnet18_cifar`, or ``"layer2.1"``. The
    shuffle is a forward hook on that submodule, and the BlockShuffle module is registered on
    ``model`` (as ``featperm_block_shuffle__<at>``) so that it shows in the model's repr. It holds
    no tensors: the state dict keeps exactly the unprotected model's entries, and pretrained
    weights load either way.
    """
    if key is None:
        raise TypeError("protect: key is required (a featperm.BlockKey; BlockKey.generate(channels=..., "
                        "block_size=...) makes one)")
    if not isinstance(key, BlockKey):
        raise TypeError(f"protect: key must be a featperm.BlockKey, got {type(key).__name__}")
    try:
        target = model.get_submodule(at)
    except AttributeError:
        names = [name for name, _ in model.named_children()]
        raise ValueError(f"protect: model has no submodule {at!r}; its top-level submodules are "
                         f"{names} (use a dotted name for nested ones)") from None
    name = _child_name(at)
    if hasattr(model, name):
        raise ValueError(f"protect: model is already protected at {at!r}; use set_key to change the key")
    shuffle = BlockShuffle(key)
    model.add_module(name, shuffle)
    target.register_forward_hook(_ApplyAfter(shuffle))
    return model


def _shuffles(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, BlockShuffle)]


def unprotect(model: nn.Module) -> nn.Module:
    """Remove every BlockShuffle that :func:`protect` inserted; returns ``model``."""
    for module in model.modules():
        hooks = getattr(module, "_forward_hooks", {})
        for hook_id in [i for i, hook in hooks.items() if isinstance(hook, _ApplyAfter)]:
            del hooks[hook_id]
    for name in [n for n, _ in model.named_children() if n.startswith(_CHILD_PREFIX)]:
        delattr(model, name)
    return model


def set_key(model: nn.Module, key: Union[BlockKey, BitKey, None], at: Optional[str] = None) -> nn.Module:
    """Set the key of the keyed featperm modules in ``model`` whose kind matches ``key``
    (:class:`BlockShuffle` for a BlockKey, :class:`ShuffleBits` for a BitKey; ``None``: every
    BlockShuffle becomes the identity). ``at`` limits it to the BlockShuffle that
    :func:`protect` inserted after submodule ``at`` (for models protected at several positions).
    Returns ``model``."""
    if key is None or isinstance(key, BlockKey):
        if at is not None:
            shuffle = getattr(model, _child_name(at), None)
            if not isinstance(shuffle, BlockShuffle):
                raise ValueError(f"set_key: model is not protected at {at!r}")
            targets = [shuffle]
        else:
            targets = _shuffles(model)
    elif isinstance(key, BitKey):
        targets = [m for m in model.modules() if isinstance(m, ShuffleBits)]
    else:
        raise TypeError(f"set_key: key must be a BlockKey, a BitKey or None, got {type(key).__name__}")
    if not targets:
        raise ValueError("set_key: model has no featperm module for this key (protect it first)")
    for module in targets:
        module.set_key(key)
    return model
