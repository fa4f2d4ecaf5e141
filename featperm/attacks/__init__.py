"""Attacks on featperm's protections, as functions on tensors that return their results.

* :mod:`~featperm.attacks.known_plaintext` — recover a ShuffleBits key from known words.
* :mod:`~featperm.attacks.bit_cryptanalysis` — ciphertext-only key recovery for ShuffleBits (one
  key over many vectors, or a fresh key per vector), the known-plaintext curves, and what any
  ciphertext leaks (zeros, Hamming weights).
* :mod:`~featperm.attacks.attribute_inference` — the ShuffleBits paper's attribute inference
  (batch norm + linear per attribute, class-weighted cross-entropy, balanced accuracy).
* :mod:`~featperm.attacks.reconstruction` — the paper's image reconstruction (generator, pixel +
  perceptual + least-squares GAN losses, cosine-distance metric).
* :mod:`~featperm.attacks.interception` — what an interceptor holds and how a naive attacker
  reads it as features.

* :mod:`~featperm.attacks.key_estimation` — key estimation against a block-shuffle-protected
  model (AprilPyone & Kiya's Algorithm 1, batched with exactly the literal loop's result) and
  random key search. Layer: attacks may import keys, ops, crypto, nn, models, transforms
and datasets; nothing below imports attacks. Names load on first use, so that ``import
featperm.attacks.known_plaintext`` needs neither the compiled library nor scipy.
"""

from __future__ import annotations

from featperm._lazy import lazy_names

_MODULES = {
    "featperm.attacks.known_plaintext": [
        "bit_key_candidates",
        "consistent_bit_key",
        "recover_bit_key",
        "words_to_recover",
    ],
    "featperm.attacks.bit_cryptanalysis": [
        "BitModel",
        "fit_bit_model",
        "recover_fixed_key",
        "recover_per_vector_keys",
        "log_likelihood",
        "key_positions_recovered",
        "decryption_quality",
        "known_plaintext_curve",
        "pairs_to_functional_key",
        "pairs_to_unique_key",
        "leakage",
        "popcount",
    ],
    "featperm.attacks.attribute_inference": [
        "AttributeInferenceConfig",
        "AttributeHeads",
        "train_attribute_heads",
        "evaluate_attribute_heads",
        "balanced_accuracy",
        "chance_level",
    ],
    "featperm.attacks.reconstruction": [
        "ReconstructionConfig",
        "Generator",
        "Discriminator",
        "PerceptualNetwork",
        "train_reconstruction",
        "reconstruct",
        "cosine_distance",
        "random_pair_cosine_distance",
        "train_perceptual_network",
        "resnet50_perceptual",
    ],
    "featperm.attacks.interception": ["feature_range", "read_as_features", "sealed_ciphertext_words"],
    "featperm.attacks.key_estimation": [
        "KeyEstimationConfig",
        "KeyEstimationResult",
        "estimate_key",
        "estimate_key_literal",
        "random_key_search",
        "positions_recovered",
    ],
}
__all__, __getattr__, __dir__ = lazy_names(__name__, _MODULES, globals())
