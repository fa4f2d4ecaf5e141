"""Datasets for featperm's experiments (the next issues fill this room).

Planned: a procedurally drawn pedestrian-attribute dataset (built in, no download), loaders of
Market-1501 / DukeMTMC-reID with their attribute files and of CIFAR-10 / ImageFolder from a
folder the user gives, and user feature files. Nothing is ever downloaded at run time.

Layer: datasets may import keys, ops, crypto, nn, models and transforms; only attacks,
experiments, report and the command line import datasets.
"""

__all__: list = []
