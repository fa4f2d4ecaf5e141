"""Experiments: each attack of :mod:`featperm.attacks` run with a small config (a dataclass) and a
seed, writing ``results.json`` (the next issues fill this room: the ShuffleBits paper's attribute
inference and reconstruction, AprilPyone & Kiya's Tables I-III).

Layer: experiments may import everything below them (keys, ops, crypto, nn, models,
transforms, datasets, attacks); only report and the command line import experiments.
"""

__all__: list = []
