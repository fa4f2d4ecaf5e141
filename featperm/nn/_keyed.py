"""The base of featperm's keyed modules: keys outside state dicts and pickles, and outside
exported artifacts unless the user asks for it."""

from __future__ import annotations

import contextlib
import copy
import threading
import warnings
from typing import Any, Dict, Iterator, Tuple

import torch
from torch import nn

from featperm.errors import KeyExportError, KeyNotLoadedError

__all__ = ["KeyedModule", "allow_key_export", "KeyExportWarning", "KEY_NOT_LOADED"]


class KeyExportWarning(UserWarning):
    """An exported or traced artifact contains a protection key (inside allow_key_export())."""


class _KeyNotLoaded:
    """Marks a key dropped by pickling (distinct from None, which means 'no transform')."""

    def __repr__(self) -> str:
        return "<key not loaded>"

    def __reduce__(self) -> str:
        return "KEY_NOT_LOADED"  # unpickles as the module's singleton


KEY_NOT_LOADED = _KeyNotLoaded()

_EXPORT = threading.local()


@contextlib.contextmanager
def allow_key_export() -> Iterator[None]:
    """Allow ``torch.jit.trace`` / ``torch.export`` of models with featperm keys in the body.

    A traced or exported program must carry its key to run: the key becomes a constant inside
    the artifact, and anyone holding the file holds the key. Outside this context such tracing
    raises :class:`~featperm.errors.KeyExportError`; inside it, a :class:`KeyExportWarning` names
    each module whose key is embedded. ``torch.save(model)`` and ``state_dict()`` never need it:
    they drop keys."""
    before = getattr(_EXPORT, "allowed", False)
    _EXPORT.allowed = True
    try:
        yield
    finally:
        _EXPORT.allowed = before


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return torch.jit.is_tracing() or bool(is_exporting is not None and is_exporting())


class KeyedModule(nn.Module):
    """Holds a key outside the state dict and outside pickles."""

    _key: Any  # a plain attribute (set with object.__setattr__), never a parameter or buffer
    _key_type: Any = object
    # Plain attributes that hold key material: never pickled, kept by deepcopy.
    _secret_attributes: Tuple[str, ...] = ("_key",)

    def __init__(self, key: Any):
        super().__init__()
        self.set_key(key)

    def set_key(self, key: Any) -> None:
        """Use ``key`` from now on: a key of the module's kind (:class:`~featperm.BitKey` for
        ShuffleBits, :class:`~featperm.BlockKey` for BlockShuffle), or ``None`` for no transform
        (the module passes its input through). Also restores a key that pickling dropped.
        TypeError for anything else."""
        if key is not None and not isinstance(key, self._key_type):
            raise TypeError(
                f"{type(self).__name__}.set_key: expected a {self._key_type.__name__} or None, got {type(key).__name__}"
            )
        # object.__setattr__: a plain attribute, never a parameter, buffer or submodule.
        object.__setattr__(self, "_key", key)

    @property
    def key(self) -> Any:
        """The key in use: the key object, ``None`` (no transform), or the ``KEY_NOT_LOADED``
        marker of a module that was unpickled without its key."""
        return self._key

    @property
    def has_key(self) -> bool:
        """False only after unpickling (the key was not saved): forward then raises
        :class:`~featperm.errors.KeyNotLoadedError` until :meth:`set_key`. ``None`` counts as set."""
        return self._key is not KEY_NOT_LOADED

    def _require_key(self) -> Any:
        if self._key is KEY_NOT_LOADED:
            raise KeyNotLoadedError(
                f"{type(self).__name__} has no key: keys are not saved with a model. Load the key "
                "separately and set it with featperm.set_key(model, key) (or module.set_key(key)); "
                "set_key(model, None) runs the model without the transform"
            )
        if self._key is not None and _exporting():
            if not getattr(_EXPORT, "allowed", False):
                raise KeyExportError(
                    f"{type(self).__name__}: tracing or exporting this model would embed its key in "
                    "the artifact (anyone holding the file would hold the key). Wrap the call in "
                    "`with featperm.nn.allow_key_export():` if that is what you want, or export "
                    "with set_key(model, None)"
                )
            warnings.warn(
                f"{type(self).__name__}: its key is embedded in the traced/exported "
                "artifact; protect that file like the key itself",
                KeyExportWarning,
                stacklevel=3,
            )
        return self._key

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._secret_attributes:
            if state.get(name) is not None:  # None (no transform, no sealer) holds no secret
                del state[name]  # never pickle key material
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        for name in self._secret_attributes:
            if name not in self.__dict__:
                object.__setattr__(self, name, KEY_NOT_LOADED)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "KeyedModule":
        # An in-memory copy keeps the key (only serialisation drops it).
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        state = {name: value for name, value in self.__dict__.items() if name not in self._secret_attributes}
        clone.__dict__.update(copy.deepcopy(state, memo))
        for name in self._secret_attributes:
            object.__setattr__(clone, name, self.__dict__[name])
        return clone
