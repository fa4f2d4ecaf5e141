"""Attacks on featperm's protections, as functions on tensors that return their results.

* :mod:`~featperm.attacks.known_plaintext` — recover a ShuffleBits key from known words.

Coming with the experiment issues: attribute inference and reconstruction from deep features
(ShuffleBits paper), key estimation and fine-tuning of block-shuffle-protected models
(AprilPyone & Kiya). Layer: attacks may import keys, ops, crypto, nn, models, transforms and
datasets; nothing below imports attacks.
"""

from featperm.attacks.known_plaintext import bit_key_candidates, consistent_bit_key, recover_bit_key, words_to_recover

__all__ = ["bit_key_candidates", "consistent_bit_key", "recover_bit_key", "words_to_recover"]
