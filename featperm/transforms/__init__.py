"""Block-wise input transforms with a secret key: the baselines of AprilPyone & Kiya 2021
(SHF = :class:`BlockPixelShuffle`, NP = :class:`NegativePositive`, :class:`FFX`).

Their keys live in :mod:`featperm.keys` and are re-exported here for convenience.
"""

from featperm.keys import FFXKey, NPKey
from featperm.transforms.block_transforms import FFX, BlockPixelShuffle, NegativePositive

__all__ = ["BlockPixelShuffle", "NegativePositive", "NPKey", "FFX", "FFXKey"]
