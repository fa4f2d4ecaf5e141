"""``featperm demo``: the whole story on built-in data, in one report. No download, no GPU needed.

    featperm demo [--out featperm-demo] [--seed 0] [--device cpu]   (or: make demo; python examples/demo.py)
    featperm demo --report-only --out featperm-demo                  (render the report again)

Three stages, each writing ``results.json`` into its own subfolder of ``--out``:

1. ``feature_attacks/``: trains a small proprietary feature extractor on the built-in pedestrian
   images and attacks its features: attribute inference and reconstruction from plain features,
   from ShuffleBits ciphertext (naive and adaptive attackers, one key or a key per request), and
   from the ChaCha20-Poly1305 cascade; known-plaintext and ciphertext-only key recovery
   (:func:`featperm.experiments.feature_attacks.run_feature_attacks`, its quick configuration).
2. ``model_protection/``: a small ResNet-18 on the built-in digits protected by a block-shuffle
   key: accuracy with the key, with wrong keys, without the transform, after key estimation and
   after fine-tuning (:func:`featperm.experiments.model_protection.run_model_protection`, quick).
3. ``throughput/``: :func:`measure_throughput` times shuffle_bits, unshuffle_bits, block_shuffle
   and seal against ``clone()`` of the same tensor on the device, and checks their round trips.

Then :func:`featperm.report.demo.render_demo_report` writes ``report.md`` and the self-contained
``report.html`` from those files only, and a short summary goes to the terminal. The same
``--seed`` gives the same results (timings aside). The run takes minutes on a CPU (the time
measured on 2 cores is in ``benchmarks/results/README.md``). This module loads the experiments
(and their compiled ops, tqdm and matplotlib) only when the command runs, so ``featperm --help``
stays fast and ``featperm keys`` works where the compiled library is not built.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import pathlib
import platform
import statistics
import sys
import time
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from featperm import bench
from featperm._version import __version__
from featperm.keys import BitKey, BlockKey

__all__ = ["DEFAULT_OUT", "add_arguments", "run", "main", "measure_throughput"]

DEFAULT_OUT = pathlib.Path("featperm-demo")
# The throughput stage's tensor: float32 (N, C, H, W), 16 MiB at the full size, 64 KiB for --quick.
THROUGHPUT_SHAPE = (64, 64, 32, 32)
QUICK_THROUGHPUT_SHAPE = (8, 16, 16, 8)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``featperm demo``."""
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder for the results and the report (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda; the CUDA path of the demo has not yet run on a GPU",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: render report.md and report.html again from the results in --out",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run that checks the whole pipeline in well under a minute; its numbers mean little",
    )


# -- stage 1 and 2: the experiments ------------------------------------------------------------


def _feature_attack_config(quick: bool, seed: int, device: str) -> Any:
    experiment = importlib.import_module("featperm.experiments.feature_attacks")
    # No extractor cache: the demo trains its proprietary extractor every time, so a run depends
    # on nothing outside --out and the same seed gives the same results.json.
    common: Dict[str, Any] = dict(seed=seed, device=device, use_cache=False)
    if not quick:
        return experiment.FeatureAttackConfig.quick(**common)
    extractor = importlib.import_module("featperm.experiments.extractor")
    attributes = importlib.import_module("featperm.attacks.attribute_inference")
    reconstruction = importlib.import_module("featperm.attacks.reconstruction")
    return experiment.FeatureAttackConfig.quick(
        height=32,
        width=16,
        proprietary_identities=12,
        local_identities=10,
        user_identities=6,
        images_per_identity=4,
        extractor=extractor.ExtractorConfig(epochs=1, widths=(8, 16, 32, 64)),
        attributes=attributes.AttributeInferenceConfig(epochs=3, lr=5e-4),
        reconstruction=reconstruction.ReconstructionConfig(
            epochs=1, base_filters=4, discriminator_filters=4, dense_units=32
        ),
        perceptual_epochs=1,
        intercepted_counts=(1, 3, 10),
        known_plaintext_vectors=(1, 2),
        grid_images=4,
        **common,
    )


def _protection_config(quick: bool, seed: int, device: str) -> Any:
    experiment = importlib.import_module("featperm.experiments.model_protection")
    # The input-transform baselines (`featperm protect`) train more networks: past the demo's
    # time budget, and not part of its story.
    common: Dict[str, Any] = dict(seed=seed, device=device, transforms=())
    if not quick:
        # The quick run, with the key estimation's label budget (200 images) among the
        # fine-tuning sizes: training from scratch on those images is its honest baseline.
        return experiment.ProtectionConfig.quick(fine_tune_sizes=(50, 200, 500), **common)
    key_estimation = importlib.import_module("featperm.attacks.key_estimation")
    return experiment.ProtectionConfig.quick(
        width=4,
        train=experiment.TrainConfig.small(epochs=1),
        wrong_keys=3,
        attack_images=32,
        random_keys=4,
        key_estimation=key_estimation.KeyEstimationConfig(rounds=1, max_candidates=16),
        fine_tune_sizes=(32,),
        fine_tune_epochs=1,
        **common,
    )


# -- stage 3: throughput -------------------------------------------------------------------------


def _timing_module() -> Optional[ModuleType]:
    """The checkout's ``benchmarks/timing.py`` (the timing helpers of the benchmark scripts), or
    None where featperm is installed without its checkout."""
    folder = bench.benchmarks_dir()
    path = folder / "timing.py" if folder is not None else None
    if path is None or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("featperm_benchmarks_timing", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _round_trips(
    x: torch.Tensor, bit_key: BitKey, block_key: BlockKey, aead_key: bytes, nonce: bytes
) -> Dict[str, bool]:
    """Each op's inverse restores ``x`` bit for bit; a flipped bit of a sealed container is refused."""
    ops = importlib.import_module("featperm.ops")
    crypto = importlib.import_module("featperm.crypto")
    as_words = x.view(torch.int32)
    shuffled = ops.shuffle_bits(x, bit_key, as_integer=True)
    sealed = crypto.seal(x, aead_key, nonce, aad=b"featperm demo")
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    try:
        crypto.open_sealed(tampered, aead_key, aad=b"featperm demo")
        refused = False
    except crypto.AuthenticationError:
        refused = True
    opened = crypto.open_sealed(sealed, aead_key, aad=b"featperm demo", device=x.device)
    return {
        "shuffle_bits_then_unshuffle_bits_exact": torch.equal(
            ops.unshuffle_bits(shuffled, bit_key, dtype=torch.float32).view(torch.int32), as_words
        ),
        "block_shuffle_then_block_unshuffle_exact": torch.equal(
            ops.block_unshuffle(ops.block_shuffle(x, block_key), block_key).view(torch.int32), as_words
        ),
        "seal_then_open_exact": torch.equal(opened.view(torch.int32), as_words),
        "tampered_container_refused": refused,
    }


def measure_throughput(
    out_dir: str | pathlib.Path,
    *,
    device: str = "cpu",
    seed: int = 0,
    shape: Sequence[int] = THROUGHPUT_SHAPE,
    seconds_per_op: float = 1.5,
    progress: bool = True,
) -> Dict[str, Any]:
    """Time ``shuffle_bits``, ``unshuffle_bits``, ``block_shuffle`` (M = 2) and ``seal``
    (ChaCha20-Poly1305) against ``tensor.clone()`` on one float32 tensor of ``shape`` (N, C, H, W)
    on ``device``, about ``seconds_per_op`` seconds each, and check each op's round trip.

    The ops are timed round robin, each called once per round in turn with ``clone()``
    (``wall_times_round_robin`` of the checkout's ``benchmarks/timing.py``, synchronising CUDA
    around each call), so that the drifts of a shared machine affect all alike. Per op: median
    and minimum milliseconds, GB/s (tensor bytes / median time) and ``vs_clone``, the median over
    rounds of clone's time / the op's time (1.0: as fast as ``clone()``). Writes
    ``out_dir/results.json`` and returns it; where featperm runs without its checkout (no
    ``benchmarks/timing.py``) it records why nothing was measured instead.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ops = importlib.import_module("featperm.ops")
    crypto = importlib.import_module("featperm.crypto")
    progress_module = importlib.import_module("featperm.experiments._progress")
    cuda = torch.device(device).type == "cuda"
    device_name = torch.cuda.get_device_name(torch.device(device)) if cuda else bench.cpu_model()
    results: Dict[str, Any] = {"device": device, "device_name": device_name}
    timing = _timing_module()
    if timing is None:
        results["skipped"] = "featperm runs without its checkout here: the timing helpers are benchmarks/timing.py"
    else:
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(tuple(shape), generator=generator).to(device)
        channels, height, width = x.shape[1:]
        if height % 2 or width % 2:
            raise ValueError(f"measure_throughput: H and W must be even (block size 2), got shape {tuple(shape)}")
        bit_key = BitKey(torch.randperm(32, generator=generator))
        block_key = BlockKey(torch.randperm(channels * 4, generator=generator), channels=channels, block_size=2)
        aead_key = torch.randint(0, 256, (32,), generator=generator, dtype=torch.uint8).numpy().tobytes()
        nonce = torch.randint(0, 256, (12,), generator=generator, dtype=torch.uint8).numpy().tobytes()
        cipher = ops.shuffle_bits(x, bit_key)
        results["checks"] = _round_trips(x, bit_key, block_key, aead_key, nonce)
        # One (key, nonce) for every timed seal: these containers are measured and dropped, never
        # sent, so nothing is encrypted twice in the open (a real sender uses featperm.Sealer).
        calls: Dict[str, Callable[[], Any]] = {
            "clone": x.clone,
            "shuffle_bits": lambda: ops.shuffle_bits(x, bit_key),
            "unshuffle_bits": lambda: ops.unshuffle_bits(cipher, bit_key),
            "block_shuffle": lambda: ops.block_shuffle(x, block_key),
            "seal": lambda: crypto.seal(x, aead_key, nonce),
        }
        sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
        # Rounds: enough for about seconds_per_op per op, from one timed round after warm-up.
        one_round = sum(timing.wall_times_round_robin(calls, 1, warmup=2, sync=sync)[name][0] for name in calls)
        rounds = max(5, min(5000, round(seconds_per_op * len(calls) / max(one_round, 1e-9))))
        chunks = min(rounds, 20)
        times: Dict[str, List[float]] = {name: [] for name in calls}

        def timed(bar: Callable[[int, int], None]) -> None:
            done = 0
            for chunk in range(chunks):
                count = rounds // chunks + (1 if chunk < rounds % chunks else 0)
                for name, seconds in timing.wall_times_round_robin(calls, count, warmup=0, sync=sync).items():
                    times[name].extend(seconds)
                done += count
                bar(done, rounds)

        progress_module.run_with_bar("throughput (rounds)", rounds, progress, timed)
        size = x.numel() * x.element_size()
        clone_times = times["clone"]
        results["ops"] = {
            name: {
                "median_ms": 1e3 * statistics.median(seconds),
                "min_ms": 1e3 * min(seconds),
                "gb_per_s": size / statistics.median(seconds) / 1e9,
                "vs_clone": statistics.median(c / s for c, s in zip(clone_times, seconds)),
            }
            for name, seconds in times.items()
        }
        results["tensor"] = {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""), "bytes": size}
        results["rounds"] = rounds
        results["seconds_per_op"] = seconds_per_op
        results["timing"] = "wall clock, round robin: wall_times_round_robin of benchmarks/timing.py"
        results["threads"] = torch.get_num_threads()
        results["cpu_kernels"] = ops.cpu_kernels()
    results["run"] = {
        "featperm": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "seed": seed,
        "seconds": time.perf_counter() - started,
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    return results


# -- the command ---------------------------------------------------------------------------------


def _stages(args: argparse.Namespace) -> List[Tuple[str, str, Callable[[pathlib.Path], Any]]]:
    """(folder, title, run(folder)) of each stage, in order."""
    progress = not args.no_progress
    feature_attacks = importlib.import_module("featperm.experiments.feature_attacks")
    model_protection = importlib.import_module("featperm.experiments.model_protection")
    feature_config = _feature_attack_config(args.quick, args.seed, args.device)
    protection_config = _protection_config(args.quick, args.seed, args.device)
    shape = QUICK_THROUGHPUT_SHAPE if args.quick else THROUGHPUT_SHAPE
    seconds = 0.05 if args.quick else 1.5
    return [
        (
            "feature_attacks",
            "attacks on deep features (plain, ShuffleBits, ChaCha20-Poly1305 cascade)",
            lambda folder: feature_attacks.run_feature_attacks(feature_config, folder, progress=progress),
        ),
        (
            "model_protection",
            "a CNN protected by a block-shuffle key, and its attacks",
            lambda folder: model_protection.run_model_protection(protection_config, folder, progress=progress),
        ),
        (
            "throughput",
            "op throughput against clone()",
            lambda folder: measure_throughput(
                folder, device=args.device, seed=args.seed, shape=shape, seconds_per_op=seconds, progress=progress
            ),
        ),
    ]


def run(args: argparse.Namespace) -> int:
    """Run the three stages into ``args.out`` (unless ``--report-only``), render the report,
    print the summary."""
    report = importlib.import_module("featperm.report.demo")
    out: pathlib.Path = args.out
    started = time.perf_counter()
    if not args.report_only:
        if args.seed < 0:
            raise ValueError(f"demo: --seed must be >= 0, got {args.seed}")
        if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"demo: --device {args.device} but no CUDA device is available")
        stages = _stages(args)
        for index, (folder, title, stage) in enumerate(stages, 1):
            print(f"[{index}/{len(stages)}] {title} -> {out / folder}", flush=True)
            stage(out / folder)
    report.render_demo_report(out)
    for line in report.summary_lines(report.load_stage_results(out)):
        print(line)
    took = "" if args.report_only else f" ({time.perf_counter() - started:.0f} s)"
    print(f"report{took}: {out / 'report.html'} and {out / 'report.md'}; results: {out}/*/results.json")
    sys.stdout.flush()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``featperm demo`` with its own argument parser (``featperm.cli`` adds one-line errors)."""
    parser = argparse.ArgumentParser(prog="featperm demo", description=__doc__.split("\n", 1)[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
