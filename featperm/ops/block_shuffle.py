"""Block-wise feature-map shuffle (AprilPyone & Kiya 2021).

A feature map ``x`` of shape ``(N, C, H, W)`` is cut into ``M x M`` blocks. Each block, across all
``C`` channels, is flattened into a vector of ``C*M*M`` values and permuted by one secret key
``v``: ``out[k] = in[v[k]]``. The same ``v`` serves every block of every sample.

Flatten order (that of the authors' public ``segment()`` code, so their permutation vectors
reproduce their transform exactly): row in block, then column in block, then channel, channel
fastest::

    k = (r * M + c) * C + ch        # r, c in 0..M-1 (row, column in block), ch in 0..C-1

The op moves values as integers of the element size (it never does float arithmetic: every bit
pattern survives), works on contiguous and channels_last tensors without copying them, and
returns its output in the input's memory format.

What it protects: a model trained behind the transform works well only when the same key is
applied (a "model lock"). What it does not: it is a fixed, keyed permutation, not encryption. The
key can be estimated from the model (e.g. by searching permutations that maximise accuracy on a
little data) and a stolen model can be fine-tuned to work without the key.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from featperm import _checks
from featperm.keys.block_key import MAX_BLOCK_SIZE, BlockKey, check_block_size
from featperm.ops import _library  # noqa: F401  (loads the compiled ops)

__all__ = [
    "block_shuffle",
    "block_unshuffle",
    "block_shuffle_",
    "block_unshuffle_",
    "to_blocks",
    "from_blocks",
    "BlockKeyLike",
]

BlockKeyLike = Union[BlockKey, torch.Tensor, Sequence[int]]


def _key_and_block_size(op: str, x: object, key: BlockKeyLike, block_size: Optional[int]) -> Tuple[torch.Tensor, int]:
    x = _checks.tensor(op, "x", x)
    if isinstance(key, BlockKey):
        if block_size is not None and check_block_size(op, block_size) != key.block_size:
            raise ValueError(f"{op}: block_size={block_size} disagrees with the key's block_size {key.block_size}")
        if x.dim() == 4 and x.shape[1] != key.channels:
            raise ValueError(
                f"{op}: x has {x.shape[1]} channels (x.shape {tuple(x.shape)}) but the "
                f"key is for channels={key.channels}"
            )
        return key.tensor(x.device), key.block_size
    if block_size is None:
        raise TypeError(f"{op}: block_size is required when key is not a BlockKey")
    m = check_block_size(op, block_size)
    key_t = _checks.key_tensor(op, "key", key, x.device)
    if (
        key_t.device.type != "cpu"
        and key_t.device == x.device
        and not torch.compiler.is_compiling()
        and key_t.dim() == 1
    ):
        # The C++ op checks host keys itself; a device key is checked here (one sync).
        _checks.permutation_rows(f"{op}: key", key_t)
    return key_t, m


def block_shuffle(x: torch.Tensor, key: BlockKeyLike, block_size: Optional[int] = None) -> torch.Tensor:
    """Encrypt: permute every ``M x M`` block of ``x`` (all channels together) by ``key``.

    Args:
        x: tensor of shape (N, C, H, W) with M dividing H and W, any dtype of 1, 2, 4 or 8 bytes,
            any strides (contiguous and channels_last are read and written in place order); CPU
            or CUDA.
        key: a :class:`~featperm.BlockKey` (which carries M), or a permutation of
            ``0..C*M*M-1`` as an integer tensor on x's device or a sequence, together with
            ``block_size``.

    Returns:
        ``out`` with ``out_block[k] = x_block[v[k]]`` for every block, flattened in
        (row, column, channel) order, ``k = (r*M + c)*C + ch``. The output keeps x's memory
        format. Differentiable (the gradient is :func:`block_unshuffle` of the output gradient).

    Raises:
        TypeError: x or the key is not a tensor or key; ``block_size`` is missing for a raw key,
            or is not an integer.
        ValueError: x is not 4-D; M does not divide H and W; the key is not a permutation of
            ``C*M*M`` positions, is for another channel count, or lies on another device;
            ``block_size`` disagrees with a BlockKey's.
    """
    k, m = _key_and_block_size("block_shuffle", x, key, block_size)
    return torch.ops.featperm.block_shuffle(x, k, m)


def block_unshuffle(y: torch.Tensor, key: BlockKeyLike, block_size: Optional[int] = None) -> torch.Tensor:
    """Decrypt: the inverse of :func:`block_shuffle` under the same key (``x_block[v[k]] = y_block[k]``).

    Same arguments, shapes, dtypes and errors as :func:`block_shuffle`; differentiable."""
    k, m = _key_and_block_size("block_unshuffle", y, key, block_size)
    return torch.ops.featperm.block_unshuffle(y, k, m)


def block_shuffle_(x: torch.Tensor, key: BlockKeyLike, block_size: Optional[int] = None) -> torch.Tensor:
    """In-place :func:`block_shuffle` (per-tile staging, no full-size temporary); returns ``x``.
    x must not require grad, and no two of its elements may share memory (any other view is
    fine)."""
    k, m = _key_and_block_size("block_shuffle_", x, key, block_size)
    torch.ops.featperm.block_shuffle_(x, k, m)
    return x


def block_unshuffle_(y: torch.Tensor, key: BlockKeyLike, block_size: Optional[int] = None) -> torch.Tensor:
    """In-place :func:`block_unshuffle`; returns ``y``. Same rules as :func:`block_shuffle_`."""
    k, m = _key_and_block_size("block_unshuffle_", y, key, block_size)
    torch.ops.featperm.block_unshuffle_(y, k, m)
    return y


# -- blocks as vectors (for elementwise block transforms such as featperm.transforms) -----------


def to_blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, H/M, W/M, C*M*M): each block flattened in (row, column, channel) order.

    A view when the strides allow, else a copy; any dtype. ValueError unless x is 4-D and M
    divides H and W."""
    _checks.tensor("to_blocks", "x", x)
    if x.dim() != 4:
        raise ValueError(f"to_blocks: x must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    m = check_block_size("to_blocks", block_size)
    if h % m or w % m:
        raise ValueError(f"to_blocks: block_size {m} must divide H={h} and W={w}")
    return (
        x.reshape(n, c, h // m, m, w // m, m)
        .permute(0, 2, 4, 3, 5, 1)  # n, block row, block column, r, c, ch
        .reshape(n, h // m, w // m, m * m * c)
    )


def from_blocks(blocks: torch.Tensor, channels: int, block_size: int) -> torch.Tensor:
    """Inverse of :func:`to_blocks`: (N, H/M, W/M, C*M*M) -> (N, C, H, W). ValueError unless
    ``blocks`` is 4-D with a last dimension of ``channels * block_size**2``."""
    _checks.tensor("from_blocks", "blocks", blocks)
    if blocks.dim() != 4:
        raise ValueError(f"from_blocks: blocks must have shape (N, H/M, W/M, C*M*M), got shape {tuple(blocks.shape)}")
    n, hb, wb, positions = blocks.shape
    m = check_block_size("from_blocks", block_size)
    c = _checks.integer("from_blocks", "channels", channels, minimum=1)
    if positions != c * m * m:
        raise ValueError(f"from_blocks: blocks' last dimension must be C*M*M = {c * m * m}, got {positions}")
    return (
        blocks.reshape(n, hb, wb, m, m, c)
        .permute(0, 5, 1, 3, 2, 4)  # n, ch, block row, r, block column, c
        .reshape(n, c, hb * m, wb * m)
    )


# -- registration for torch.compile / torch.export and autograd ---------------------------------


def _check_shapes_fake(op: str, x: torch.Tensor, key: torch.Tensor, block_size: int) -> None:
    # The shape checks of the C++ op, so that tracing fails as eagerly running would.
    torch._check(x.dim() == 4, lambda: f"{op}: x must have shape (N, C, H, W), got {x.dim()} dimensions")
    torch._check(
        1 <= block_size <= MAX_BLOCK_SIZE,
        lambda: f"{op}: block_size must be in [1, {MAX_BLOCK_SIZE}], got {block_size}",
    )
    torch._check(
        x.shape[2] % block_size == 0 and x.shape[3] % block_size == 0,
        lambda: f"{op}: block_size {block_size} must divide the height and width of x",
    )
    torch._check(
        key.dim() == 1 and key.shape[0] == x.shape[1] * block_size * block_size,
        lambda: f"{op}: key must have shape (C*M*M,)",
    )


def _fake_out_of_place(op):
    def fake(x: torch.Tensor, key: torch.Tensor, block_size: int) -> torch.Tensor:
        _check_shapes_fake(op, x, key, block_size)
        return torch.empty_like(x)  # the real kernel's at::empty_like(x): same strides

    return fake


def _fake_in_place(op):
    def fake(x: torch.Tensor, key: torch.Tensor, block_size: int) -> None:
        _check_shapes_fake(op, x, key, block_size)
        return None

    return fake


for _op in ("block_shuffle", "block_unshuffle"):
    torch.library.register_fake(f"featperm::{_op}")(_fake_out_of_place(_op))
for _op in ("block_shuffle_", "block_unshuffle_"):
    torch.library.register_fake(f"featperm::{_op}")(_fake_in_place(_op))


def _setup_context(ctx, inputs, output) -> None:
    _, key, block_size = inputs
    ctx.key = key
    ctx.block_size = block_size


def _backward_through(other_op: str):
    # The op is linear with a permutation matrix P; its gradient is P^T = the other direction.
    def backward(ctx, grad):
        return getattr(torch.ops.featperm, other_op)(grad, ctx.key, ctx.block_size), None, None

    return backward


torch.library.register_autograd(
    "featperm::block_shuffle", _backward_through("block_unshuffle"), setup_context=_setup_context
)
torch.library.register_autograd(
    "featperm::block_unshuffle", _backward_through("block_shuffle"), setup_context=_setup_context
)
