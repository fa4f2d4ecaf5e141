"""Ciphertext-only cryptanalysis of ShuffleBits, and measures of what its ciphertext leaks.

ShuffleBits moves bit ``i`` of every n-bit word to bit ``f(i)``. The bits of real features are far
from uniform: the sign bit of a ReLU feature is always 0, the top exponent bits are nearly
constant, the low mantissa bits are nearly fair coins, and each feature dimension has its own
profile. An attacker who can obtain plain features of its own inputs knows these statistics, and
then recovers the key from intercepted ciphertext alone:

* :func:`fit_bit_model` estimates, per feature dimension ``d`` and bit ``i``, ``P(bit i = 1)``
  (and optionally the joint distribution of every pair of bits) from plain reference features.
* :func:`recover_fixed_key` finds the maximum-likelihood key for N vectors encrypted under one
  key: under independent bits the log-likelihood of ``f`` is a sum over ``i`` of terms that
  depend on ``f(i)`` only, so the exact optimum is a linear assignment problem; a local search by
  pairwise swaps then maximises the pairwise (bit-pair) log-likelihood.
* :func:`recover_per_vector_keys` does the same on every single vector (per-request keys: the D
  words of one vector are the samples).
* :func:`known_plaintext_curve`, :func:`pairs_to_functional_key`, :func:`pairs_to_unique_key`:
  the known-plaintext attack of :mod:`featperm.attacks.known_plaintext`, vectorised, as a function
  of the number of known feature vectors.
* :func:`leakage`: what any ciphertext reveals without attacking the key (exposed zeros, Hamming
  weights).

Argument rules (featperm's): TypeError for the wrong kind of thing (not a tensor, an unsupported
dtype, a bool or complex tensor, a float where an integer is expected), ValueError for bad shapes,
sizes or mismatched word widths. Ciphertext arguments are integer views (``shuffle_bits(x, key,
as_integer=True)``); the float ciphertext itself is accepted too and viewed as the integer type of
the same width (no value conversion). Plaintext arguments must be floating point (float16,
bfloat16, float32, float64). Everything runs on the input's device (CPU or CUDA); only the n x n
assignment problems go to the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from featperm.keys import BitKey, integer_view_dtype
from featperm.keys.bit_key import word_dtypes
from featperm.ops import unshuffle_bits

__all__ = [
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
    "bit_planes",
]

_WORD_BITS = word_dtypes()
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_EXPONENT_BITS = {torch.float16: 5, torch.bfloat16: 8, torch.float32: 8, torch.float64: 11}
_CHUNK_WORDS = 1 << 22  # words per chunk when counting bits (bounds the (rows, D, n) bit planes)


# -- argument checks ---------------------------------------------------------------------------------------------


def _tensor(where: str, name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _cipher_words(where: str, name: str, value: object, dims: Optional[int] = 2) -> Tuple[torch.Tensor, int]:
    """``value`` as its integer view, with its word width. Float ciphertext is viewed, not converted."""
    x = _tensor(where, name, value)
    bits = _WORD_BITS.get(x.dtype)
    if bits is None:
        raise TypeError(
            f"{where}: {name} must be ciphertext words (an integer view of 8, 16, 32 or 64 bits, or the float "
            f"ciphertext), got dtype {x.dtype}"
        )
    if dims is not None and x.dim() != dims:
        raise ValueError(f"{where}: {name} must be {dims}-D (vectors, dimensions), got shape {tuple(x.shape)}")
    view = integer_view_dtype(x.dtype)
    x = x.detach()
    return (x if x.dtype == view else x.view(view)), bits


def _plain(where: str, name: str, value: object, dims: Optional[int] = 2) -> torch.Tensor:
    x = _tensor(where, name, value)
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{where}: {name} must be plaintext features of dtype float16, bfloat16, float32 or float64, "
            f"got dtype {x.dtype}"
        )
    if dims is not None and x.dim() != dims:
        raise ValueError(f"{where}: {name} must be {dims}-D (vectors, dimensions), got shape {tuple(x.shape)}")
    return x.detach()


def _nonempty(where: str, name: str, x: torch.Tensor) -> None:
    if x.numel() == 0:
        raise ValueError(f"{where}: {name} must not be empty, got shape {tuple(x.shape)}")


def _integer(where: str, name: str, value: object, minimum: int, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{where}: {name} must be an integer, got {type(value).__name__} {value!r}")
    result = int(value.__index__())
    if result < minimum or (maximum is not None and result > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{where}: {name} must be >= {minimum}{upper}, got {result}")
    return result


def _key(where: str, name: str, value: object) -> BitKey:
    if not isinstance(value, BitKey):
        raise TypeError(f"{where}: {name} must be a BitKey, got {type(value).__name__}")
    return value


# -- bits ------------------------------------------------------------------------------------------------------------


def _as_int64(words: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer-view words as int64 (sign-extended below 64 bits: bits 0..n-1 are the word's bits)."""
    return words if bits == 64 else words.to(torch.int64)


def bit_planes(words: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The bits of every word: shape ``words.shape + (n,)``, entry ``[..., i]`` = bit ``i`` (0 = least
    significant, n-1 = sign) as 0/1 of ``dtype``. ``words``: any tensor of 8/16/32/64-bit words
    (integer view, or float, viewed)."""
    w, bits = _cipher_words("bit_planes", "words", words, dims=None)
    shifts = torch.arange(bits, device=w.device)
    return ((_as_int64(w, bits).unsqueeze(-1) >> shifts) & 1).to(dtype)


def popcount(words: torch.Tensor) -> torch.Tensor:
    """Hamming weight (number of set bits) of every n-bit word, as int64 of the same shape.

    ``words``: integer view of any width 8/16/32/64 (a float tensor is viewed as its integer
    type, not converted). Negative signed words count their n bits only (an int8 -1 has weight 8,
    an int32 -1 has weight 32)."""
    w, bits = _cipher_words("popcount", "words", words, dims=None)
    w = _as_int64(w, bits)
    if bits == 64:
        halves = [w & 0xFFFFFFFF, (w >> 32) & 0xFFFFFFFF]
    else:
        halves = [w & ((1 << bits) - 1)]
    total = torch.zeros(w.shape, dtype=torch.int64, device=w.device)
    for x in halves:  # SWAR on values below 2**32, held in int64: no sign trouble
        x = x - ((x >> 1) & 0x55555555)
        x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
        x = (x + (x >> 4)) & 0x0F0F0F0F
        total += ((x * 0x01010101) & 0xFFFFFFFF) >> 24
    return total


def _bit_counts(words: torch.Tensor, bits: int, pairwise: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Over the rows of (M, D) words: ones (D, n) and, if pairwise, both-ones counts (D, n, n), float64."""
    rows, dims = words.shape
    ones = torch.zeros(dims, bits, dtype=torch.float64, device=words.device)
    both = torch.zeros(dims, bits, bits, dtype=torch.float64, device=words.device) if pairwise else None
    step = max(1, _CHUNK_WORDS // max(1, dims * bits))
    for start in range(0, rows, step):
        planes = bit_planes(words[start : start + step], torch.float64)  # (m, D, n)
        ones += planes.sum(0)
        if both is not None:
            p = planes.transpose(0, 1)  # (D, m, n)
            both += torch.bmm(p.transpose(1, 2), p)
    return ones, both


def _pair_table(ones: torch.Tensor, both: torch.Tensor, rows: int) -> torch.Tensor:
    """Joint counts of bit pairs, (n, n, D, 4) with index 2a+b for (bit i = a, bit k = b)."""
    oi = ones.unsqueeze(2)  # (D, n, 1): bit i
    ok = ones.unsqueeze(1)  # (D, 1, n): bit k
    c10 = oi - both
    c01 = ok - both
    c00 = rows - oi - ok + both
    return torch.stack([c00, c01, c10, both], dim=-1).permute(1, 2, 0, 3)


# -- the attacker's model --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BitModel:
    """The plaintext bit distribution as the attacker estimates it from plain reference features.

    Attributes:
        p_one: (D, n) float64, ``P(bit i = 1)`` in feature dimension ``d``, Laplace-smoothed:
            ``(ones + s) / (M + 2 s)``.
        pair_log: (n, n, D, 4) float32 or None: ``log P(bit i = a, bit k = b)`` in dimension ``d`` at
            ``[i, k, d, 2a + b]``, smoothed ``(count + s) / (M + 4 s)`` (used by the refinement).
        samples: M, the number of reference vectors.
        dtype: the plaintext dtype the model was fitted on.
        smoothing: s.
    """

    p_one: torch.Tensor
    pair_log: Optional[torch.Tensor]
    samples: int
    dtype: torch.dtype
    smoothing: float

    @property
    def bits(self) -> int:
        """n, the word width."""
        return int(self.p_one.shape[1])

    @property
    def dims(self) -> int:
        """D, the number of feature dimensions."""
        return int(self.p_one.shape[0])


def fit_bit_model(plain_reference: torch.Tensor, *, pairwise: bool = True, smoothing: float = 1.0) -> BitModel:
    """Estimate the plaintext bit distribution from plain features the attacker obtained itself.

    Args:
        plain_reference: (M, D) floating point features (float16/bfloat16/float32/float64).
        pairwise: also estimate the joint distribution of every pair of bits per dimension
            (memory n*n*D*4 float32: 4 MiB for n=32, D=256; needed by ``recover_fixed_key(refine=True)``).
        smoothing: Laplace pseudo-count s > 0.

    Returns:
        a :class:`BitModel` on plain_reference's device.
    """
    where = "fit_bit_model"
    x = _plain(where, "plain_reference", plain_reference)
    _nonempty(where, "plain_reference", x)
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
        raise TypeError(f"{where}: smoothing must be a number, got {type(smoothing).__name__}")
    if not (math.isfinite(smoothing) and smoothing > 0):
        raise ValueError(f"{where}: smoothing must be a finite number > 0, got {smoothing}")
    words, bits = _cipher_words(where, "plain_reference", x)
    rows = int(x.shape[0])
    ones, both = _bit_counts(words, bits, bool(pairwise))
    p_one = (ones + smoothing) / (rows + 2 * smoothing)
    pair_log = None
    if both is not None:
        pair_log = torch.log((_pair_table(ones, both, rows) + smoothing) / (rows + 4 * smoothing)).float()
    return BitModel(p_one, pair_log, rows, x.dtype, float(smoothing))


def _check_model(where: str, model: object, bits: int, dims: int) -> BitModel:
    if not isinstance(model, BitModel):
        raise TypeError(f"{where}: model must be a BitModel (from fit_bit_model), got {type(model).__name__}")
    if model.bits != bits:
        raise ValueError(f"{where}: ciphertext has {bits}-bit words but the model was fitted on {model.bits}-bit words")
    if model.dims != dims:
        raise ValueError(f"{where}: ciphertext has {dims} dimensions but the model was fitted on {model.dims}")
    return model


# -- maximum likelihood ------------------------------------------------------------------------------------------


def _assignment_cost(ones: torch.Tensor, rows: int, p_one: torch.Tensor) -> torch.Tensor:
    """cost[i, j] = -sum_d (ones[d, j] log p[d, i] + (rows - ones[d, j]) log(1 - p[d, i])), (n, n) float64."""
    p = p_one.to(ones.device, torch.float64)
    return -(torch.log(p).T @ ones + torch.log1p(-p).T @ (rows - ones))


def _solve(cost: torch.Tensor) -> torch.Tensor:
    row, col = linear_sum_assignment(cost.detach().cpu().numpy())
    f = torch.empty(len(row), dtype=torch.int64)
    f[torch.from_numpy(np.asarray(row, dtype=np.int64))] = torch.from_numpy(np.asarray(col, dtype=np.int64))
    return f


def _pair_scores(words: torch.Tensor, bits: int, model: BitModel) -> torch.Tensor:
    """S[i, k, j, l] = sum_{d, a, b} count_{j l d}(a, b) log P_{i k d}(a, b), (n, n, n, n) float64 on the CPU,
    with S[i, i] = 0 (a bit paired with itself carries no pair information)."""
    if model.pair_log is None:
        raise ValueError("recover_fixed_key: refine=True needs a model fitted with pairwise=True")
    rows = int(words.shape[0])
    ones, both = _bit_counts(words, bits, True)
    assert both is not None
    counts = _pair_table(ones, both, rows).reshape(bits * bits, -1)  # (j l, d ab)
    log_p = model.pair_log.to(words.device, torch.float64).reshape(bits * bits, -1)  # (i k, d ab)
    s = (log_p @ counts.T).reshape(bits, bits, bits, bits).cpu()
    idx = torch.arange(bits)
    s[idx, idx] = 0.0
    return s


def _pair_objective(s: torch.Tensor, f: torch.Tensor) -> float:
    idx = torch.arange(f.numel())
    g = s[idx[:, None], idx[None, :], f[:, None], f[None, :]]
    return float(g.sum()) / 2.0  # s[i, k, j, l] = s[k, i, l, j]: each unordered pair counted twice


def _swap_gains(s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """gain[a, b]: change of the pair objective when f(a) and f(b) are swapped (diagonal -inf).

    With A[i, k, j] = S[i, k, j, f(k)] and H[i, j] = sum_k A[i, k, j] (S[i, i] = 0), the rows a and b
    of the objective change by H[a, f(b)] + H[b, f(a)] - H[a, f(a)] - H[b, f(b)] - S[a, b, f(b), f(b)]
    - S[b, a, f(a), f(a)] + S[a, b, f(a), f(b)] + S[a, b, f(b), f(a)]."""
    n = f.numel()
    idx = torch.arange(n)
    a_ikj = s[:, idx, :, f].permute(1, 0, 2)  # advanced indices first: (k, i, j) -> (i, k, j)
    h = a_ikj.sum(1)  # (i, j)
    h_fb = h[:, f]  # [a, b] = H[a, f(b)]
    h_fa = h[idx, f]  # [a] = H[a, f(a)]
    e = s[:, idx, f, f]  # [a, b] = S[a, b, f(b), f(b)]
    g = s[idx[:, None], idx[None, :], f[:, None], f[None, :]]  # S[a, b, f(a), f(b)]
    g_swapped = s[idx[:, None], idx[None, :], f[None, :], f[:, None]]  # S[a, b, f(b), f(a)]
    gain = h_fb + h_fb.T - h_fa[:, None] - h_fa[None, :] - e - e.T + g + g_swapped
    gain[idx, idx] = -math.inf
    return gain


def _refine(s: torch.Tensor, f: torch.Tensor, max_swaps: int) -> torch.Tensor:
    f = f.clone()
    tolerance = 1e-12 * max(1.0, float(s.abs().sum()) / max(1, f.numel()) ** 2)
    for _ in range(max_swaps):
        gain = _swap_gains(s, f)
        best = int(torch.argmax(gain))
        a, b = divmod(best, f.numel())
        if float(gain[a, b]) <= tolerance:
            break
        f[a], f[b] = f[b].clone(), f[a].clone()
    return f


def recover_fixed_key(
    ciphertext: torch.Tensor, model: BitModel, *, refine: bool = True, max_swaps: Optional[int] = None
) -> BitKey:
    """Ciphertext-only recovery of one key used for all N intercepted vectors.

    Step 1, exact maximum likelihood under independent bits: with ``ones[d, j]`` / ``zeros[d, j]``
    the counts of ciphertext bit j over the N vectors in dimension d, the key maximises
    ``sum_i sum_d ones[d, f(i)] log p[d, i] + zeros[d, f(i)] log(1 - p[d, i])``, a linear assignment
    problem (scipy's ``linear_sum_assignment`` on the (n, n) cost).

    Step 2 (``refine=True``, needs ``fit_bit_model(pairwise=True)``): steepest-ascent local search
    by swapping two positions of f, maximising the pairwise log-likelihood
    ``sum_{i<k} S[i, k, f(i), f(k)]`` with ``S[i, k, j, l] = sum_{d, a, b} count_{j l d}(a, b)
    log P_{i k d}(a, b)`` (one (n², 4D) x (4D, n²) matmul; n⁴ float64 = 128 MiB at n = 64), until no swap
    improves it (at most ``max_swaps``, default n²). Swaps are only accepted when they improve the
    objective, so it never decreases.

    Bits with identical distributions (a ReLU feature's sign bit and a top exponent bit that are
    always 0) cannot be told apart; the key may swap them and still decrypt those values exactly.

    Args:
        ciphertext: (N, D) integer view of the ciphertext (or the float ciphertext), one key.
        model: a :class:`BitModel` of the same word width and D.

    Returns:
        the estimated :class:`BitKey` (decrypt with ``unshuffle_bits(ciphertext, key, dtype=...)``).
    """
    where = "recover_fixed_key"
    words, bits = _cipher_words(where, "ciphertext", ciphertext)
    _nonempty(where, "ciphertext", words)
    model = _check_model(where, model, bits, int(words.shape[1]))
    swaps = bits * bits if max_swaps is None else _integer(where, "max_swaps", max_swaps, 0)
    rows = int(words.shape[0])
    ones, _ = _bit_counts(words, bits, False)
    f = _solve(_assignment_cost(ones, rows, model.p_one))
    if refine and swaps > 0:
        f = _refine(_pair_scores(words, bits, model), f, swaps)
    return BitKey(f)


def log_likelihood(ciphertext: torch.Tensor, model: BitModel, key: BitKey, *, pairwise: bool = False) -> float:
    """The attacker's objective for a candidate single key (higher is more likely).

    ``pairwise=False``: the independent-bits log-likelihood (step 1 of :func:`recover_fixed_key`);
    ``pairwise=True``: the pairwise objective ``sum_{i<k} S[i, k, f(i), f(k)]`` of step 2.
    ciphertext: (N, D) integer view; key: a single (not per-sample) BitKey of the same width."""
    where = "log_likelihood"
    words, bits = _cipher_words(where, "ciphertext", ciphertext)
    _nonempty(where, "ciphertext", words)
    model = _check_model(where, model, bits, int(words.shape[1]))
    key = _key(where, "key", key)
    if key.bits != bits or key.samples is not None:
        raise ValueError(
            f"{where}: key must be a single {bits}-bit key, got {key.bits}-bit key with samples={key.samples}"
        )
    f = key.permutation()
    if pairwise:
        return _pair_objective(_pair_scores(words, bits, model), f)
    ones, _ = _bit_counts(words, bits, False)
    cost = _assignment_cost(ones, int(words.shape[0]), model.p_one).cpu()
    return -float(cost[torch.arange(bits), f].sum())


def recover_per_vector_keys(ciphertext: torch.Tensor, model: BitModel, *, chunk: int = 4096) -> BitKey:
    """Ciphertext-only recovery of a fresh key per vector (per-request keys).

    The maximum-likelihood assignment of :func:`recover_fixed_key` (step 1) on every single vector:
    the D words of vector b are the samples, ``cost[b, i, j] = -sum_d (c[b, d, j] log p[d, i] +
    (1 - c[b, d, j]) log(1 - p[d, i]))``. The (B, n, n) costs come from one einsum per chunk of
    ``chunk`` vectors on the ciphertext's device; the B assignments are solved on the host (scipy,
    about 20 µs each for n = 32).

    Args:
        ciphertext: (B, D) integer view, row b encrypted with its own key.
        model: a :class:`BitModel` of the same word width and D.

    Returns:
        a per-sample :class:`BitKey` with B rows.
    """
    where = "recover_per_vector_keys"
    words, bits = _cipher_words(where, "ciphertext", ciphertext)
    _nonempty(where, "ciphertext", words)
    model = _check_model(where, model, bits, int(words.shape[1]))
    step = _integer(where, "chunk", chunk, 1)
    p = model.p_one.to(words.device, torch.float64)
    weight = (torch.log(p) - torch.log1p(-p)).float()  # (D, n): log-odds of a one
    base = torch.log1p(-p).sum(0).float()  # (n,)
    keys = []
    for start in range(0, int(words.shape[0]), step):
        planes = bit_planes(words[start : start + step], torch.float32)  # (b, D, n)
        cost = -(torch.einsum("bdj,di->bij", planes, weight) + base[:, None]).cpu().numpy()
        for c in cost:
            keys.append(_solve(torch.from_numpy(c)))
    return BitKey(torch.stack(keys))


# -- measures ------------------------------------------------------------------------------------------------------


def key_positions_recovered(estimated: BitKey, true: BitKey) -> float:
    """Fraction of positions i with ``f_est(i) == f(i)``, averaged over rows of per-sample keys.

    Both keys must have the same width; per-sample keys must have the same number of rows, and a
    single key is compared with every row of a per-sample key."""
    where = "key_positions_recovered"
    est = _key(where, "estimated", estimated)
    ref = _key(where, "true", true)
    if est.bits != ref.bits:
        raise ValueError(f"{where}: estimated is a {est.bits}-bit key but true is a {ref.bits}-bit key")
    if est.samples is not None and ref.samples is not None and est.samples != ref.samples:
        raise ValueError(f"{where}: estimated has {est.samples} rows but true has {ref.samples} rows")
    return float((est.permutation() == ref.permutation()).double().mean())


def _row_major(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(1, -1) if x.dim() < 2 else x.reshape(x.shape[0], -1)


def decryption_quality(recovered: torch.Tensor, plain: torch.Tensor) -> Dict[str, float]:
    """How close decrypted features are to the true ones.

    Args:
        recovered: (N, D) (or (D,) for one vector) floating point features decrypted with an
            estimated key (``unshuffle_bits(c, key, dtype=plain.dtype)``).
        plain: the true features, same shape and dtype.

    Returns:
        ``values_exact``: fraction of values bitwise equal (zeros decrypt to zero under every key, so
        for ReLU features this is at least their zero fraction); ``values_exact_nonzero``: the same
        over the values of plain that are not ±0 (nan if none); ``bits_exact``: fraction of bits equal
        (0.5 for unrelated words); ``sign_exponent_exact``: fraction of values
        whose sign and exponent bits are equal; ``cosine`` / ``cosine_median``: mean / median over
        vectors of the cosine similarity, after replacing non-finite values by 0 (in both; two zero
        vectors have cosine 1, one zero vector 0); ``relative_error_median``: median over vectors of
        ``||recovered - plain|| / ||plain||`` (same replacement; inf where plain is a zero vector and
        recovered is not). Norms are computed in float64 after scaling each row by its largest
        magnitude, so no value overflows.
    """
    where = "decryption_quality"
    r = _plain(where, "recovered", recovered, dims=None)
    p = _plain(where, "plain", plain, dims=None)
    if r.shape != p.shape or r.dtype != p.dtype:
        raise ValueError(
            f"{where}: recovered and plain must have the same shape and dtype, got {tuple(r.shape)} {r.dtype} "
            f"and {tuple(p.shape)} {p.dtype}"
        )
    _nonempty(where, "plain", p)
    if r.dim() > 2:
        raise ValueError(f"{where}: recovered and plain must be (N, D) or (D,), got shape {tuple(r.shape)}")
    bits = _WORD_BITS[p.dtype]
    rw = _as_int64(r.view(integer_view_dtype(r.dtype)), bits)
    pw = _as_int64(p.view(integer_view_dtype(p.dtype)), bits)
    diff = rw ^ pw
    low = bits - 1 - _EXPONENT_BITS[p.dtype]
    high_mask = ((1 << bits) - 1) ^ ((1 << low) - 1)
    if high_mask >= 1 << 63:
        high_mask -= 1 << 64
    if bits < 64:
        diff = diff & ((1 << bits) - 1)
    values_exact = float((diff == 0).double().mean())
    nonzero = (pw & ((1 << (bits - 1)) - 1)) != 0  # neither +0.0 nor -0.0
    values_exact_nonzero = float((diff == 0)[nonzero].double().mean()) if bool(nonzero.any()) else math.nan
    bits_exact = 1.0 - float(popcount(diff).double().mean()) / bits
    sign_exponent_exact = float(((diff & high_mask) == 0).double().mean())

    rr = torch.nan_to_num(_row_major(r).double(), nan=0.0, posinf=0.0, neginf=0.0)
    pp = torch.nan_to_num(_row_major(p).double(), nan=0.0, posinf=0.0, neginf=0.0)
    r_scale = rr.abs().amax(1, keepdim=True)
    p_scale = pp.abs().amax(1, keepdim=True)
    r_norm = torch.linalg.vector_norm(rr / r_scale.clamp_min(1e-300), dim=1)
    p_norm = torch.linalg.vector_norm(pp / p_scale.clamp_min(1e-300), dim=1)
    dot = ((rr / r_scale.clamp_min(1e-300)) * (pp / p_scale.clamp_min(1e-300))).sum(1)
    r_zero = r_scale.squeeze(1) == 0
    p_zero = p_scale.squeeze(1) == 0
    cosine = torch.where(r_zero | p_zero, (r_zero & p_zero).double(), dot / (r_norm * p_norm).clamp_min(1e-300))
    err = torch.linalg.vector_norm((rr - pp) / p_scale.clamp_min(1e-300), dim=1)
    rel = torch.where(p_zero, torch.where(r_zero, 0.0, math.inf), err / p_norm.clamp_min(1e-300))
    return {
        "values_exact": values_exact,
        "values_exact_nonzero": values_exact_nonzero,
        "bits_exact": bits_exact,
        "sign_exponent_exact": sign_exponent_exact,
        "cosine": float(cosine.mean()),
        "cosine_median": float(cosine.median()),
        "relative_error_median": float(rel.median()),
    }


# -- known plaintext, vectorised -------------------------------------------------------------------------------------


def _known_pairs(where: str, plain: object, cipher: object) -> Tuple[torch.Tensor, torch.Tensor, int]:
    p = _plain(where, "plain", plain)
    c, bits = _cipher_words(where, "cipher", cipher)
    _nonempty(where, "plain", p)
    if p.shape != c.shape or _WORD_BITS[p.dtype] != bits:
        raise ValueError(
            f"{where}: cipher must have plain's shape and word width, got plain {tuple(p.shape)} ({p.dtype}) "
            f"and cipher {tuple(c.shape)} ({c.dtype})"
        )
    return p.view(integer_view_dtype(p.dtype)), c, bits


def _cumulative_candidates(plain_words: torch.Tensor, cipher_words: torch.Tensor, bits: int) -> torch.Tensor:
    """cand[k - 1, i, j]: f(i) = j is consistent with the first k known vectors, (K, n, n) bool.

    ValueError if some prefix is consistent with no bit permutation."""
    x = bit_planes(plain_words, torch.float32)  # (K, D, n)
    y = bit_planes(cipher_words, torch.float32)
    disagree = torch.einsum("kdi,kdj->kij", x, 1 - y) + torch.einsum("kdi,kdj->kij", 1 - x, y)
    ruled_out = torch.cumsum((disagree > 0).to(torch.int32), dim=0) > 0
    cand = ~ruled_out
    empty = ~cand.any(dim=2).all(dim=1)
    if bool(empty.any()):
        first = int(empty.nonzero()[0, 0])
        raise ValueError(f"the plaintext/ciphertext pairs are not consistent with any bit permutation (vector {first})")
    return cand


def _consistent_key(cand: torch.Tensor) -> BitKey:
    """known_plaintext.consistent_bit_key's assignment from a candidate matrix (n, n) bool: input bits
    with the same candidate set take its positions in order."""
    taken: Dict[Tuple[int, ...], int] = {}
    f = []
    for row in cand.cpu().tolist():
        group = tuple(j for j, ok in enumerate(row) if ok)
        used = taken.get(group, 0)
        f.append(group[used])
        taken[group] = used + 1
    return BitKey(f)


def _held_out_rows(where: str, rows: int, held_out: Optional[int]) -> int:
    if rows < 2:
        raise ValueError(f"{where}: plain needs at least 2 vectors (known and held out), got {rows}")
    if held_out is None:
        return max(1, rows // 2)
    return _integer(where, "held_out", held_out, 1, rows - 1)


def _exact_share(cipher_words: torch.Tensor, plain_words: torch.Tensor, key: BitKey) -> float:
    decrypted = unshuffle_bits(cipher_words, key)
    return float((decrypted == plain_words).double().mean())


def known_plaintext_curve(
    plain: torch.Tensor, cipher: torch.Tensor, counts: Sequence[int], *, held_out: Optional[int] = None
) -> List[Dict[str, float]]:
    """The known-plaintext attack as a function of the number of known feature *vectors*.

    The first ``N - held_out`` rows are the known (plaintext, ciphertext) pairs, the last ``held_out``
    rows (default N // 2) the values to decrypt. For each k in ``counts`` the first k known vectors
    (k * D words) give, for every input bit i, the output positions consistent with all of them
    (vectorised: bit columns as tensors, one einsum over all words).

    Args:
        plain: (N, D) floating point features.
        cipher: (N, D) their ciphertext under one key (integer view, or the float ciphertext).
        counts: numbers of known vectors, each in 1..N - held_out.

    Returns:
        per k, a dict with ``known_vectors`` (k), ``known_words`` (k * D), ``positions_unique``
        (fraction of input bits with a single candidate: pinned down), ``candidates_mean`` (mean
        number of candidates per input bit) and ``held_out_exact`` (fraction of held-out values
        decrypted bitwise exactly with the key :func:`~featperm.attacks.known_plaintext.consistent_bit_key`
        builds from the same pairs).
    """
    where = "known_plaintext_curve"
    p, c, bits = _known_pairs(where, plain, cipher)
    rows = int(p.shape[0])
    hold = _held_out_rows(where, rows, held_out)
    known = rows - hold
    if isinstance(counts, (str, bytes)) or not isinstance(counts, Sequence):
        raise TypeError(f"{where}: counts must be a sequence of integers, got {type(counts).__name__}")
    ks = [_integer(where, "counts[]", k, 1, known) for k in counts]
    if not ks:
        return []
    cand = _cumulative_candidates(p[: max(ks)], c[: max(ks)], bits)
    result = []
    for k in ks:
        ck = cand[k - 1]
        sizes = ck.sum(1).double()
        result.append(
            {
                "known_vectors": float(k),
                "known_words": float(k * p.shape[1]),
                "positions_unique": float((sizes == 1).double().mean()),
                "candidates_mean": float(sizes.mean()),
                "held_out_exact": _exact_share(c[known:], p[known:], _consistent_key(ck)),
            }
        )
    return result


def pairs_to_functional_key(
    plain: torch.Tensor, cipher: torch.Tensor, *, held_out: Optional[int] = None
) -> Optional[int]:
    """The smallest number k of known vectors (the first rows) whose consistent key decrypts every
    held-out value (the last ``held_out`` rows, default N // 2) exactly: pairs to a functionally full
    key. None if all N - held_out known vectors do not suffice.

    This is usually far fewer than :func:`pairs_to_unique_key` needs, and often finite where that one
    is None: input bits whose columns agree in every known word cannot be told apart, but the
    consistent key then maps them to the right set of output positions in some order, which
    decrypts every value in which those bits agree too. Example: every non-negative ReLU feature
    has sign bit 0, and below 2.0 the top exponent bit is 0 as well, so no positive plaintext ever
    distinguishes their two positions and the key is never pinned down, yet the key decrypts all
    such features exactly (it fails only on a value where the two bits differ, e.g. a negative one).
    """
    where = "pairs_to_functional_key"
    p, c, bits = _known_pairs(where, plain, cipher)
    rows = int(p.shape[0])
    known = rows - _held_out_rows(where, rows, held_out)
    cand = _cumulative_candidates(p[:known], c[:known], bits)
    changed = torch.ones(known, dtype=torch.bool)
    changed[1:] = (cand[1:] != cand[:-1]).flatten(1).any(1).cpu()
    for k in changed.nonzero().flatten().tolist():  # the key only changes where the candidates do
        if _exact_share(c[known:], p[known:], _consistent_key(cand[k])) == 1.0:
            return k + 1
    return None


def pairs_to_unique_key(plain: torch.Tensor, cipher: torch.Tensor) -> Optional[int]:
    """The smallest number k of known vectors (the first k rows of (N, D) plain and cipher) that
    pin every key position down uniquely; None if all N vectors do not.

    None is common for real features and harmless to the attacker: see
    :func:`pairs_to_functional_key` (a ReLU feature's sign bit is always 0, so its position can never
    be told apart from another always-0 bit, yet the key decrypts every such value exactly)."""
    where = "pairs_to_unique_key"
    p, c, bits = _known_pairs(where, plain, cipher)
    cand = _cumulative_candidates(p, c, bits)
    unique = (cand.sum(2) == 1).all(1)
    return int(unique.nonzero()[0, 0]) + 1 if bool(unique.any()) else None


# -- leakage without attacking the key -------------------------------------------------------------------------------


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(x)
    _, counts = torch.unique_consecutive(x[order], return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2  # 1-based average rank of each tie group
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = torch.repeat_interleave(avg, counts)
    return ranks


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    denominator = float(torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    return float((a * b).sum()) / denominator if denominator > 0 else math.nan


def leakage(plain: torch.Tensor, cipher_words: torch.Tensor) -> Dict[str, float]:
    """What an interceptor learns from the ciphertext words without attacking the key.

    Args:
        plain: floating point features of any shape (flattened, N*D values).
        cipher_words: what the interceptor holds, any shape: the ShuffleBits integer view (same shape),
            or any other ciphertext (e.g. AEAD bytes). It is flattened; if its word width differs from
            plain's, its bytes are reinterpreted as words of plain's width (trailing bytes that fill no
            word are dropped). Word t of the ciphertext is compared with value t of the plaintext, over
            the first min(len) positions (for ShuffleBits, value t's own word).

    Returns:
        ``zero_fraction``: fraction of plaintext values that are +0.0 (all-zero words).
        ``zero_fraction_exposed``: fraction of those zeros whose ciphertext word is 0 too (1.0 for
        ShuffleBits: 0 maps to 0; ~2^-n for a real cipher; nan if plain has no zero).
        ``exposed_fraction``: fraction of all plaintext values that are such exposed zeros.
        ``hamming_weight_equal``: fraction of positions whose ciphertext word has the plaintext word's
        popcount (1.0 for ShuffleBits; ~0.14 for uniform 32-bit words).
        ``hamming_weight_value_correlation``: Pearson correlation between the ciphertext word's popcount
        and the plaintext value (signed, as is), over the positions where the value is finite (nan if
        either is constant).
        ``hamming_weight_value_spearman`` / ``hamming_weight_abs_value_spearman``: Spearman rank
        correlation (average ranks for ties) of the popcount with the value and with ``|value|``.
    """
    where = "leakage"
    p = _plain(where, "plain", plain, dims=None)
    c, c_bits = _cipher_words(where, "cipher_words", cipher_words, dims=None)
    _nonempty(where, "plain", p)
    _nonempty(where, "cipher_words", c)
    bits = _WORD_BITS[p.dtype]
    view = integer_view_dtype(p.dtype)
    pw = p.reshape(-1).view(view)
    cw = c.reshape(-1)
    if c_bits != bits:
        raw = cw.contiguous().view(torch.uint8)
        raw = raw[: raw.numel() - raw.numel() % (bits // 8)]
        cw = raw.view(view)
    if cw.numel() == 0:
        raise ValueError(f"{where}: cipher_words holds no whole {bits}-bit word, got {c.numel()} {c_bits}-bit words")
    length = min(pw.numel(), cw.numel())
    zero = pw == 0
    zeros = int(zero.sum())
    exposed = int((zero[:length] & (cw[:length] == 0)).sum())
    hw_c = popcount(cw[:length])
    hw_p = popcount(pw[:length])
    values = p.reshape(-1)[:length].double()
    finite = torch.isfinite(values)
    values, hw = values[finite], hw_c[finite]
    return {
        "zero_fraction": zeros / pw.numel(),
        "zero_fraction_exposed": exposed / zeros if zeros else math.nan,
        "exposed_fraction": exposed / pw.numel(),
        "hamming_weight_equal": float((hw_c == hw_p).double().mean()),
        "hamming_weight_value_correlation": _pearson(hw, values) if values.numel() > 1 else math.nan,
        "hamming_weight_value_spearman": (
            _pearson(_average_ranks(hw), _average_ranks(values)) if values.numel() > 1 else math.nan
        ),
        "hamming_weight_abs_value_spearman": (
            _pearson(_average_ranks(hw), _average_ranks(values.abs())) if values.numel() > 1 else math.nan
        ),
    }
