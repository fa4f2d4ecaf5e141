"""pytest-benchmark settings shared by the benchmarks/test_bench_*.py files.

Every ``--benchmark-json`` file names what it was measured with: besides pytest-benchmark's own
``machine_info`` (platform, Python, py-cpuinfo) and ``datetime`` (UTC), the processor's model
name, the torch, featperm and (where installed) ``cryptography``/OpenSSL versions, and the variant
each featperm CPU kernel ran by default (``featperm.ops.cpu_kernels()``); the same fields also
appear at the top level of the JSON (``device``, ``torch``, ``featperm``, ``cpu_kernels``, ...).
Per-round times are dropped from the JSON (summary statistics only), which keeps files small.
"""

import torch

import featperm
import featperm.ops
from featperm.bench import cpu_model


def _featperm_info():
    info = {"device": cpu_model(), "torch": torch.__version__, "featperm": featperm.__version__,
            "cpu_kernels": featperm.ops.cpu_kernels()}
    try:
        import cryptography
        from cryptography.hazmat.backends.openssl.backend import backend
    except ImportError:
        return info
    info["cryptography"] = cryptography.__version__
    info["openssl"] = backend.openssl_version_text()
    return info


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info.update(_featperm_info())


def pytest_benchmark_update_json(config, benchmarks, output_json):
    for name, value in _featperm_info().items():
        output_json.setdefault(name, value)
    # pytest-benchmark writes every round's time into --benchmark-json (hundreds of thousands for
    # the microsecond cases: tens of MB); keep the summary statistics (min, quartiles, median,
    # mean, max, rounds, ...), which is what the docs quote.
    for bench in output_json.get("benchmarks", []):
        bench.get("stats", {}).pop("data", None)
    output_json["per_round_times"] = "not kept (summary statistics only; benchmarks/conftest.py)"
