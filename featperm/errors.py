"""featperm's own exceptions, under one base class :class:`FeatpermError`.

Each also derives from the built-in exception a caller would expect (``ValueError`` for data that
is wrong, ``RuntimeError`` for a state that forbids the call), so ``except ValueError`` keeps
working. Mistakes in arguments raise plain ``TypeError`` / ``ValueError`` (see
:mod:`featperm._checks` for the rules). This module imports nothing.
"""

from __future__ import annotations

__all__ = [
    "FeatpermError",
    "KeyFileError",
    "AuthenticationError",
    "MalformedSealedError",
    "NonceReuseError",
    "KeyNotLoadedError",
    "KeyExportError",
    "LibraryNotBuiltError",
]


class FeatpermError(Exception):
    """Base class of every exception featperm defines."""


class KeyFileError(FeatpermError, ValueError):
    """A key file is not a featperm key file, is corrupted or truncated, has an unsupported
    format version, or holds a different kind of key than expected."""


class AuthenticationError(FeatpermError, ValueError):
    """The tag does not match: the ciphertext, tag, header, nonce, associated data or key is wrong
    (tampered with or corrupted). No plaintext is released."""


class MalformedSealedError(AuthenticationError):
    """A sealed container cannot even be parsed (bad magic, version, reserved byte, dtype code,
    or a length that disagrees with its header). A subclass of :class:`AuthenticationError`: a
    container changed in transit fails the same way whichever byte was hit."""


class NonceReuseError(FeatpermError, ValueError):
    """A nonce was about to be used a second time with the same key (which would reveal the XOR
    of two plaintexts and allow forgeries); nothing was encrypted."""


class KeyNotLoadedError(FeatpermError, RuntimeError):
    """A keyed module was used before its key was set (e.g. after loading a saved model)."""


class KeyExportError(FeatpermError, RuntimeError):
    """A model holding a protection key was traced or exported (``torch.jit.trace``,
    ``torch.export``) without :func:`featperm.nn.allow_key_export`: the artifact would contain
    the key."""


class LibraryNotBuiltError(FeatpermError, ImportError):
    """featperm's compiled library (``featperm._C``) is missing or was built against another torch."""
