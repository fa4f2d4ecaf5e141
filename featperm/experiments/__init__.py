"""Experiments: each attack of :mod:`featperm.attacks` run with a small config (a dataclass) and a
seed, writing ``results.json``.

* :mod:`~featperm.experiments.feature_attacks` — the ShuffleBits paper's attacks (attribute
  inference, reconstruction) and the cryptanalysis of ShuffleBits, on plain, ShuffleBits and
  sealed features (:func:`run_feature_attacks`, ``featperm attack-features``).
* :mod:`~featperm.experiments.extractor` — the proprietary re-ID feature extractor, trained and
  cached by its settings and seed.
* :mod:`~featperm.experiments.model_protection` — AprilPyone & Kiya's Tables I-III on a
  block-shuffle-protected ResNet-18 and the input-transform baselines, in resumable stages
  (:func:`run_model_protection`, ``featperm protect``).
* :mod:`~featperm.experiments.distributed` — ``torchrun`` (DDP) for the experiments: process
  group set-up from the launcher's environment, rank helpers.

Layer: experiments may import everything below them (keys, ops, crypto, nn, models, transforms,
datasets, attacks); only report and the command line import experiments.
"""

__all__: list = []
