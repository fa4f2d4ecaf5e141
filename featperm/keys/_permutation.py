"""What every permutation key shares: its permutation on the CPU, cached device copies, and
constant-time equality. Key material never appears in a repr (subclasses define theirs)."""

from __future__ import annotations

import secrets
from typing import Dict, List, Union

import torch


def random_permutation(n: int) -> List[int]:
    """A uniform permutation of 0..n-1 from the operating system's CSPRNG: Fisher-Yates with
    ``secrets.randbelow``, which has no modulo bias."""
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        p[i], p[j] = p[j], p[i]
    return p


class PermutationKey:
    __slots__ = ("_perm", "_on_device")

    _perm: torch.Tensor
    _on_device: Dict[torch.device, torch.Tensor]

    def _set_permutation(self, perm: torch.Tensor) -> None:
        self._perm = perm  # int64, CPU, validated by the subclass
        self._on_device = {}

    def permutation(self) -> torch.Tensor:
        """A copy of the key material (int64, CPU)."""
        return self._perm.clone()

    def tensor(self, device: Union[torch.device, str, None] = None) -> torch.Tensor:
        """The key as an int64 tensor on ``device``, cached: after the first call for a device,
        using the key there needs no host-to-device copy (e.g. inside CUDA graph capture)."""
        cached = self._on_device.get(device)  # type: ignore[arg-type]
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
            self._perm.numpy().tobytes(), other._perm.numpy().tobytes()
        )

    __hash__ = None  # type: ignore[assignment]  # keys are compared, never hashed
