"""The argument rules of featperm, in one place (the C++ half is ``csrc/ops/arg_checks.h``).

Every public function, op and key class follows them, on every device:

* **TypeError** — the wrong kind of thing: not a tensor where a tensor is expected; a float,
  bool or string where an integer is expected (``block_size=2.5``, ``samples="3"``, a key of
  ``[3.9, 2.5, ...]`` or ``[True, False]``; integers are never truncated or parsed); a key tensor
  of float, complex or bool dtype; an ``x`` whose dtype the op does not support; a ``str``
  secret.
* **ValueError** — a bad value: a shape, size or range (``block_size=0``, ``block_size=2**32``,
  a 31-entry key for 32-bit words), a key that is not a permutation, a key on a different device
  than ``x``, a too-short secret, an in-place target that requires grad or whose elements share
  memory.
* featperm's own exceptions (:mod:`featperm.errors`) for what is not an argument mistake
  (a corrupted key file, a failed authentication, a key missing from a loaded model).

Messages name the function, the argument, what was expected and what was given, e.g.
``block_shuffle: block_size must be an integer, got float 2.5``.

Keys on another device: an op never copies a raw key tensor between devices (that copy would be
a hidden host synchronisation, which CUDA graph capture forbids); it raises ValueError. A
:class:`~featperm.BitKey` or :class:`~featperm.BlockKey` moves itself and caches the copy per
device (``key.tensor(device)``), so passing key objects is the convenient way.

Overlap: an in-place op accepts every view whose elements are distinct in memory (slices,
strides, transposes, channels_last), and refuses every view in which two elements share memory
(``expand()``, overlapping ``unfold()`` windows).

This module depends on the standard library and torch only (the key layer uses it).
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

__all__ = ["integer", "tensor", "key_tensor", "permutation_rows", "secret", "text", "byte_string", "MIN_SECRET_BYTES"]

MIN_SECRET_BYTES = 16  # 128 bits: the least any API accepts


def describe(value: object) -> str:
    """A value for an error message: its type and a repr cut to 40 characters."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


_describe = describe


def path(where: str, name: str, value: object) -> Path:
    """``value`` as a Path: TypeError unless a str or a text os.PathLike, ValueError if empty."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{where}: {name} must be a path (str or os.PathLike), got {describe(value)}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"{where}: {name} must be a text path, got {describe(text)}")
    if not text:
        raise ValueError(f"{where}: {name} must be a non-empty path, got ''")
    return Path(text)


def integer(
    where: str, name: str, value: object, *, minimum: Optional[int] = None, maximum: Optional[int] = None
) -> int:
    """``value`` as an int: Python ints and integer scalars (numpy, 0-d integer tensors) only.

    TypeError for bool, float, str and everything else; ValueError outside [minimum, maximum].
    """
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise TypeError(f"{where}: {name} must be an integer, got {_describe(value)}")
    try:
        result = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{where}: {name} must be an integer, got {_describe(value)}") from None
    if minimum is not None and result < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{where}: {name} must be <= {maximum}, got {result}")
    return int(result)


def tensor(where: str, name: str, value: object) -> torch.Tensor:
    """TypeError unless ``value`` is a torch.Tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_integer_elements(where: str, name: str, value: Any) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_integer_elements(where, name, item)
        return
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(
            f"{where}: {name} must be an integer tensor or a sequence of integer positions, got {_describe(value)}"
        )


KeyInput = Union[torch.Tensor, Sequence[int], Sequence[Sequence[int]]]


def key_tensor(where: str, name: str, value: KeyInput, device: Union[torch.device, str, None] = None) -> torch.Tensor:
    """A key given as a tensor, numpy array or (nested) sequence of integers, as an integer tensor.

    A tensor keeps its device and dtype (the ops check it); anything else becomes int64 on
    ``device``. TypeError for float, complex or bool contents (never truncated)."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        if isinstance(value, (str, bytes, bytearray)) or value is None:
            raise TypeError(f"{where}: {name} must be a sequence or tensor of integers, got {type(value).__name__}")
        if not hasattr(value, "dtype"):  # numpy arrays are checked by their dtype below
            _check_integer_elements(where, name, value)
            # every element is an integer (an empty sequence too, which torch would make float)
            t = torch.as_tensor(value, dtype=torch.int64)
        else:
            t = torch.as_tensor(value)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(
            f"{where}: {name} must be an integer tensor or a sequence of integer positions, got dtype {t.dtype}"
        )
    if not isinstance(value, torch.Tensor):
        t = t.to(device=device, dtype=torch.int64)
    return t


def permutation_rows(where: str, perm: torch.Tensor) -> None:
    """ValueError unless every row (the last dimension) of ``perm`` is a permutation of 0..n-1,
    naming the first bad row (for 2-D keys) and what is wrong with it. One host synchronisation
    for a device tensor."""
    n = perm.shape[-1]
    ordered = torch.sort(perm, dim=-1).values
    ok = ordered == torch.arange(n, device=perm.device)
    if bool(ok.all()):
        return
    bad = (~ok).reshape(-1, n)
    row = int(bad.any(dim=1).nonzero()[0, 0])
    first = int(bad[row].nonzero()[0, 0])
    value = int(ordered.reshape(-1, n)[row, first])
    reason = (
        f"value {value} repeats"
        if 0 <= value < first
        else (f"value {value} is out of range" if not 0 <= value < n else f"value {first} is missing")
    )
    where_row = f"row {row}: " if perm.dim() == 2 else ""
    raise ValueError(f"{where} is not a permutation of 0..{n - 1} ({where_row}{reason})")


def secret(where: str, value: object) -> bytes:
    """A master secret: bytes (or bytearray) of at least MIN_SECRET_BYTES; never str."""
    if isinstance(value, str):
        raise TypeError(
            f"{where}: secret must be bytes from a CSPRNG (e.g. generate_secret()), not str; a password is not a key"
        )
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{where}: secret must be bytes, got {type(value).__name__}")
    if len(value) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{where}: secret must be at least {MIN_SECRET_BYTES} bytes "
            f"({8 * MIN_SECRET_BYTES} bits), got {len(value)} bytes"
        )
    return bytes(value)


def text(where: str, name: str, value: object) -> bytes:
    """bytes, or str encoded as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{where}: {name} must be bytes or str, got {type(value).__name__}")


def byte_string(where: str, name: str, value: object, length: Optional[int] = None) -> bytes:
    """Bytes-like (bytes, bytearray, memoryview) of ``length`` bytes. An int is a TypeError (never
    ``bytes(n)``, which would be n zero bytes)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{where}: {name} must be bytes, got {type(value).__name__}")
    data = bytes(value)
    if length is not None and len(data) != length:
        raise ValueError(f"{where}: {name} must be exactly {length} bytes, got {len(data)}")
    return data
