"""Load benchmark of `featperm serve` on loopback: requests per second and p50/p99 latency for 1, 8 and
64 concurrent clients, every mode next to `plain`, with and without batching.

    python benchmarks/bench_serve.py [--seconds 2] [--rounds 2] [--out benchmarks/results/serve_....json]

One `featperm serve` process per configuration (the built-in re-ID extractor, 64x32 images,
--threads 1), all started first, then measured interleaved: for each concurrency level, `--rounds`
rounds, each round `--seconds` per configuration in turn, so that the load of other tenants of a
shared machine spreads over all configurations alike. The load generator is one asyncio process
of closed-loop clients on keep-alive HTTP/1.1 connections; each request is one image as .npy with
a fresh random 32-byte key. It reads the response bodies but does not decrypt them during the
timed part (the server's cost is measured); before timing, each configuration's answer to the
same image is decrypted and checked against the plain-mode features. It also times
featperm.serve.protocol.encode_features (the server's per-response encryption) in this process.

The load generator shares the machine's cores with the servers: on a 2-core machine that
understates what a server alone reaches. Bounded: about (levels x rounds x configurations x
seconds) + startup, under 3 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import io
import json
import os
import pathlib
import platform
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featperm  # noqa: E402
from featperm.bench import cpu_model  # noqa: E402
from featperm.datasets.pedestrians import synthetic_pedestrians  # noqa: E402
from featperm.serve import protocol  # noqa: E402

# (name, mode, batch window in ms)
CONFIGURATIONS = [
    ("plain", "plain", 2.0),
    ("sealed", "sealed", 2.0),
    ("cascade", "cascade", 2.0),
    ("shufflebits", "shufflebits", 2.0),
    ("plain, no batching", "plain", 0.0),
    ("sealed, no batching", "sealed", 0.0),
]


def start_server(mode, window_ms, threads):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads))
    process = subprocess.Popen(
        [sys.executable, "-m", "featperm.cli", "serve", "--port", "0", "--mode", mode, "--threads", str(threads),
         "--batch-window-ms", str(window_ms), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(ROOT))
    return process


def wait_for_url(process):
    line = process.stdout.readline()
    if not line.startswith("featperm serve: http://"):
        raise RuntimeError(f"the server did not start: {line!r}")
    return line.split()[2]


def npy_image(image):
    buffer = io.BytesIO()
    np.save(buffer, image[None], allow_pickle=False)
    return buffer.getvalue()


async def http_post(reader, writer, host, body, key):
    """One POST /v1/features on an open keep-alive connection: (status, headers, body)."""
    head = (f"POST /v1/features HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-npy\r\n"
            f"X-Featperm-Key: {base64.b64encode(key).decode()}\r\nContent-Length: {len(body)}\r\n\r\n")
    writer.write(head.encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    payload = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, payload


async def run_load(url, bodies, concurrency, seconds):
    """``concurrency`` closed-loop clients for ``seconds``: latencies (s) of the answered requests."""
    host, port = url.split("//")[1].split(":")
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds

    async def client(number):
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        i = number
        try:
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                i += concurrency
                start = time.perf_counter()
                status, _, _ = await http_post(reader, writer, f"{host}:{port}", body, secrets.token_bytes(32))
                if status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


async def check_answers(urls, body):
    """Every configuration's answer to one image, decrypted here, equals plain mode's features."""
    opened = {}
    for name, url in urls.items():
        host, port = url.split("//")[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = secrets.token_bytes(32)
        status, headers, payload = await http_post(reader, writer, f"{host}:{port}", body, key)
        writer.close()
        assert status == 200, (name, status, payload[:200])
        shape = protocol.parse_shape(headers["x-featperm-shape"])
        opened[name] = protocol.decode_features(payload, headers["x-featperm-mode"], key, shape)
    reference = opened["plain"]
    return {name: bool(torch.equal(features, reference)) for name, features in opened.items()}


def encode_cost_us(reps=300):
    """Median microseconds of protocol.encode_features for one response of (1, 256) float32."""
    features = torch.rand(1, 256)
    key = secrets.token_bytes(32)
    costs = {}
    for mode in protocol.MODES:
        protocol.encode_features(features, mode, key)
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            protocol.encode_features(features, mode, key)
            samples.append(time.perf_counter() - start)
        costs[mode] = round(statistics.median(samples) * 1e6, 1)
    return costs


def served_counters(url):
    """(forward passes, requests) the server has run so far (GET /v1/info)."""
    with urllib.request.urlopen(url + "/v1/info", timeout=30) as response:
        served = json.loads(response.read())["served"]
    return served["forward_passes"], served["requests"]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per configuration, level and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per level (default 2)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 64], help="concurrent clients")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server (default 1)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="configurations to run (default all; plain first)")
    parser.add_argument("--out", type=pathlib.Path, help="JSON results (and a .md table beside it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    begun = time.time()

    configurations = [c for c in CONFIGURATIONS if not args.only or c[0] in args.only]
    if configurations[0][0] != "plain":
        parser.error("--only must include plain (the reference of the overhead)")
    processes = {name: start_server(mode, window, args.threads) for name, mode, window in configurations}
    try:
        urls = {name: wait_for_url(process) for name, process in processes.items()}
        startup_s = time.time() - begun
        people = synthetic_pedestrians(32, 1, domain="campus", seed=3)
        bodies = [npy_image(image.numpy()) for image in people.images]
        correct = asyncio.run(check_answers(urls, bodies[0]))
        assert all(correct.values()), correct
        measured = {name: {level: {"latencies": [], "errors": 0, "seconds": 0.0, "passes": 0, "requests": 0}
                           for level in args.levels} for name in urls}
        for level in args.levels:
            for _ in range(args.rounds):
                for name, url in urls.items():
                    passes, requests = served_counters(url)
                    latencies, errors, elapsed = asyncio.run(run_load(url, bodies, level, args.seconds))
                    passes_after, requests_after = served_counters(url)
                    cell = measured[name][level]
                    cell["passes"] += passes_after - passes
                    cell["requests"] += requests_after - requests
                    cell["latencies"] += latencies
                    cell["errors"] += errors
                    cell["seconds"] += elapsed
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(30)
    encode_us = encode_cost_us()

    rows = []
    for name, mode, window in configurations:
        for level in args.levels:
            cell = measured[name][level]
            lat = cell["latencies"]
            rows.append({
                "configuration": name, "mode": mode, "batch_window_ms": window, "clients": level,
                "requests": len(lat), "errors": cell["errors"], "seconds": round(cell["seconds"], 2),
                "requests_per_s": round(len(lat) / cell["seconds"], 1),
                "p50_ms": round(percentile(lat, 50) * 1e3, 2), "p99_ms": round(percentile(lat, 99) * 1e3, 2),
                "mean_batch": round(cell["requests"] / max(cell["passes"], 1), 2),
            })
    by = {(r["configuration"], r["clients"]): r for r in rows}
    overhead = []
    for name, mode, window in configurations:
        base = "plain" if window > 0 else "plain, no batching"
        if mode == "plain" or base not in measured:
            continue
        for level in args.levels:
            r, p = by[(name, level)], by[(base, level)]
            overhead.append({
                "configuration": name, "against": base, "clients": level,
                "p50_added_percent": round(100 * (r["p50_ms"] / p["p50_ms"] - 1), 1),
                "throughput_lost_percent": round(100 * (1 - r["requests_per_s"] / p["requests_per_s"]), 1),
            })
    result = {
        "benchmark": "featperm serve, loopback HTTP load",
        "command": "python benchmarks/bench_serve.py " + " ".join(sys.argv[1:]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "device": cpu_model(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__, "featperm": featperm.__version__,
        "model": "builtin re-ID extractor (64x32 images, 256 features), one image per request as .npy",
        "server_threads": args.threads, "seconds_per_cell": args.seconds, "rounds": args.rounds,
        "server_startup_s": round(startup_s, 1), "decrypted_equal_to_plain": correct,
        "encode_features_median_us": encode_us,
        "results": rows, "overhead_vs_plain": overhead, "total_s": round(time.time() - begun, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))


def markdown(result):
    lines = [
        f"# featperm serve on loopback: {result['device']} ({result['cpu_count']} CPUs), {result['date_utc']} UTC",
        "",
        f"`{result['command']}`; torch {result['torch']}; {result['model']}; server `--threads "
        f"{result['server_threads']}`; the load generator ran on the same CPUs.",
        "",
        "| configuration | clients | req/s | p50 ms | p99 ms | requests | errors | mean batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        lines.append(f"| {r['configuration']} | {r['clients']} | {r['requests_per_s']} | {r['p50_ms']} | "
                     f"{r['p99_ms']} | {r['requests']} | {r['errors']} | {r['mean_batch']} |")
    lines += ["", "Against plain mode with the same batching (positive = worse):", "",
              "| configuration | clients | p50 added | throughput lost |", "|---|---:|---:|---:|"]
    for o in result["overhead_vs_plain"]:
        lines.append(f"| {o['configuration']} | {o['clients']} | {o['p50_added_percent']}% | "
                     f"{o['throughput_lost_percent']}% |")
    costs = ", ".join(f"{mode} {us} µs" for mode, us in result["encode_features_median_us"].items())
    lines += ["", f"Per-response encoding of (1, 256) float32 (median, in the benchmark process): {costs}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
