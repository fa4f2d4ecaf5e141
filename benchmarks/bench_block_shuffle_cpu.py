"""CPU benchmark of the block shuffle: featperm vs clone() and the pure-PyTorch peer, side by side.

    python benchmarks/bench_block_shuffle_cpu.py [--threads 1] [--reps 30] [--batch-divisor 4]
        [--formats contiguous,channels_last] [--no-compile] [--out results.json]

For the GPU benchmark's shapes (N, C, H, W) in {(256, 64, 32, 32), (64, 256, 64, 64),
(128, 512, 8, 8)} with N divided by --batch-divisor (4: tensors of 16, 64 and 4 MiB), M in {2, 4}
and both memory formats, it first checks featperm against the reference (bit-exact), then times
every case once per repetition, in turn, and reports the median of the per-repetition ratios
clone() time / case time (a shared machine's drift cancels within a repetition):

  clone              x.clone(), the yardstick (one read and one write of the tensor)
  featperm fwd/inv   block_shuffle / block_unshuffle (out of place)
  featperm fwd_      block_shuffle_ (in place)
  featperm bwd       autograd backward of block_shuffle (= block_unshuffle of the gradient)
  peer eager/compiled  view/permute/index_select/permute, eager and under torch.compile

Single-threaded by default (the issue's target: >= 50% of clone() on one thread).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import torch
from bench_block_shuffle_gpu import BLOCK_SIZES, SHAPES, check_against_reference, peer, print_worst
from timing import ratios_round_robin_cpu

import featperm
from featperm.bench import cpu_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batch-divisor", type=int, default=4)
    parser.add_argument("--formats", default="contiguous,channels_last")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile peer")
    parser.add_argument("--out", help="write the results as JSON to this path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variant = featperm.ops.cpu_kernels()["block_shuffle"]  # "avx512_vbmi" or "portable"
    print(f"featperm block shuffle CPU benchmark: {cpu_model()}, {args.threads} thread(s), "
          f"torch {torch.__version__}, kernel variant: {variant}; median over {args.reps} repetitions "
          f"of the per-repetition ratio to clone()")
    compiled_peer = None if args.no_compile else torch.compile(peer, fullgraph=True, dynamic=False)
    if compiled_peer is not None:
        torch._dynamo.config.recompile_limit = 64
    header = f"{'shape':>18} {'M':>2} {'format':>13} {'case':>22} {'ms':>9} {'% clone':>8}"
    print(header)
    print("-" * len(header))
    results = []
    for shape in SHAPES:
        shape = (max(1, shape[0] // args.batch_divisor),) + shape[1:]
        for m in BLOCK_SIZES:
            for fmt in args.formats.split(","):
                memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
                x = torch.randn(shape).contiguous(memory_format=memory_format)
                key = featperm.BlockKey.generate(channels=shape[1], block_size=m)
                v = key.permutation()
                check_against_reference(x, key, v, m, compiled_peer)
                xg = x.detach().clone().requires_grad_()
                grad = torch.randn_like(x)
                y_fp = featperm.block_shuffle(xg, key)
                cases = {
                    "clone": x.clone,
                    "featperm fwd": lambda: featperm.block_shuffle(x, key),
                    "featperm inv": lambda: featperm.block_unshuffle(x, key),
                    "featperm fwd_ (in place)": lambda: featperm.block_shuffle_(x, key),
                    "featperm bwd": lambda: torch.autograd.grad(y_fp, xg, grad, retain_graph=True),
                    "peer eager fwd": lambda: peer(x, v, m),
                }
                if compiled_peer is not None:
                    cases["peer compiled fwd"] = lambda: compiled_peer(x, v, m)
                for name, (seconds, ratio) in ratios_round_robin_cpu(cases, "clone", args.reps).items():
                    row = {"shape": list(shape), "block_size": m, "format": fmt, "case": name,
                           "ms": seconds * 1e3, "percent_of_clone": 100 * ratio}
                    results.append(row)
                    print(f"{shape!s:>18} {m:>2} {fmt:>13} {name:>22} {row['ms']:9.3f} {row['percent_of_clone']:7.0f}%")
    print_worst(results, 50)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"processor": cpu_model(), "threads": args.threads, "torch": torch.__version__,
                       "kernel_variant": variant, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "reps": args.reps, "results": results}, f, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
