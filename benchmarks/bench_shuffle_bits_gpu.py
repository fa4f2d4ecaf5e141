"""GPU benchmark of ShuffleBits (not a test): featperm vs clone() vs the best pure-PyTorch peer.

For each size it first checks featperm against the pure-PyTorch reference, then times, side by
side in one run with CUDA events (warm-up, median of many): clone(), featperm out of place and in
place, and the byte-table formulation of the op compiled with torch.compile (the fastest
pure-PyTorch peer we know). Bandwidth counts bytes read + bytes written.

    python benchmarks/bench_shuffle_bits_gpu.py [--out results.json] [--sizes-mib 0.25 64 1024]
"""

import argparse
import datetime
import json

import torch

import featperm
from featperm.reference import byte_tables, shuffle_bits_reference, shuffle_bits_table
from timing import time_round_robin


def graph_time_ms(fn, reps, calls=20):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return time_round_robin({"graph": graph.replay}, reps)["graph"] / calls


def warm_up_gpu(seconds=1.0):
    """Bring the GPU out of its idle clocks before anything is timed."""
    a = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    elapsed = 0.0
    while elapsed < seconds * 1e3:
        for _ in range(50):
            a.clone()
        end.record()
        end.synchronize()
        elapsed = start.elapsed_time(end)


def bench_size(nbytes, dtype, reps):
    numel = nbytes // torch.tensor([], dtype=dtype).element_size()
    bits = featperm.word_bits(dtype)
    x = torch.randn(numel, device="cuda").to(dtype) if dtype.is_floating_point else \
        torch.randint(-1000, 1000, (numel,), device="cuda", dtype=dtype)
    key = featperm.BitKey.generate(bits)
    key_t = key.tensor("cuda")
    table = byte_tables(key.permutation()).cuda()
    iv = featperm.integer_view_dtype(dtype)

    # Correctness first, on a slice small enough for the per-bit reference.
    probe = x[: min(numel, 1 << 20)]
    want = shuffle_bits_reference(probe, key.permutation())
    got = torch.ops.featperm.shuffle_bits(probe, key_t)
    assert torch.equal(got.view(iv), want.view(iv)), "featperm disagrees with the reference"

    peer = torch.compile(shuffle_bits_table, dynamic=False)
    peer(x, table)  # compile for the timed shape outside the timing
    assert torch.equal(peer(probe, table).view(iv), want.view(iv)), "compiled peer disagrees"

    moved = 2 * nbytes
    y = torch.empty_like(x)
    fns = {
        "clone": lambda: x.clone(),
        # The public API with a BitKey, as users call it (Python wrapper overhead included).
        "featperm out-of-place": lambda: featperm.shuffle_bits(x, key),
        "featperm in-place": lambda: featperm.shuffle_bits_(y, key),
        "peer byte-table, torch.compile": lambda: peer(x, table),
    }
    # Large tensors: device throughput (batches of calls); small ones: per-call latency.
    batch = 1 if nbytes <= (1 << 20) else (10 if nbytes <= (256 << 20) else 3)
    rows = time_round_robin(fns, reps, batch=batch)
    # A CUDA graph of back-to-back calls, replayed, gives the GPU time per call with no host
    # overhead at all (for small tensors the times above are dominated by it).
    graph_calls = 20 if nbytes <= (64 << 20) else 3
    for name in ("clone", "featperm out-of-place", "featperm in-place"):
        rows[f"{name} (GPU time, graph replay)"] = graph_time_ms(fns[name], max(5, reps // 4), graph_calls)
    if nbytes <= (64 << 20):
        rows.update(time_round_robin(
            {"peer per-bit reference, eager": lambda: shuffle_bits_reference(x, key_t)}, max(3, reps // 20), warmup=1))
    out = []
    for name, ms in rows.items():
        out.append({"size_bytes": nbytes, "dtype": str(dtype), "variant": name, "median_ms": ms,
                    "GBps": moved / ms / 1e6, "vs_clone": rows["clone (GPU time, graph replay)" if "graph" in name else "clone"] / ms})
    del x, y
    torch.cuda.empty_cache()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mib", type=float, nargs="+", default=[0.25, 64, 1024])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float16", "float64"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.cuda.get_device_name()
    torch._dynamo.config.recompile_limit = 64  # one compiled peer per size and dtype
    warm_up_gpu()
    results = []
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for mib in args.sizes_mib:
            nbytes = int(mib * (1 << 20))
            reps = 200 if nbytes <= (1 << 20) else (50 if nbytes <= (256 << 20) else 20)
            if dtype != torch.float32 and nbytes > (64 << 20):
                continue  # the 1 GiB case is timed for float32, the paper's dtype
            results.extend(bench_size(nbytes, dtype, reps))
    print(f"\nShuffleBits on {device}, torch {torch.__version__}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"{'dtype':>14} {'size':>10} {'variant':>44} {'median':>12} {'GB/s':>8} {'clone/t':>8}")
    for r in results:
        size = f"{r['size_bytes'] / (1 << 20):g} MiB"
        print(f"{r['dtype']:>14} {size:>10} {r['variant']:>44} {r['median_ms'] * 1e3:>9.1f} us "
              f"{r['GBps']:>8.0f} {r['vs_clone']:>8.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": device, "torch": torch.__version__,
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "results": results}, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
