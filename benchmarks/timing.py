"""Timing shared by the GPU benchmark scripts (imported as a sibling module when they run)."""

import statistics
import time

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


def wall_times_round_robin(fns, reps, warmup=2, sync=lambda: None):
    """Wall-clock seconds of each callable, one list per callable: every repetition times each
    callable once, in turn (time.perf_counter), calling `sync` before and after each call (e.g.
    torch.cuda.synchronize for work that ends on the device)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def ratios_round_robin_cpu(fns, baseline, reps, warmup=2):
    """CPU timing for a shared, noisy machine: each callable's ratio to `baseline` is taken
    within every repetition of wall_times_round_robin; returns {name: (median seconds, median of
    the per-repetition ratios baseline_time / time)}. The per-repetition ratio cancels the slow
    drifts (other tenants, frequency) that make separate medians of the two disagree by tens of
    percent."""
    times = wall_times_round_robin(fns, reps, warmup)
    base = times[baseline]
    return {name: (statistics.median(t), statistics.median(b / s for b, s in zip(base, t)))
            for name, t in times.items()}
