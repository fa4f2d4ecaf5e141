"""What every featperm key shares: its permutation on the CPU, cached device copies, and
constant-time equality. Key material never appears in a repr (subclasses define theirs)."""

from __future__ import annotations

import secrets
from typing import List, Union

import torch


def random_permutation(n: int) -> List[int]:
    """A uniform permutation of 0..n-1 from the operating system's CSPRNG: Fisher-Yates with
    ``secrets.randbelow``, which has no modulo bias."""
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        p[i], p[j] = p[j], p[i]
    return p


def check_permutation_rows(perm: torch.Tensor, what: str) -> None:
    """Raise ValueError unless every row (the last dimension) of ``perm`` is a permutation of
    0..n-1, naming the first bad row (for 2-D keys) and what is wrong with it. One host
    synchronisation for a device tensor."""
    n = perm.shape[-1]
    ordered = torch.sort(perm, dim=-1).values
    ok = ordered == torch.arange(n, device=perm.device)
    if bool(ok.all()):
        return
    bad = (~ok).reshape(-1, n)
    row = int(bad.any(dim=1).nonzero()[0, 0])
    first = int(bad[row].nonzero()[0, 0])
    value = int(ordered.reshape(-1, n)[row, first])
    reason = f"value {value} repeats" if 0 <= value < first else \
        (f"value {value} is out of range" if not 0 <= value < n else f"value {first} is missing")
    where = f"row {row}: " if perm.dim() == 2 else ""
    raise ValueError(f"{what} is not a permutation of 0..{n - 1} ({where}{reason})")


class PermutationKey:
    __slots__ = ("_perm", "_on_device")

    def _set_permutation(self, perm: torch.Tensor) -> None:
        self._perm = perm  # int64, CPU, validated by the subclass
        self._on_device = {}

    def permutation(self) -> torch.Tensor:
        """A copy of the key material (int64, CPU)."""
        return self._perm.clone()

    def tensor(self, device: Union[torch.device, str, None] = None) -> torch.Tensor:
        """The key as an int64 tensor on ``device``, cached: after the first call for a device,
        using the key there needs no host-to-device copy (e.g. inside CUDA graph capture)."""
        cached = self._on_device.get(device)
        if cached is not None:  # fast path: a torch.device seen before (e.g. x.device)
            return cached
        device = torch.device("cpu" if device is None else device)
        if device.type == "cpu":
            return self._perm
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        cached = self._on_device.get(device)
        if cached is None:
            cached = self._perm.to(device)
            self._on_device[device] = cached
        return cached

    def _same_permutation(self, other: "PermutationKey") -> bool:
        return self._perm.shape == other._perm.shape and secrets.compare_digest(
            self._perm.numpy().tobytes(), other._perm.numpy().tobytes())

    __hash__ = None  # keys are compared, never hashed (a hash would be derived from the key)
