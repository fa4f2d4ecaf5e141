"""Timing shared by the GPU benchmark scripts (imported as a sibling module when they run)."""

import statistics

import torch


def time_round_robin(fns, reps, warmup=3, batch=1):
    """Median milliseconds per call of each callable, timed in turn on every repetition so that
    clock or thermal drift affects all variants alike. With batch > 1, `batch` calls are enqueued
    between the two events, so the host's per-call overhead overlaps GPU work (throughput);
    with batch = 1 it is included (the latency a caller sees)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(batch):
                fn()
            end.record()
            end.synchronize()
            times[name].append(start.elapsed_time(end) / batch)
    return {name: statistics.median(t) for name, t in times.items()}
