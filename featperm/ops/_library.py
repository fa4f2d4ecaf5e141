"""Loads featperm's compiled library, which registers the torch.ops.featperm operators."""

from __future__ import annotations

import torch

from featperm.errors import LibraryNotBuiltError

_ERROR = None
try:
    from featperm import _C  # noqa: F401  (importing registers the ops)
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    _ERROR = exc


def require_library() -> None:
    """Raise an actionable error if the compiled library is missing or unusable."""
    if _ERROR is None:
        return
    message = str(_ERROR)
    if "undefined symbol" in message or "version" in message:
        hint = f"it was built against a different torch than the one installed ({torch.__version__}); rebuild it"
    else:
        hint = "it has not been built"
    raise LibraryNotBuiltError(
        f"featperm's compiled library featperm._C could not be loaded ({message}): {hint}. "
        "From a checkout, run `make build` (or `pip install --no-build-isolation -e .`) with the "
        "torch you will use installed first; set FEATPERM_CUDA=0 for a CPU-only build. "
        "featperm.keys works without it."
    ) from _ERROR


require_library()


def has_cuda_kernels() -> bool:
    """True when this build of featperm contains the CUDA kernels (independent of any GPU)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("featperm::shuffle_bits", "CUDA")
