"""GPU benchmark of the block shuffle: featperm vs clone() and vs the pure-PyTorch peer.

    python benchmarks/bench_block_shuffle_gpu.py [--out results.json] [--dtype float32]
        [--iters 50] [--warmup 10] [--formats contiguous,channels_last] [--no-compile]

For every (N, C, H, W) in {(256, 64, 32, 32), (64, 256, 64, 64), (128, 512, 8, 8)}, M in {2, 4}
and memory format, it first checks featperm against the reference on the GPU (bit-exact), then
times with CUDA events (warm-up, then the median of --iters single calls):

  clone              x.clone(), the bandwidth yardstick
  featperm fwd       featperm.block_shuffle (out of place)
  featperm inv       featperm.block_unshuffle (out of place)
  featperm fwd_      featperm.block_shuffle_ (in place)
  featperm bwd       autograd backward of block_shuffle (= block_unshuffle of the gradient)
  peer eager fwd/bwd the pure-PyTorch peer (view/permute/index_select/permute) and its backward
  peer compiled ...  the same under torch.compile

GB/s counts one read and one write of the tensor for every case (the minimum traffic). The
table shows each case's GB/s and its percentage of clone()'s; the target is >= 90% of clone().
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys

import torch

import featperm
from featperm.reference import block_shuffle_reference

SHAPES = [(256, 64, 32, 32), (64, 256, 64, 64), (128, 512, 8, 8)]
BLOCK_SIZES = [2, 4]


def time_cuda(fn, iters: int, warmup: int) -> float:
    """Median seconds of one call of fn, timed with CUDA events on the current stream."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)) / 1e3


def peer(x, v, m):
    return block_shuffle_reference(x, v, m)


def check_against_reference(x, key, v, m, compiled_peer=None):
    """Correctness before timing: featperm bit-exact against the reference, both directions and
    in place, keeping x's memory format (shared with bench_block_shuffle_cpu.py)."""
    where = f"{tuple(x.shape)}, M={m}, strides {x.stride()}"
    expected = block_shuffle_reference(x, v, m)
    y = featperm.block_shuffle(x, key)
    assert torch.equal(y, expected), f"block_shuffle differs from the reference at {where}"
    assert y.stride() == x.stride(), "the output must keep the input's memory format"
    assert torch.equal(featperm.block_unshuffle(y, key), x), f"block_unshuffle does not invert at {where}"
    z = x.clone()
    featperm.block_shuffle_(z, key)
    assert torch.equal(z, expected), f"block_shuffle_ differs from the reference at {where}"
    if compiled_peer is not None:
        assert torch.equal(compiled_peer(x, v, m), expected), f"compiled peer differs at {where}"


def print_worst(results, target_percent):
    featperm_rows = [r for r in results if r["case"].startswith("featperm")]
    worst = min(featperm_rows, key=lambda r: r["percent_of_clone"])
    print(f"\nworst featperm case: {worst['case']} at {tuple(worst['shape'])}, M={worst['block_size']}, "
          f"{worst['format']}: {worst['percent_of_clone']:.0f}% of clone() (target >= {target_percent}%)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the results as JSON to this path")
    parser.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--formats", default="contiguous,channels_last")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile peer")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() or not featperm.has_cuda_kernels():
        print("needs a CUDA GPU and a CUDA build of featperm", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    formats = args.formats.split(",")
    device = torch.device("cuda")
    print(f"featperm block shuffle benchmark: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"dtype {args.dtype}, median of {args.iters} calls after {args.warmup} warm-up calls")

    torch._dynamo.config.recompile_limit = 64  # one compiled peer per shape, block size and format
    compiled_peer = None if args.no_compile else torch.compile(peer, fullgraph=True, dynamic=False)
    results = []
    header = f"{'shape':>18} {'M':>2} {'format':>13} {'case':>24} {'ms':>9} {'GB/s':>8} {'% clone':>8}"
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        for m in BLOCK_SIZES:
            for fmt in formats:
                memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
                x = torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=memory_format)
                key = featperm.BlockKey.generate(channels=shape[1], block_size=m)
                v = key.tensor(device)
                nbytes = 2 * x.numel() * x.element_size()

                check_against_reference(x, key, v, m, compiled_peer)

                xg = x.detach().clone().requires_grad_()  # own storage: the in-place case mutates x
                grad = torch.randn_like(x)
                y_fp = featperm.block_shuffle(xg, key)
                y_peer = peer(xg, v, m)
                cases = {
                    "clone": lambda: x.clone(),
                    "featperm fwd": lambda: featperm.block_shuffle(x, key),
                    "featperm inv": lambda: featperm.block_unshuffle(x, key),
                    "featperm fwd_ (in place)": lambda: featperm.block_shuffle_(x, key),
                    "featperm bwd": lambda: torch.autograd.grad(y_fp, xg, grad, retain_graph=True),
                    "peer eager fwd": lambda: peer(x, v, m),
                    "peer eager bwd": lambda: torch.autograd.grad(y_peer, xg, grad, retain_graph=True),
                }
                if compiled_peer is not None:
                    y_cpeer = compiled_peer(xg, v, m)
                    cases["peer compiled fwd"] = lambda: compiled_peer(x, v, m)
                    cases["peer compiled bwd"] = lambda: torch.autograd.grad(y_cpeer, xg, grad, retain_graph=True)
                clone_seconds = None
                for name, fn in cases.items():
                    seconds = time_cuda(fn, args.iters, args.warmup)
                    if name == "clone":
                        clone_seconds = seconds
                    row = {"shape": list(shape), "block_size": m, "format": fmt, "dtype": args.dtype, "case": name,
                           "ms": seconds * 1e3, "GB/s": nbytes / seconds / 1e9,
                           "percent_of_clone": 100 * clone_seconds / seconds}
                    results.append(row)
                    print(f"{str(shape):>18} {m:>2} {fmt:>13} {name:>24} {row['ms']:9.3f} {row['GB/s']:8.1f} "
                          f"{row['percent_of_clone']:7.0f}%")
                del xg, grad, y_fp, y_peer, x
                torch.cuda.empty_cache()

    print_worst(results, 90)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "iters": args.iters, "warmup": args.warmup, "results": results}, f, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
