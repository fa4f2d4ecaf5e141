"""Attribute inference from feature vectors (Ni, Huttunen, Rahtu 2021, section 4).

The attacker holds feature vectors of its own labelled images (requested in plain form from the
feature API) and trains, per attribute, one batch-norm layer and one linear layer on them with a
class-weighted cross-entropy (weights inversely proportional to the class counts). It then reads
the attributes of intercepted users' vectors. Scores are balanced accuracies (mean recall over the
classes present), whose chance level is 1/classes.

All heads train together in one pass: every head's batch norm sees the same batch, so the batch
statistics are shared and only the heads' affine parameters differ — one normalisation, then one
batched matrix product for all heads (classes padded to the widest head and masked).

Model selection: the epoch with the best mean balanced accuracy on a validation split carved from
the attacker's own data, split by identity when identities are given. (The authors selected on the
test split; that is optimistic, and not what an attacker can do.)

Shapes: features (N, D) float; labels ``{name: (N,) int64}`` with -1 = not annotated.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from featperm import _checks

__all__ = [
    "AttributeInferenceConfig",
    "AttributeHeads",
    "AttributeInferenceResult",
    "train_attribute_heads",
    "evaluate_attribute_heads",
    "predict_attributes",
    "mean_score",
    "summarise",
    "bootstrap_interval",
    "balanced_accuracy",
    "chance_level",
    "identity_split",
]

ProgressCallback = Callable[[int, int], None]


@dataclasses.dataclass
class AttributeInferenceConfig:
    """The authors' settings as defaults: Adam lr 5e-5, divided by 5 after half of 100 epochs,
    batch 128. ``validation_fraction`` of the attacker's data (by identity) selects the epoch."""

    epochs: int = 100
    lr: float = 5e-5
    lr_drop_factor: float = 5.0
    batch_size: int = 128
    validation_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        where = "AttributeInferenceConfig"
        _checks.integer(where, "epochs", self.epochs, minimum=1)
        _checks.integer(where, "batch_size", self.batch_size, minimum=1)
        _checks.integer(where, "seed", self.seed)
        for name in ("lr", "lr_drop_factor", "validation_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{where}: {name} must be a number, got {type(value).__name__}")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(f"{where}: validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not float(self.lr) > 0.0:
            raise ValueError(f"{where}: lr must be > 0, got {self.lr}")
        if not float(self.lr_drop_factor) > 0.0:
            raise ValueError(f"{where}: lr_drop_factor must be > 0, got {self.lr_drop_factor}")


class AttributeHeads(nn.Module):
    """One BatchNorm1d + Linear per attribute, computed for all attributes at once.

    ``forward(features)`` (N, D) returns ``{name: (N, classes[name]) logits}``."""

    padding: torch.Tensor  # buffer: True where a head has fewer classes than the widest

    def __init__(self, feature_dim: int, classes: Mapping[str, int]):
        super().__init__()
        self.names: List[str] = list(classes)
        self.num_classes: List[int] = [int(classes[n]) for n in self.names]
        heads, widest = len(self.names), max(self.num_classes)
        self.norm = nn.BatchNorm1d(feature_dim, affine=False)  # shared batch statistics
        self.scale = nn.Parameter(torch.ones(heads, feature_dim))
        self.shift = nn.Parameter(torch.zeros(heads, feature_dim))
        weight = torch.empty(heads, widest, feature_dim)
        bound = 1.0 / feature_dim**0.5  # nn.Linear's initialisation, per head
        nn.init.uniform_(weight, -bound, bound)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(heads, widest).uniform_(-bound, bound))
        mask = torch.zeros(heads, widest, dtype=torch.bool)
        for index, count in enumerate(self.num_classes):
            mask[index, count:] = True
        self.register_buffer("padding", mask)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, heads, widest) logits; padded classes are -inf."""
        z = self.norm(features).unsqueeze(1) * self.scale + self.shift  # (N, heads, D)
        out = torch.einsum("nhd,hcd->nhc", z, self.weight) + self.bias
        return out.masked_fill(self.padding, float("-inf"))

    def forward(self, features: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(N, D) float features -> ``{name: (N, classes[name]) logits}`` (no padding classes)."""
        out = self.logits(features)
        return {name: out[:, i, :c] for i, (name, c) in enumerate(zip(self.names, self.num_classes))}


@dataclasses.dataclass
class AttributeInferenceResult:
    """The trained heads, the selected epoch and its validation scores (``validation`` and
    ``history`` are empty when there was no validation split: then the last epoch is kept)."""

    heads: AttributeHeads
    best_epoch: int
    validation: Dict[str, float]
    history: List[float]


def chance_level(num_classes: int) -> float:
    """1/classes: the expected balanced accuracy of a predictor that ignores its input (a uniform
    random guess, or a constant class drawn at random), whichever classes the labels hold."""
    return 1.0 / _checks.integer("chance_level", "num_classes", num_classes, minimum=1)


def balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Mean recall over the classes present in ``labels`` (labels of -1 are ignored); NaN when
    no sample is annotated."""
    where = "balanced_accuracy"
    predicted, labels = _checks.tensor(where, "predicted", predicted), _checks.tensor(where, "labels", labels)
    num_classes = _checks.integer(where, "num_classes", num_classes, minimum=1)
    if predicted.shape != labels.shape:
        raise ValueError(f"{where}: predicted {tuple(predicted.shape)} and labels {tuple(labels.shape)} differ")
    if labels.numel() and int(labels.max()) >= num_classes:
        raise ValueError(f"{where}: labels hold class {int(labels.max())} but num_classes is {num_classes}")
    keep = labels >= 0
    predicted, labels = predicted[keep], labels[keep]
    if labels.numel() == 0:
        return float("nan")
    hits = torch.zeros(num_classes, dtype=torch.float64, device=labels.device)
    totals = torch.zeros_like(hits)
    totals.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float64))
    hits.index_add_(0, labels, (predicted == labels).to(torch.float64))
    present = totals > 0
    return float((hits[present] / totals[present]).mean())


def identity_split(
    count: int, fraction: float, seed: int, identities: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) index tensors: a seeded ``fraction`` of the identities (or of the
    samples, when no identities are given) goes to validation."""
    generator = torch.Generator().manual_seed(seed)
    if identities is None:
        order = torch.randperm(count, generator=generator)
        n_val = round(count * fraction)
        return order[n_val:].sort().values, order[:n_val].sort().values
    ids = identities.cpu()
    unique = ids.unique()
    chosen = unique[torch.randperm(unique.numel(), generator=generator)[: round(unique.numel() * fraction)]]
    is_val = torch.isin(ids, chosen)
    return (~is_val).nonzero().flatten(), is_val.nonzero().flatten()


def _class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights inversely proportional to the class counts (mean weight over samples = 1);
    absent classes get weight 0."""
    counts = torch.bincount(labels[labels >= 0], minlength=num_classes).to(torch.float32)
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    return weights


def _check_inputs(where: str, features: object, labels: object) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    features = _checks.tensor(where, "features", features)
    if features.dim() != 2 or not features.is_floating_point():
        raise ValueError(
            f"{where}: features must be a floating (N, D) tensor, got {features.dtype} {tuple(features.shape)}"
        )
    if not isinstance(labels, Mapping) or not labels:
        raise TypeError(f"{where}: labels must be a non-empty mapping of attribute name to (N,) int64 tensor")
    out = {}
    for name, value in labels.items():
        value = _checks.tensor(where, f"labels[{name!r}]", value)
        if value.shape != (features.shape[0],) or value.dtype != torch.int64:
            raise ValueError(
                f"{where}: labels[{name!r}] must be int64 of shape ({features.shape[0]},), "
                f"got {value.dtype} {tuple(value.shape)}"
            )
        out[name] = value.to(features.device)
    return features, out


def train_attribute_heads(
    features: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    num_classes: Mapping[str, int],
    config: Optional[AttributeInferenceConfig] = None,
    *,
    identities: Optional[torch.Tensor] = None,
    progress: Optional[ProgressCallback] = None,
) -> AttributeInferenceResult:
    """Train the attribute heads on the attacker's own (features, labels).

    Args:
        features: (N, D) float features of the attacker's images (any device; training runs there).
        labels: ``{name: (N,) int64}`` class indices, -1 = not annotated.
        num_classes: ``{name: classes}`` for every attribute of ``labels``.
        config: :class:`AttributeInferenceConfig` (defaults: the authors' settings).
        identities: (N,) identity of each sample: the validation split keeps identities apart.
        progress: called with (epoch, epochs) after each epoch.
    """
    where = "train_attribute_heads"
    config = config or AttributeInferenceConfig()
    features, labels = _check_inputs(where, features, labels)
    missing = [n for n in labels if n not in num_classes]
    if missing:
        raise ValueError(f"{where}: num_classes has no entry for {missing}")
    for name in labels:
        _checks.integer(where, f"num_classes[{name!r}]", num_classes[name], minimum=2)
        if labels[name].numel() and int(labels[name].max()) >= num_classes[name]:
            raise ValueError(
                f"{where}: labels[{name!r}] has class {int(labels[name].max())} but num_classes[{name!r}] is "
                f"{num_classes[name]}"
            )
    torch.manual_seed(config.seed)
    train_index, val_index = identity_split(features.shape[0], config.validation_fraction, config.seed, identities)
    if train_index.numel() < 2:
        raise ValueError(
            f"{where}: {train_index.numel()} training sample(s) after holding out "
            f"{config.validation_fraction:.0%} for validation; need at least 2"
        )
    train_index, val_index = train_index.to(features.device), val_index.to(features.device)
    names = list(labels)
    label_matrix = torch.stack([labels[n] for n in names], dim=1)  # (N, heads)
    heads = AttributeHeads(features.shape[1], {n: num_classes[n] for n in names}).to(features.device)
    weights = torch.stack(
        [
            F.pad(_class_weights(labels[n][train_index], num_classes[n]), (0, max(heads.num_classes) - num_classes[n]))
            for n in names
        ]
    ).to(features.device)  # (heads, widest)
    optimizer = torch.optim.Adam(heads.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=max(1, config.epochs // 2), gamma=1.0 / config.lr_drop_factor
    )
    generator = torch.Generator().manual_seed(config.seed + 1)
    best_score, best_epoch, best_state = -1.0, 0, copy.deepcopy(heads.state_dict())
    best_val: Dict[str, float] = {}
    history: List[float] = []
    x_train, y_train = features[train_index], label_matrix[train_index]
    for epoch in range(1, config.epochs + 1):
        heads.train()
        order = torch.randperm(x_train.shape[0], generator=generator).to(features.device)
        for start in range(0, order.numel(), config.batch_size):
            batch = order[start : start + config.batch_size]
            if batch.numel() < 2:  # batch norm needs two samples
                continue
            logits = heads.logits(x_train[batch])  # (B, heads, widest)
            targets = y_train[batch]  # (B, heads)
            loss = _weighted_cross_entropy(logits, targets, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        if val_index.numel():
            scores = evaluate_attribute_heads(heads, features[val_index], {n: labels[n][val_index] for n in names})
            finite = [s for s in scores.values() if s == s]
            mean = sum(finite) / len(finite) if finite else 0.0
            history.append(mean)
            if mean > best_score:
                best_score, best_epoch, best_state, best_val = mean, epoch, copy.deepcopy(heads.state_dict()), scores
        else:  # no validation data (fraction 0, or too few identities to hold any out): the last epoch
            best_epoch, best_state = epoch, copy.deepcopy(heads.state_dict())
        if progress is not None:
            progress(epoch, config.epochs)
    heads.load_state_dict(best_state)
    heads.eval()
    return AttributeInferenceResult(heads=heads, best_epoch=best_epoch, validation=best_val, history=history)


def _weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum over heads of each head's class-weighted cross-entropy (mean over its annotated samples,
    weighted as torch's cross_entropy(weight=...) does)."""
    valid = targets >= 0
    safe = targets.clamp_min(0)
    log_probs = torch.log_softmax(logits, dim=-1)  # -inf in padding, never gathered
    picked = log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (B, heads)
    w = weights.gather(1, safe.t()).t() * valid  # (B, heads)
    return (-(picked * w).sum(0) / w.sum(0).clamp_min(1e-12)).sum()


@torch.no_grad()
def predict_attributes(
    heads: AttributeHeads, features: torch.Tensor, batch_size: int = 4096
) -> Dict[str, torch.Tensor]:
    """``{name: (N,) predicted class}`` for (N, D) features."""
    heads.eval()
    chunks = [heads.logits(features[i : i + batch_size]).argmax(-1) for i in range(0, features.shape[0], batch_size)]
    predicted = torch.cat(chunks) if chunks else torch.empty(0, len(heads.names), dtype=torch.int64)
    return {name: predicted[:, i] for i, name in enumerate(heads.names)}


def evaluate_attribute_heads(
    heads: AttributeHeads, features: torch.Tensor, labels: Mapping[str, torch.Tensor]
) -> Dict[str, float]:
    """Balanced accuracy per attribute of the heads on (features, labels)."""
    features, labels = _check_inputs("evaluate_attribute_heads", features, labels)
    was_training = heads.training
    predicted = predict_attributes(heads, features)
    heads.train(was_training)
    classes = dict(zip(heads.names, heads.num_classes))
    return {name: balanced_accuracy(predicted[name], labels[name], classes[name]) for name in labels}


def bootstrap_interval(
    predicted: Mapping[str, torch.Tensor],
    labels: Mapping[str, torch.Tensor],
    num_classes: Mapping[str, int],
    groups: Optional[torch.Tensor] = None,
    *,
    reps: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> Tuple[float, float]:
    """A percentile bootstrap interval of the mean balanced accuracy over attributes.

    Resamples whole ``groups`` (e.g. identities: attributes are constant per identity, so the
    independent samples are the identities, not the images) with replacement, or single samples
    when no groups are given. ``predicted`` and ``labels``: ``{name: (N,)}``."""
    names = list(labels)
    n = int(labels[names[0]].shape[0])
    if n == 0:
        return float("nan"), float("nan")
    ids = torch.arange(n) if groups is None else torch.unique(groups.cpu(), return_inverse=True)[1]
    members = [torch.nonzero(ids == g).flatten() for g in range(int(ids.max()) + 1)]
    generator = torch.Generator().manual_seed(seed)
    device = labels[names[0]].device
    means = []
    for _ in range(reps):
        pick = torch.randint(len(members), (len(members),), generator=generator)
        rows = torch.cat([members[int(g)] for g in pick]).to(device)
        scores = [balanced_accuracy(predicted[k][rows], labels[k][rows], num_classes[k]) for k in names]
        finite = [v for v in scores if v == v]
        if finite:
            means.append(sum(finite) / len(finite))
    if not means:
        return float("nan"), float("nan")
    ordered = torch.tensor(sorted(means), dtype=torch.float64)
    tail = (1 - level) / 2
    return float(torch.quantile(ordered, tail)), float(torch.quantile(ordered, 1 - tail))


def mean_score(scores: Mapping[str, float]) -> float:
    """Mean of the finite per-attribute scores."""
    finite = [s for s in scores.values() if s == s]
    return sum(finite) / len(finite) if finite else float("nan")


def summarise(scores: Mapping[str, float], names: Sequence[str]) -> Dict[str, object]:
    """``{"mean_balanced_accuracy": f, "per_attribute": {name: f}}`` in ``names`` order."""
    return {"mean_balanced_accuracy": mean_score(scores), "per_attribute": {n: scores[n] for n in names}}
