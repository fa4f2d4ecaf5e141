"""``featperm bench``: run the benchmark suite of a checkout for the present device, keep the results.

The benchmarks live in the repository's ``benchmarks/`` folder, next to the ``featperm`` package
(so this needs a checkout, not an installed wheel). On every machine the CPU benchmarks run
(the pytest-benchmark files with ``--benchmark-json``, ``bench_block_shuffle_cpu.py`` and the
known-plaintext and ciphertext-only cryptanalysis measurements with ``--out``); where a CUDA GPU
and featperm's CUDA kernels are present, the ``bench_*_gpu.py`` scripts run as well. Each
benchmark runs as a subprocess of the same Python (``sys.executable``), one after the other, and
leaves two files in the output folder
(default: ``benchmarks/results/`` of the checkout)::

    <name>_<device tag>_<UTC date>[_quick][_<n>].json   the benchmark's own JSON results
    <name>_<device tag>_<UTC date>[_quick][_<n>].log    its output, after a header naming the
                                                        command, device, torch version and date

for example ``shuffle_bits_cpu_epyc_2026-12-02.json``; ``_<n>`` keeps an earlier file of the same
day. Benchmarks are measurements, not tests: the exit status says only whether every benchmark
ran (0), whether one failed to run or to write its results (1, after running the others), or
that nothing could run (2: no ``benchmarks/`` folder, a benchmark that needs a GPU absent here).

    featperm bench [--out DIR] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["BENCHMARKS", "Benchmark", "add_arguments", "benchmarks_dir", "cpu_model", "device_tag", "run"]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of ``benchmarks/``: a pytest-benchmark file or a script taking ``--out``."""

    name: str
    script: str
    device: str  # "cpu" or "cuda": where it runs
    quick: tuple[str, ...] = ()  # extra arguments for --quick

    @property
    def is_pytest(self) -> bool:
        """True for a pytest-benchmark file (``test_*.py``), run through pytest; False for a
        script run directly with ``--out``."""
        return self.script.startswith("test_")


# pytest-benchmark: fewer, shorter rounds (the files' own settings stay the default).
_PYTEST_QUICK = ("--benchmark-min-rounds=3", "--benchmark-max-time=0.1", "--benchmark-warmup=off")

BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("shuffle_bits_cpu", "test_bench_shuffle_bits_cpu.py", "cpu", _PYTEST_QUICK),
    Benchmark("crypto_cpu", "test_bench_crypto_cpu.py", "cpu", _PYTEST_QUICK),
    Benchmark("keys_cpu", "test_bench_keys_cpu.py", "cpu", _PYTEST_QUICK),
    Benchmark(
        "block_shuffle_cpu_ops", "test_bench_block_shuffle_cpu.py", "cpu", _PYTEST_QUICK + ("-k", "not 64x256x64x64")
    ),
    Benchmark(
        "block_shuffle_cpu",
        "bench_block_shuffle_cpu.py",
        "cpu",
        ("--reps", "3", "--batch-divisor", "16", "--no-compile"),
    ),
    Benchmark("known_plaintext", "measure_known_plaintext.py", "cpu", ("--keys", "20")),
    Benchmark("cryptanalysis", "measure_cryptanalysis.py", "cpu", ("--vectors", "200", "--reps", "2")),
    Benchmark(
        "shuffle_bits_gpu", "bench_shuffle_bits_gpu.py", "cuda", ("--sizes-mib", "0.25", "64", "--dtypes", "float32")
    ),
    Benchmark(
        "block_shuffle_gpu", "bench_block_shuffle_gpu.py", "cuda", ("--iters", "10", "--warmup", "3", "--no-compile")
    ),
    Benchmark("crypto_gpu", "bench_crypto_gpu.py", "cuda", ("--reps", "10")),
)

# Words that do not tell one device from another (vendors, marks, memory sizes and kinds).
_NOISE = re.compile(
    r"^(amd|intel|nvidia|r|tm|c|cpu|gpu|processor|core|geforce|tesla|\d{1,2}|\d+gb|"
    r"hbm\d*e?|gddr\d*x?|pcie|sxm\d*|nvl|with|radeon|graphics|\d+(\.\d+)?ghz)$"
)


def benchmarks_dir() -> Path | None:
    """The ``benchmarks/`` folder of the checkout this featperm package belongs to, or None."""
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    return folder if folder.is_dir() else None


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_tag(device_name: str) -> str:
    """A short file-name tag for a device: "AMD EPYC" -> "epyc", "NVIDIA H100 80GB HBM3" -> "h100"."""
    words = (w.strip(".") for w in re.split(r"[^0-9a-z.]+", device_name.lower()))
    kept = [w for w in words if w and not _NOISE.match(w)]
    return "-".join(kept[:2]).replace(".", "") or "unknown"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``featperm bench``."""
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help="folder for the result files (default: benchmarks/results/ of the checkout)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions and sizes (about a minute on the CPU; files named *_quick*)",
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        choices=[b.name for b in BENCHMARKS],
        help="run only this benchmark (repeatable): %(choices)s",
    )


def _cuda_device() -> str | None:
    """The GPU's name where CUDA and featperm's CUDA kernels are present, else None."""
    # The ops are loaded only here (importlib: this module is imported by the featperm command,
    # which must work for key files where the compiled library is not built).
    if torch.cuda.is_available() and importlib.import_module("featperm.ops").has_cuda_kernels():
        return str(torch.cuda.get_device_name())
    return None


def _free_stem(folder: Path, stem: str) -> str:
    candidate, n = stem, 1
    while (folder / f"{candidate}.json").exists() or (folder / f"{candidate}.log").exists():
        n += 1
        candidate = f"{stem}_{n}"
    return candidate


def _command(bench: Benchmark, script: Path, json_path: Path, quick: bool) -> list[str]:
    if bench.is_pytest:
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(script),
            "-p",
            "no:cacheprovider",
            f"--benchmark-json={json_path}",
            "--benchmark-sort=name",
            "--benchmark-columns=min,median,ops",
        ]
    else:
        command = [sys.executable, str(script), "--out", str(json_path)]
    return command + (list(bench.quick) if quick else [])


def _run_one(command: Sequence[str], header: str, log_path: Path, cwd: Path, env: dict[str, str]) -> int:
    """Runs command, its output streamed to the terminal and to log_path; returns its exit status."""
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(header)
        log.flush()
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
        return process.wait()


def run(args: argparse.Namespace) -> int:
    """Runs the selected benchmarks; 0 if all ran, 1 if one failed, 2 if none could run."""
    folder = benchmarks_dir()
    if folder is None:
        print(
            "featperm bench: no benchmarks/ folder next to the featperm package "
            f"({Path(__file__).resolve().parent.parent}); run it from a checkout",
            file=sys.stderr,
        )
        return 2
    root = folder.parent
    gpu = _cuda_device()
    devices = {"cpu": cpu_model(), **({"cuda": gpu} if gpu else {})}
    selected = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    missing = [b.name for b in selected if b.device not in devices and args.only]
    if missing:
        print(
            f"featperm bench: {', '.join(missing)} needs a CUDA GPU and featperm's CUDA kernels, absent here",
            file=sys.stderr,
        )
        return 2
    selected = [b for b in selected if b.device in devices]
    out_dir: Path = args.out if args.out is not None else folder / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    date = now.strftime("%Y-%m-%d")
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p),
    )
    print(
        f"featperm bench: {len(selected)} benchmark(s) on {' + '.join(devices.values())}, "
        f"torch {torch.__version__}, {now:%Y-%m-%d %H:%M} UTC{', quick' if args.quick else ''}; "
        f"results in {out_dir}",
        flush=True,
    )
    outcomes: list[tuple[str, str, list[Path]]] = []
    for bench in selected:
        device_name = devices[bench.device]
        stem = f"{bench.name}_{device_tag(device_name)}_{date}" + ("_quick" if args.quick else "")
        stem = _free_stem(out_dir, stem)
        json_path, log_path = out_dir / f"{stem}.json", out_dir / f"{stem}.log"
        command = _command(bench, folder / bench.script, json_path, args.quick)
        started = datetime.datetime.now(datetime.timezone.utc)
        header = (
            f"# featperm bench: {bench.name}\n# command: {shlex.join(command)}\n"
            f"# device: {device_name}\n# torch: {torch.__version__}, Python {platform.python_version()}\n"
            f"# started (UTC): {started.isoformat(timespec='seconds')}\n"
        )
        print(f"\n=== {bench.name}: {shlex.join(command)}", flush=True)
        status = _run_one(command, header, log_path, root, env)
        if status != 0:
            outcome = f"FAILED (exit status {status})"
        elif not json_path.exists():
            outcome = "FAILED (no JSON results written)"
        else:
            outcome = "ok"
        written = [p for p in (json_path, log_path) if p.exists()]
        outcomes.append((bench.name, outcome, written))
        for path in written:
            print(f"{bench.name}: wrote {path}", flush=True)

    print("\nfeatperm bench summary:")
    for name, outcome, written in outcomes:
        print(f"  {name}: {outcome}; " + ", ".join(str(p) for p in written))
    return 1 if any(outcome != "ok" for _, outcome, _ in outcomes) else 0
