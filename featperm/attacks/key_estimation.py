"""Key estimation for block-shuffle-protected models (AprilPyone & Kiya 2021, Algorithm 1).

A model protected with :func:`featperm.protect` applies a secret block shuffle after one
submodule. An attacker who holds the model (but not the key) and a few labelled images searches
for a key that restores accuracy. The shuffle sits at a known point, so the activations below it
are computed once:

* ``activations`` (N, C, H, W): the output of the protected submodule for the N attack images,
  before the shuffle (:meth:`featperm.models.ResNetCifar.features_at` for the CIFAR ResNet);
* ``labels`` (N,): their integer labels;
* ``above(shuffled) -> logits``: the rest of the model, (B, C, H, W) -> (B, classes)
  (:meth:`~featperm.models.ResNetCifar.forward_from`), in eval mode.

The paper's search (the authors' ``heuristic_key_search``): from a key and acc = 0, for T
rounds, for every pair i < j of the C*M*M key positions in order: swap key[i] and key[j]; count
the attack images the model classifies correctly with that key; keep the swap if the count is
>= acc (ties are kept: the search walks plateaus), else revert it.

* :func:`estimate_key_literal` — that loop as written, one forward per candidate swap (the
  reference).
* :func:`estimate_key` — the same search, batched, returning exactly the same key, count and
  accepted swaps: several consecutive candidate swaps are scored against the current key in one
  forward of ``above`` (S shuffled copies of the activations along the batch, built by one
  gather); the first candidate in loop order whose count is >= acc is the swap the literal loop
  accepts (it rejects all before it), and the candidates after it were scored against a key that
  is now stale, so the walk resumes right after it. Exact shortcuts: candidates are scored on
  chunks of images, and one whose count so far plus the images left is below acc is dropped (it
  can never be accepted); once a candidate is sure to be accepted, the later ones are dropped.
  The images are scored in order of the current key's margin (misclassified first), so that bad
  candidates are dropped after few images; the order changes only the cost, never a count.
  With ``split_across_processes=True`` (under ``torchrun``: an initialised default process
  group), every process scores its share of each batch of candidates and the counts are
  gathered, so all processes walk the same search and return the same key as one process.
* :func:`random_key_search` — the best of many random keys (the paper's baseline).
* :func:`positions_recovered` — the fraction of key positions an estimate got right.

Exactness assumes what the literal loop assumes of ``above``: each image's logits do not depend
on the other images in the batch (eval mode; no batch statistics). With float32 kernels that pick
algorithms by batch size, logits can differ in the last bits between batch sizes, which can flip
a prediction that is an exact tie to rounding; float64 models agree exactly in practice.
Predictions are ``logits.argmax(1)`` (the first maximum) in both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import distributed as dist
from torch import nn

from featperm import _checks
from featperm.keys import BlockKey
from featperm.keys.block_key import check_block_size
from featperm.ops import block_shuffle

__all__ = [
    "KeyEstimationConfig",
    "KeyEstimationResult",
    "estimate_key_literal",
    "estimate_key",
    "random_key_search",
    "random_block_key",
    "positions_recovered",
    "shuffle_many",
]

Above = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[Dict[str, Any]], None]


@dataclass
class KeyEstimationConfig:
    """Settings of :func:`estimate_key`. None of them changes the result, only its cost.

    Attributes:
        rounds: T, sweeps over all pairs i < j of the key positions.
        candidates_per_batch: the most consecutive candidate swaps scored together (S).
        seed: seeds the random initial key when :func:`estimate_key` is given none.
        image_batch: the most images in one forward of ``above`` (S_live x chunk; bounds memory).
        image_chunk: the most images per candidate per forward, the granularity of the early
            rejection (smaller: bad candidates are dropped sooner, in more, smaller forwards).
        early_rejection: drop candidates that can no longer be accepted (exact; False scores
            every candidate of a batch on every image, up to the first sure acceptance).
        adaptive: size each batch from where the last acceptance fell (2x its position, doubled
            after a batch without one, at most candidates_per_batch), so that few candidates are
            scored against a stale key while swaps are often accepted.
        max_candidates: stop after this many candidate swaps (counted as ``evaluated``), e.g.
            to time the first K swaps of a sweep; None: all rounds.
    """

    rounds: int = 10
    candidates_per_batch: int = 64
    seed: int = 0
    image_batch: int = 1024
    image_chunk: int = 64
    early_rejection: bool = True
    adaptive: bool = True
    max_candidates: Optional[int] = None


@dataclass
class KeyEstimationResult:
    """What a key search returns.

    Attributes:
        key: the final key.
        correct: attack images (of N) classified correctly with it (the last accepted count; 0
            if no swap was accepted).
        accepted: swaps kept.
        evaluated: candidate swaps walked, counted as the literal loop counts them
            (rounds * P*(P-1)/2 for P = C*M*M), whatever was skipped exactly.
        forward_images: images pushed through ``above`` (the cost).
        seconds: wall-clock time.
        history: one dict per round: ``round`` (1-based), ``correct``, ``accepted`` and
            ``evaluated`` (cumulative), ``forward_images`` (cumulative), ``seconds``.
    """

    key: BlockKey
    correct: int
    accepted: int
    evaluated: int
    forward_images: int
    seconds: float
    history: List[Dict[str, Any]] = field(default_factory=list)


# -- argument checks --------------------------------------------------------------------------


def _check_data(where: str, activations: object, labels: object, above: object) -> Tuple[torch.Tensor, torch.Tensor]:
    acts = _checks.tensor(where, "activations", activations)
    if acts.dim() != 4 or acts.shape[0] < 1:
        raise ValueError(f"{where}: activations must have shape (N, C, H, W) with N >= 1, got {tuple(acts.shape)}")
    if not acts.is_floating_point():
        raise TypeError(f"{where}: activations must be a floating-point tensor, got dtype {acts.dtype}")
    lab = _checks.tensor(where, "labels", labels)
    if lab.dtype.is_floating_point or lab.dtype.is_complex or lab.dtype == torch.bool:
        raise TypeError(f"{where}: labels must be an integer tensor, got dtype {lab.dtype}")
    if lab.shape != (acts.shape[0],):
        raise ValueError(
            f"{where}: labels must have shape (N,) = ({acts.shape[0]},) to match activations, got {tuple(lab.shape)}"
        )
    if lab.device != acts.device:
        raise ValueError(f"{where}: labels are on {lab.device} but activations on {acts.device}")
    if not callable(above):
        raise TypeError(f"{where}: above must be callable (shuffled activations -> logits), got {type(above).__name__}")
    owner = above if isinstance(above, nn.Module) else getattr(above, "__self__", None)
    if isinstance(owner, nn.Module) and owner.training:
        raise ValueError(
            f"{where}: above belongs to a module in training mode (batch statistics make each "
            "image's prediction depend on the batch); call .eval() first"
        )
    return acts, lab.to(torch.int64)


def _check_key(where: str, name: str, key: object, acts: torch.Tensor) -> BlockKey:
    if not isinstance(key, BlockKey):
        raise TypeError(f"{where}: {name} must be a featperm.BlockKey, got {type(key).__name__}")
    _check_geometry(where, name, key.channels, key.block_size, acts)
    return key


def _check_geometry(where: str, name: str, channels: int, block_size: int, acts: torch.Tensor) -> None:
    _, c, h, w = acts.shape
    if c != channels:
        raise ValueError(f"{where}: {name} is for channels={channels} but activations have {c} channels")
    if h % block_size or w % block_size:
        raise ValueError(f"{where}: {name}'s block_size {block_size} must divide the activations' H={h} and W={w}")


def _check_config(where: str, config: object) -> KeyEstimationConfig:
    if not isinstance(config, KeyEstimationConfig):
        raise TypeError(f"{where}: config must be a KeyEstimationConfig, got {type(config).__name__}")
    _checks.integer(where, "config.rounds", config.rounds, minimum=0)
    _checks.integer(where, "config.candidates_per_batch", config.candidates_per_batch, minimum=1)
    _checks.integer(where, "config.seed", config.seed)
    _checks.integer(where, "config.image_batch", config.image_batch, minimum=1)
    _checks.integer(where, "config.image_chunk", config.image_chunk, minimum=1)
    if config.max_candidates is not None:
        _checks.integer(where, "config.max_candidates", config.max_candidates, minimum=0)
    for name in ("early_rejection", "adaptive"):
        if not isinstance(getattr(config, name), bool):
            raise TypeError(f"{where}: config.{name} must be a bool, got {type(getattr(config, name)).__name__}")
    return config


def _check_progress(where: str, progress: object) -> Optional[Progress]:
    if progress is not None and not callable(progress):
        raise TypeError(f"{where}: progress must be callable or None, got {type(progress).__name__}")
    return progress


def _logits(where: str, above: Above, x: torch.Tensor, expected_rows: int) -> torch.Tensor:
    out = above(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != expected_rows:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{where}: above must return logits of shape (B, classes) = ({expected_rows}, ...), got {shape}"
        )
    return out


# -- keys -------------------------------------------------------------------------------------


def random_block_key(*, channels: int, block_size: int, seed: int) -> BlockKey:
    """A reproducible random key (torch.randperm from a generator seeded with ``seed``): a
    starting point for a search, NOT a secret key (use :meth:`BlockKey.generate` for those)."""
    c = _checks.integer("random_block_key", "channels", channels, minimum=1)
    m = check_block_size("random_block_key", block_size)
    s = _checks.integer("random_block_key", "seed", seed)
    g = torch.Generator().manual_seed(s)
    return BlockKey(torch.randperm(c * m * m, generator=g), channels=c, block_size=m)


def positions_recovered(estimated: BlockKey, true: BlockKey) -> float:
    """The fraction of the C*M*M key positions k with ``estimated[k] == true[k]`` (1.0: the key
    itself). Keys of different shapes raise ValueError."""
    for name, key in (("estimated", estimated), ("true", true)):
        if not isinstance(key, BlockKey):
            raise TypeError(f"positions_recovered: {name} must be a featperm.BlockKey, got {type(key).__name__}")
    if (estimated.channels, estimated.block_size) != (true.channels, true.block_size):
        raise ValueError(
            f"positions_recovered: estimated is for channels={estimated.channels}, block_size="
            f"{estimated.block_size} but true for channels={true.channels}, block_size={true.block_size}"
        )
    a, b = estimated.permutation(), true.permutation()
    return float((a == b).sum().item()) / a.numel()


def _pairs(p: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """The candidate swaps (i, j), i < j, in the literal loop's order."""
    i, j = torch.triu_indices(p, p, offset=1, device=device)
    return i, j


class _Shuffler:
    """Applies many keys to (N, C, H, W) activations with one gather.

    For a flat feature index f = (ch, h, w), the block shuffle reads
    ``base[f] + offset[key[pos[f]]]``: ``pos[f]`` is f's position in its block
    (k = (r*M + c)*C + ch), ``base[f]`` the flat index of its block's corner and ``offset[k]``
    position k's flat offset from the corner. So S keys (S, P) give the read index (S, C*H*W),
    and ``gather`` builds the S shuffled copies (S*n, C, H, W) of n images at once.
    """

    def __init__(self, channels: int, height: int, width: int, block_size: int, device: torch.device):
        c, h, w, m = channels, height, width, block_size
        ch = torch.arange(c, device=device).view(c, 1, 1)
        row = torch.arange(h, device=device).view(1, h, 1)
        col = torch.arange(w, device=device).view(1, 1, w)
        self.pos = (((row % m) * m + col % m) * c + ch).reshape(-1)
        self.base = ((row - row % m) * w + (col - col % m) + 0 * ch).reshape(-1)
        k = torch.arange(c * m * m, device=device)
        self.offset = (k % c) * (h * w) + (k // c // m) * w + (k // c) % m
        self.shape = (c, h, w)

    def index(self, keys: torch.Tensor) -> torch.Tensor:
        """(S, P) keys -> (S, C*H*W) read indices."""
        return self.base + self.offset[keys[:, self.pos]]

    def apply(self, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """flat (n, C*H*W) images, index (S, C*H*W) -> (S*n, C, H, W), copy s = image block s."""
        s, n, f = index.shape[0], flat.shape[0], flat.shape[1]
        out = torch.gather(flat.unsqueeze(0).expand(s, n, f), 2, index.unsqueeze(1).expand(s, n, f))
        return out.view(s * n, *self.shape)


def shuffle_many(activations: torch.Tensor, keys: torch.Tensor, block_size: int) -> torch.Tensor:
    """``block_shuffle`` of ``activations`` (N, C, H, W) by each of S keys at once.

    ``keys`` (S, C*M*M) integer permutations (not checked: the search's own keys); returns
    (S*N, C, H, W), rows s*N .. s*N+N-1 = ``block_shuffle(activations, keys[s])``."""
    acts = _checks.tensor("shuffle_many", "activations", activations)
    if acts.dim() != 4:
        raise ValueError(f"shuffle_many: activations must have shape (N, C, H, W), got {tuple(acts.shape)}")
    m = check_block_size("shuffle_many", block_size)
    n, c, h, w = acts.shape
    if h % m or w % m:
        raise ValueError(f"shuffle_many: block_size {m} must divide H={h} and W={w}")
    k = _checks.tensor("shuffle_many", "keys", keys)
    if k.dim() != 2 or k.shape[1] != c * m * m:
        raise ValueError(f"shuffle_many: keys must have shape (S, C*M*M) = (S, {c * m * m}), got {tuple(k.shape)}")
    shuffler = _Shuffler(c, h, w, m, acts.device)
    return shuffler.apply(acts.reshape(n, -1), shuffler.index(k.to(acts.device, torch.int64)))


# -- scoring candidates on chunks of images ---------------------------------------------------


class _Scorer:
    """Counts correct predictions of ``above`` under many keys, chunk by chunk, with exact early
    decisions. Images are scored in ``self.order`` (by the current key's margin)."""

    def __init__(
        self,
        where: str,
        acts: torch.Tensor,
        labels: torch.Tensor,
        above: Above,
        block_size: int,
        image_batch: int,
        image_chunk: int,
        early_rejection: bool,
    ):
        n, c, h, w = acts.shape
        self.where = where
        self.flat = acts.reshape(n, -1)
        self.labels = labels
        self.above = above
        self.shuffler = _Shuffler(c, h, w, block_size, acts.device)
        self.n = n
        self.image_batch = image_batch
        self.image_chunk = image_chunk
        self.early_rejection = early_rejection
        self.order = torch.arange(n, device=acts.device)
        self.forward_images = 0

    def reorder(self, margins: torch.Tensor) -> None:
        """Score images by ascending margin from now on (margins indexed by image)."""
        self.order = torch.argsort(margins, stable=True)

    def score(self, keys: torch.Tensor, need: int, first: bool) -> Tuple[List[Optional[int]], Optional[torch.Tensor]]:
        """Counts of the S candidate ``keys`` (S, P) that can reach ``need``.

        Returns (counts, margins): counts[s] is candidate s's correct count, or None where it was
        dropped: its count is certainly < need (early rejection), or, with ``first``, an earlier
        candidate is certainly >= need (only the first such one matters). ``margins`` (S, N),
        indexed by image, hold each fully scored candidate's margins (logit of the label minus
        the largest other logit).
        """
        s_total = keys.shape[0]
        index = self.shuffler.index(keys)
        live = list(range(s_total))
        counts = [0] * s_total
        margins = torch.zeros(s_total, self.n, dtype=torch.float32, device=self.flat.device)
        done = 0
        while live and done < self.n:
            # No candidate can be rejected before it has missed n - need + 1 images: score at
            # least that many in the first chunk (the current key's misses come first).
            target = max(self.image_chunk, self.n - need + 1 - done)
            chunk = min(self.n - done, target, max(1, self.image_batch // len(live)))
            images = self.order[done : done + chunk]
            x = self.shuffler.apply(self.flat.index_select(0, images), index[live])
            logits = _logits(self.where, self.above, x, len(live) * chunk).view(len(live), chunk, -1)
            self.forward_images += len(live) * chunk
            lab = self.labels.index_select(0, images)
            correct = (logits.argmax(2) == lab).sum(1).tolist()
            true = logits.gather(2, lab.view(1, chunk, 1).expand(len(live), chunk, 1)).squeeze(2)
            other = logits.scatter(2, lab.view(1, chunk, 1).expand(len(live), chunk, 1), float("-inf")).amax(2)
            margins[live, done : done + chunk] = (true - other).float()
            done += chunk
            remaining = self.n - done
            keep = []
            for row, s in enumerate(live):
                counts[s] += correct[row]
                if self.early_rejection and counts[s] + remaining < need:
                    continue  # can never reach need
                keep.append(s)
            if first:
                sure = next((s for s in keep if counts[s] >= need), None)  # counts only grow
                if sure is not None:
                    keep = [s for s in keep if s <= sure]
            live = keep
        alive = set(live)
        result: List[Optional[int]] = [counts[s] if s in alive else None for s in range(s_total)]
        by_image = torch.empty_like(margins)
        by_image[:, self.order] = margins
        return result, by_image


def _score_across_processes(
    scorer: _Scorer, keys: torch.Tensor, need: int
) -> Tuple[List[Optional[int]], Optional[torch.Tensor]]:
    """:meth:`_Scorer.score` with ``first=True``, each process of the default group scoring a
    contiguous share of the candidates. Every process returns the same counts wherever it
    matters: a rank keeps its own first sure candidate and everything before it, so the first
    candidate with a count >= need over all ranks is the one a single process finds, and its
    count is complete. Only that candidate's margins are returned (other rows are zero)."""
    world, rank = dist.get_world_size(), dist.get_rank()
    s = keys.shape[0]
    lo, hi = s * rank // world, s * (rank + 1) // world
    merged = torch.full((s,), -2, dtype=torch.int64, device=keys.device)  # -2: another rank's
    margins: Optional[torch.Tensor] = None
    if hi > lo:
        counts, margins = scorer.score(keys[lo:hi], need, first=True)
        merged[lo:hi] = torch.tensor([-1 if c is None else c for c in counts], device=keys.device)
    dist.all_reduce(merged, op=dist.ReduceOp.MAX)
    result: List[Optional[int]] = [None if c < 0 else c for c in merged.tolist()]
    hit = next((k for k, cnt in enumerate(result) if cnt is not None and cnt >= need), None)
    if hit is None or not scorer.early_rejection:
        return result, None
    row = torch.zeros(s, scorer.n, dtype=torch.float32, device=keys.device)
    if lo <= hit < hi:
        assert margins is not None
        row[hit] = margins[hit - lo]
    dist.all_reduce(row, op=dist.ReduceOp.SUM)  # zeros elsewhere: the owner's row exactly
    return result, row


# -- the searches -------------------------------------------------------------------------------


def _limit(where: str, name: str, value: Optional[int]) -> int:
    return 2**62 if value is None else _checks.integer(where, name, value, minimum=0)


def _round_entry(r: int, correct: int, accepted: int, evaluated: int, images: int, start: float) -> Dict[str, Any]:
    return {
        "round": r,
        "correct": correct,
        "accepted": accepted,
        "evaluated": evaluated,
        "forward_images": images,
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def estimate_key_literal(
    activations: torch.Tensor,
    labels: torch.Tensor,
    above: Above,
    initial: BlockKey,
    rounds: int,
    *,
    initial_correct: int = 0,
    max_candidates: Optional[int] = None,
    image_batch: int = 1024,
    progress: Optional[Progress] = None,
) -> KeyEstimationResult:
    """Algorithm 1 as written: one candidate swap, one forward of all N images (in slices of at
    most ``image_batch``), one accept-or-revert.

    Args:
        activations: (N, C, H, W) output of the protected submodule for the attack images,
            before the shuffle.
        labels: (N,) integer labels.
        above: (B, C, H, W) shuffled activations -> (B, classes) logits; eval mode.
        initial: the starting key (channels C, block size M dividing H and W).
        rounds: T, sweeps over the P*(P-1)/2 pairs i < j of the P = C*M*M positions.
        initial_correct: the acc the search starts from (0 in the paper; a previous result's
            ``correct`` to continue from its key).
        max_candidates: stop after this many candidate swaps (None: all rounds).
        image_batch: the most images per forward (memory only).
        progress: called with each round's history entry (and the partial round's, if
            max_candidates stops the search inside one).

    Returns:
        :class:`KeyEstimationResult`; the reference :func:`estimate_key` reproduces.
    """
    where = "estimate_key_literal"
    acts, lab = _check_data(where, activations, labels, above)
    key = _check_key(where, "initial", initial, acts)
    rounds = _checks.integer(where, "rounds", rounds, minimum=0)
    image_batch = _checks.integer(where, "image_batch", image_batch, minimum=1)
    acc = _checks.integer(where, "initial_correct", initial_correct, minimum=0, maximum=acts.shape[0])
    limit = _limit(where, "max_candidates", max_candidates)
    progress = _check_progress(where, progress)
    start = time.perf_counter()
    c, m, n = key.channels, key.block_size, acts.shape[0]
    perm = key.tensor(acts.device).clone()
    accepted = evaluated = images = 0
    history: List[Dict[str, Any]] = []
    pairs = list(zip(*(t.tolist() for t in _pairs(c * m * m, torch.device("cpu")))))
    for r in range(1, rounds + 1):
        if evaluated >= limit:
            break
        for i, j in pairs:
            if evaluated >= limit:
                break
            perm[[i, j]] = perm[[j, i]]
            count = 0
            for lo in range(0, n, image_batch):
                x = block_shuffle(acts[lo : lo + image_batch], perm, m)
                logits = _logits(where, above, x, x.shape[0])
                count += int((logits.argmax(1) == lab[lo : lo + image_batch]).sum().item())
            images += n
            evaluated += 1
            if count < acc:
                perm[[i, j]] = perm[[j, i]]  # revert
            else:
                acc = count
                accepted += 1
        history.append(_round_entry(r, acc, accepted, evaluated, images, start))
        if progress is not None:
            progress(history[-1])
    return KeyEstimationResult(
        key=BlockKey(perm.cpu(), channels=c, block_size=m),
        correct=acc,
        accepted=accepted,
        evaluated=evaluated,
        forward_images=images,
        seconds=time.perf_counter() - start,
        history=history,
    )


@torch.no_grad()
def estimate_key(
    activations: torch.Tensor,
    labels: torch.Tensor,
    above: Above,
    initial: Optional[BlockKey] = None,
    config: Optional[KeyEstimationConfig] = None,
    *,
    block_size: Optional[int] = None,
    initial_correct: int = 0,
    progress: Optional[Progress] = None,
    split_across_processes: bool = False,
) -> KeyEstimationResult:
    """Algorithm 1, batched: exactly the key, count, accepted swaps and history of
    :func:`estimate_key_literal` (given a batch-independent ``above``), in far fewer images.

    Args:
        activations: (N, C, H, W) output of the protected submodule for the attack images,
            before the shuffle (any floating dtype; on the device ``above`` runs on).
        labels: (N,) integer labels, same device.
        above: (B, C, H, W) shuffled activations -> (B, classes) logits; eval mode.
        initial: the starting key, or None for :func:`random_block_key` with ``config.seed``
            (then ``block_size`` is required).
        config: :class:`KeyEstimationConfig` (default: its defaults).
        block_size: M, only when ``initial`` is None.
        initial_correct: the acc the search starts from (as for :func:`estimate_key_literal`).
        progress: called with each round's history entry.
        split_across_processes: every process of the initialised default process group
            (``torch.distributed``, e.g. under ``torchrun``) scores its share of each batch of
            candidates (``config.candidates_per_batch`` per process); all return the same
            result, equal to one process's. Every process must call with the same arguments.

    Returns:
        :class:`KeyEstimationResult` (``forward_images`` counts what was actually scored, summed
        over processes).

    Raises:
        RuntimeError: ``split_across_processes`` without an initialised process group.
    """
    where = "estimate_key"
    acts, lab = _check_data(where, activations, labels, above)
    config = _check_config(where, KeyEstimationConfig() if config is None else config)
    if initial is None:
        if block_size is None:
            raise TypeError(f"{where}: block_size is required when initial is None")
        m = check_block_size(where, block_size)
        _check_geometry(where, "block_size", acts.shape[1], m, acts)
        initial = random_block_key(channels=acts.shape[1], block_size=m, seed=config.seed)
    else:
        key = _check_key(where, "initial", initial, acts)
        if block_size is not None and check_block_size(where, block_size) != key.block_size:
            raise ValueError(f"{where}: block_size={block_size} disagrees with initial's block_size {key.block_size}")
    acc = _checks.integer(where, "initial_correct", initial_correct, minimum=0, maximum=acts.shape[0])
    limit = _limit(where, "config.max_candidates", config.max_candidates)
    progress = _check_progress(where, progress)
    if split_across_processes and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(f"{where}: split_across_processes=True needs an initialised torch.distributed process group")
    world = dist.get_world_size() if split_across_processes else 1
    per_batch = config.candidates_per_batch * world
    start = time.perf_counter()
    c, m = initial.channels, initial.block_size
    p = c * m * m
    device = acts.device
    scorer = _Scorer(where, acts, lab, above, m, config.image_batch, config.image_chunk, config.early_rejection)
    pair_i, pair_j = _pairs(p, device)
    total = pair_i.numel()
    perm = initial.tensor(device).clone()
    accepted = evaluated = 0
    if acc > 0 and config.early_rejection:  # the initial key's margins order the images
        _, margins0 = scorer.score(initial.tensor(device).view(1, p), 0, first=True)
        assert margins0 is not None
        scorer.reorder(margins0[0])
    size = 1 if config.adaptive and acc == 0 else per_batch  # at acc 0 the first swap is kept
    history: List[Dict[str, Any]] = []
    for r in range(1, config.rounds + 1):
        if evaluated >= limit:
            break
        t = 0
        while t < total and evaluated < limit:
            s = min(size, total - t, limit - evaluated)
            rows = torch.arange(s, device=device)
            ii, jj = pair_i[t : t + s], pair_j[t : t + s]
            keys = perm.expand(s, p).clone()
            keys[rows, ii] = perm[jj]
            keys[rows, jj] = perm[ii]
            if world > 1:
                counts, margins = _score_across_processes(scorer, keys, acc)
            else:
                counts, margins = scorer.score(keys, acc, first=True)
            hit = next((k for k, cnt in enumerate(counts) if cnt is not None and cnt >= acc), None)
            if hit is None:
                t += s
                evaluated += s
                size = min(per_batch, 2 * size)
                continue
            perm = keys[hit].clone()
            hit_count = counts[hit]
            assert hit_count is not None
            acc = hit_count
            accepted += 1
            t += hit + 1
            evaluated += hit + 1
            if config.early_rejection:
                assert margins is not None
                scorer.reorder(margins[hit])
            size = min(per_batch, hit + 1) if config.adaptive else size
        history.append(_round_entry(r, acc, accepted, evaluated, scorer.forward_images, start))
        if progress is not None:
            progress(history[-1])
    forward_images = scorer.forward_images
    if world > 1:
        total_images = torch.tensor([forward_images], dtype=torch.int64, device=device)
        dist.all_reduce(total_images)
        forward_images = int(total_images.item())
    return KeyEstimationResult(
        key=BlockKey(perm.cpu(), channels=c, block_size=m),
        correct=acc,
        accepted=accepted,
        evaluated=evaluated,
        forward_images=forward_images,
        seconds=time.perf_counter() - start,
        history=history,
    )


@torch.no_grad()
def random_key_search(
    activations: torch.Tensor,
    labels: torch.Tensor,
    above: Above,
    *,
    channels: int,
    block_size: int,
    keys: int,
    seed: int = 0,
    batch: int = 16,
    image_batch: int = 1024,
) -> Tuple[BlockKey, int]:
    """The best of ``keys`` random keys: key t is ``torch.randperm(C*M*M)`` number t of a
    generator seeded with ``seed``; a key replaces the best so far only if strictly better (so
    the first key reaching the highest count wins). Scored ``batch`` keys per forward, with the
    same exact early rejection as :func:`estimate_key`.

    Args:
        activations: (N, C, H, W), labels: (N,), above: as for :func:`estimate_key`.
        channels, block_size: the key's C (must equal the activations') and M.
        keys: how many random keys (>= 1).
        seed: the generator's seed.
        batch: keys scored together.
        image_batch: the most images per forward.

    Returns:
        (best key, its correct count on the N images).
    """
    where = "random_key_search"
    acts, lab = _check_data(where, activations, labels, above)
    c = _checks.integer(where, "channels", channels, minimum=1)
    m = check_block_size(where, block_size)
    _check_geometry(where, "the key (channels, block_size)", c, m, acts)
    count_keys = _checks.integer(where, "keys", keys, minimum=1)
    g = torch.Generator().manual_seed(_checks.integer(where, "seed", seed))
    batch = _checks.integer(where, "batch", batch, minimum=1)
    image_batch = _checks.integer(where, "image_batch", image_batch, minimum=1)
    p = c * m * m
    scorer = _Scorer(where, acts, lab, above, m, image_batch, image_batch, True)
    best: Optional[torch.Tensor] = None
    best_count = -1
    done = 0
    while done < count_keys:
        s = min(batch, count_keys - done)
        cand = torch.stack([torch.randperm(p, generator=g) for _ in range(s)]).to(acts.device)
        counts, margins = scorer.score(cand, best_count + 1, first=False)
        for k, cnt in enumerate(counts):  # in order: strictly better replaces
            if cnt is not None and cnt > best_count:
                best, best_count = cand[k], cnt
                assert margins is not None
                scorer.reorder(margins[k])
        done += s
    assert best is not None
    return BlockKey(best.cpu(), channels=c, block_size=m), best_count
