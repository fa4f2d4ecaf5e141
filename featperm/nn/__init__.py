"""Modules that apply featperm's keyed transforms inside a model, and model protection.

* :class:`BlockShuffle` permutes the blocks of a feature map (AprilPyone & Kiya 2021);
  :func:`protect` inserts one after a named submodule of any model, :func:`set_key` swaps its key
  (a wrong key, or ``None`` for no transform), :func:`unprotect` removes it.
* :class:`ShuffleBits` encrypts a model's output (the last layer of a feature extractor).

Keys are never part of a model's ``state_dict()`` or its pickle: a module holds its key as a
plain attribute (not a parameter or buffer) and drops it when pickled, so ``torch.save(model)``
and ``torch.save(model.state_dict())`` hold no key material. A model loaded that way raises
:class:`~featperm.errors.KeyNotLoadedError` in forward until its key is set again with
:func:`set_key`. Save keys separately. Tracing or exporting (``torch.jit.trace``,
``torch.export``) would put the key inside the artifact, so it raises
:class:`~featperm.errors.KeyExportError` unless done inside :func:`allow_key_export`.
"""

from featperm.errors import KeyExportError, KeyNotLoadedError
from featperm.nn._keyed import KeyExportWarning, allow_key_export
from featperm.nn.block_shuffle import (
    BlockShuffle,
    _ApplyAfter,  # noqa: F401  (its old path, for models pickled before 0.1.0)
    protect,
    set_key,
    unprotect,
)
from featperm.nn.shuffle_bits import ShuffleBits

__all__ = [
    "BlockShuffle",
    "ShuffleBits",
    "protect",
    "unprotect",
    "set_key",
    "allow_key_export",
    "KeyNotLoadedError",
    "KeyExportError",
    "KeyExportWarning",
]
