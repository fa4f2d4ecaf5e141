"""The block-wise feature-map shuffle as a module, and model protection (AprilPyone & Kiya 2021).

:func:`protect` inserts a :class:`BlockShuffle` after a named submodule of any model,
:func:`set_key` swaps its key (a wrong key, or ``None`` for no transform), :func:`unprotect`
removes it.
"""

from __future__ import annotations

from typing import Any, List, Optional, Union

import torch
from torch import nn

from featperm.keys import BitKey, BlockKey
from featperm.nn._keyed import KEY_NOT_LOADED, KeyedModule
from featperm.nn.shuffle_bits import ShuffleBits
from featperm.ops.block_shuffle import block_shuffle

__all__ = ["BlockShuffle", "protect", "unprotect", "set_key"]


class BlockShuffle(KeyedModule):
    """Block-wise shuffle of a feature map (N, C, H, W) by a :class:`~featperm.BlockKey`.

    ``BlockShuffle(None)`` (or ``set_key(None)``) is the identity: evaluating a protected model
    without its transform.
    """

    _key_type = BlockKey
    _hook_handle: Any  # set by protect(): the handle of the forward hook that calls this module
    _protected_at: str

    def __init__(self, key: Optional[BlockKey]):
        super().__init__(key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`featperm.block_shuffle` of ``x`` (N, C, H, W), any dtype, C = the key's channels,
        H and W multiples of its block size; same shape, dtype and memory format, differentiable.
        With key ``None``, ``x`` itself. Raises :class:`~featperm.errors.KeyNotLoadedError` when
        the key was dropped by pickling, :class:`~featperm.errors.KeyExportError` when traced or
        exported outside :func:`~featperm.nn.allow_key_export`, ValueError for a bad shape."""
        key = self._require_key()
        return x if key is None else block_shuffle(x, key)

    def extra_repr(self) -> str:
        if self._key is KEY_NOT_LOADED:
            return "key=<not loaded>"
        if self._key is None:
            return "key=None"
        return f"channels={self._key.channels}, block_size={self._key.block_size}"


# -- protecting a model -------------------------------------------------------------------------

_CHILD_PREFIX = "featperm_block_shuffle"


class _ApplyAfter:
    """Forward hook that passes a submodule's output through a BlockShuffle (picklable)."""

    def __init__(self, shuffle: BlockShuffle):
        self.shuffle = shuffle

    def __call__(self, module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return self.shuffle(output)


def _child_name(at: str) -> str:
    return f"{_CHILD_PREFIX}__{at.replace('.', '__')}"


def _output_channels(module: nn.Module) -> Optional[int]:
    """The channel count of ``module``'s output as its last convolution or batch norm states it
    (None when it has neither, e.g. a pooling layer: then only forward can tell)."""
    for m in reversed(list(module.modules())):
        for attribute in ("out_channels", "num_features"):
            value = getattr(m, attribute, None)
            if isinstance(value, int):
                return value
    return None


def _check_channels(where: str, target: nn.Module, at: str, key: BlockKey) -> None:
    channels = _output_channels(target)
    if channels is not None and channels != key.channels:
        raise ValueError(
            f"{where}: submodule {at!r} outputs {channels} channels (its last "
            f"convolution or batch norm) but the key is for channels={key.channels}"
        )


def protect(model: nn.Module, at: str = "layer1", key: Optional[BlockKey] = None) -> nn.Module:
    """Insert a :class:`BlockShuffle` after submodule ``at`` of ``model``; returns ``model``.

    ``at`` is a (dotted) submodule name, e.g. ``"conv1"``, ``"layer1"`` ... ``"layer4"`` for the
    positions of the paper on :func:`featperm.models.resnet18_cifar`, or ``"layer2.1"``. The
    shuffle is a forward hook on that submodule (its handle is kept, so :func:`unprotect` removes
    exactly it), and the BlockShuffle module is registered on ``model`` (as
    ``featperm_block_shuffle__<at>``) so that it shows in the model's repr. It holds no tensors:
    the state dict keeps exactly the unprotected model's entries, and pretrained weights load
    either way. A key whose channel count differs from the submodule's output (as its last
    convolution or batch norm states it) is refused here, not in forward.
    """
    if key is None:
        raise TypeError(
            "protect: key is required (a featperm.BlockKey; BlockKey.generate(channels=..., block_size=...) makes one)"
        )
    if not isinstance(key, BlockKey):
        raise TypeError(f"protect: key must be a featperm.BlockKey, got {type(key).__name__}")
    if not isinstance(at, str):
        raise TypeError(f"protect: at must be a submodule name (str), got {type(at).__name__}")
    if not at:
        raise ValueError("protect: at must name a submodule (e.g. 'layer1'), got '' (the model itself)")
    try:
        target = model.get_submodule(at)
    except AttributeError:
        names = [name for name, _ in model.named_children()]
        raise ValueError(
            f"protect: model has no submodule {at!r}; its top-level submodules are "
            f"{names} (use a dotted name for nested ones)"
        ) from None
    name = _child_name(at)
    if hasattr(model, name):
        raise ValueError(f"protect: model is already protected at {at!r}; use set_key to change the key")
    _check_channels("protect", target, at, key)
    shuffle = BlockShuffle(key)
    model.add_module(name, shuffle)
    handle = target.register_forward_hook(_ApplyAfter(shuffle))
    object.__setattr__(shuffle, "_hook_handle", handle)  # a plain attribute, not a submodule
    object.__setattr__(shuffle, "_protected_at", at)
    return model


def _shuffles(model: nn.Module) -> List[BlockShuffle]:
    return [m for m in model.modules() if isinstance(m, BlockShuffle)]


def unprotect(model: nn.Module) -> nn.Module:
    """Remove every BlockShuffle that :func:`protect` inserted (through the hook handles it kept);
    returns ``model``."""
    for name, child in list(model.named_children()):
        if name.startswith(_CHILD_PREFIX) and isinstance(child, BlockShuffle):
            handle = getattr(child, "_hook_handle", None)
            if handle is not None:
                handle.remove()
            else:  # a model protected and pickled before protect() kept the handle
                for module in model.modules():
                    for hook_id, hook in list(module._forward_hooks.items()):
                        if isinstance(hook, _ApplyAfter) and hook.shuffle is child:
                            del module._forward_hooks[hook_id]
            delattr(model, name)
    return model


def set_key(model: nn.Module, key: Union[BlockKey, BitKey, None], at: Optional[str] = None) -> nn.Module:
    """Set the key of the keyed featperm modules in ``model`` whose kind matches ``key``
    (:class:`BlockShuffle` for a BlockKey, :class:`~featperm.nn.ShuffleBits` for a BitKey;
    ``None``: every BlockShuffle becomes the identity). ``at`` limits it to the BlockShuffle that
    :func:`protect` inserted after submodule ``at`` (for models protected at several positions).
    A BlockKey whose channel count differs from the protected submodule's output is refused.
    Returns ``model``."""
    targets: List[KeyedModule]
    if key is None or isinstance(key, BlockKey):
        if at is not None:
            shuffle = getattr(model, _child_name(at), None)
            if not isinstance(shuffle, BlockShuffle):
                raise ValueError(f"set_key: model is not protected at {at!r}")
            targets = [shuffle]
        else:
            targets = list(_shuffles(model))
        if isinstance(key, BlockKey):
            for shuffle in targets:
                where = getattr(shuffle, "_protected_at", None)
                if where is not None:
                    _check_channels("set_key", model.get_submodule(where), where, key)
    elif isinstance(key, BitKey):
        targets = [m for m in model.modules() if isinstance(m, ShuffleBits)]
    else:
        raise TypeError(f"set_key: key must be a BlockKey, a BitKey or None, got {type(key).__name__}")
    if not targets:
        raise ValueError("set_key: model has no featperm module for this key (protect it first)")
    for module in targets:
        module.set_key(key)
    return model
