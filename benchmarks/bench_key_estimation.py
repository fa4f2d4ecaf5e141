"""Key estimation (AprilPyone & Kiya, Algorithm 1): the literal loop against estimate_key.

    python benchmarks/bench_key_estimation.py [--device cuda] [--width 64] [--images 1000]
        [--image-size 32] [--candidates 300] [--reps 3] [--threads N] [--out results.json]

A ResNet-18 (featperm.models.resnet18_cifar, --width) protected after conv1 with a block
shuffle of M=2 (--block-size). No training: the attack labels are the protected model's own
predictions with the true key on random images (its fc bias centred so that they spread over
the classes), so the true key scores 100% and wrong keys
less, which gives the search a real landscape. Both searches walk the same first --candidates
swaps of a sweep in two regimes:

  start  from a random key and acc = 0, as the paper's search begins (swaps are often kept)
  late   from the true key with --late-swaps random transpositions, acc = that key's count
         (how the search spends most of its time: almost every swap is rejected)

Both must return the same key, count and accepted swaps (checked). Reported per regime and
repetition, in turn: seconds of each, the speed-up (literal / batched), candidate swaps per
second, images pushed through the model.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import featperm
from featperm.attacks.key_estimation import (
    KeyEstimationConfig,
    estimate_key,
    estimate_key_literal,
    random_block_key,
)
from featperm.models import resnet18_cifar


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=2)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=300, help="candidate swaps walked per search")
    parser.add_argument("--candidates-per-batch", type=int, default=64)
    parser.add_argument("--image-batch", type=int, default=4096)
    parser.add_argument("--image-chunk", type=int, default=64)
    parser.add_argument("--late-swaps", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the results as JSON to this path")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    model = resnet18_cifar(num_classes=10, width=args.width).to(device, dtype).eval()
    c, m = args.width, args.block_size
    true_key = random_block_key(channels=c, block_size=m, seed=args.seed + 1)
    g = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.images, 3, args.image_size, args.image_size, generator=g).to(device, dtype)

    def above(a):
        return model.forward_from("conv1", a)

    with torch.no_grad():
        acts = model.features_at(images, "conv1")
        # an untrained network predicts nearly one class everywhere: centre its logits (fc bias)
        # on the attack images so that its predictions spread over the classes
        model.fc.bias -= above(featperm.block_shuffle(acts, true_key)).mean(0)
        labels = above(featperm.block_shuffle(acts, true_key)).argmax(1)
        # the late regime's start: the true key with a few random transpositions
        late = true_key.permutation()
        for _ in range(args.late_swaps):
            i, j = torch.randperm(late.numel(), generator=g)[:2].tolist()
            late[[i, j]] = late[[j, i]]
        late_key = featperm.BlockKey(late, channels=c, block_size=m)
        late_correct = int((above(featperm.block_shuffle(acts, late_key)).argmax(1) == labels).sum())
        start_key = random_block_key(channels=c, block_size=m, seed=args.seed + 2)
        start_correct = int((above(featperm.block_shuffle(acts, start_key)).argmax(1) == labels).sum())
    config = KeyEstimationConfig(
        rounds=1,
        candidates_per_batch=args.candidates_per_batch,
        image_batch=args.image_batch,
        image_chunk=args.image_chunk,
        max_candidates=args.candidates,
    )
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"key estimation benchmark: {device} ({where}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.dtype}; ResNet-18 width {args.width}, "
        f"protected after conv1, C*M*M = {c * m * m} positions, {args.images} images of "
        f"{args.image_size}x{args.image_size}, "
        f"first {args.candidates} swaps of a sweep"
    )
    print(f"  random key: {start_correct}/{args.images} correct; "
          f"late start ({args.late_swaps} swaps off): {late_correct}")
    regimes = {"start": (start_key, 0), "late": (late_key, late_correct)}
    results = []
    for name, (key, acc0) in regimes.items():
        times = {"literal": [], "batched": []}
        for rep in range(args.reps):
            sync(device)
            t = time.perf_counter()
            lit = estimate_key_literal(acts, labels, above, key, rounds=1, initial_correct=acc0,
                                       max_candidates=args.candidates, image_batch=args.image_batch)
            sync(device)
            times["literal"].append(time.perf_counter() - t)
            t = time.perf_counter()
            bat = estimate_key(acts, labels, above, key, config, initial_correct=acc0)
            sync(device)
            times["batched"].append(time.perf_counter() - t)
            same = lit.key == bat.key and (lit.correct, lit.accepted, lit.evaluated) == (
                bat.correct, bat.accepted, bat.evaluated)
            if not same:
                print(f"  MISMATCH in {name} rep {rep}: literal {lit.correct}/{lit.accepted}, "
                      f"batched {bat.correct}/{bat.accepted}")
        tl, tb = statistics.median(times["literal"]), statistics.median(times["batched"])
        row = {
            "regime": name,
            "initial_correct": acc0,
            "final_correct": bat.correct,
            "accepted": bat.accepted,
            "candidates": bat.evaluated,
            "identical": same,
            "literal_s": tl,
            "batched_s": tb,
            "speedup": tl / tb,
            "literal_swaps_per_s": bat.evaluated / tl,
            "batched_swaps_per_s": bat.evaluated / tb,
            "literal_images": lit.forward_images,
            "batched_images": bat.forward_images,
            "literal_all_s": times["literal"],
            "batched_all_s": times["batched"],
        }
        results.append(row)
        print(
            f"  {name:>5}: acc {acc0} -> {bat.correct}, {bat.accepted} of {bat.evaluated} swaps kept, "
            f"identical={same}; "
            f"literal {tl:.3f} s ({row['literal_swaps_per_s']:.1f} swaps/s, {lit.forward_images} images), "
            f"batched {tb:.3f} s ({row['batched_swaps_per_s']:.1f} swaps/s, {bat.forward_images} images): "
            f"speed-up {row['speedup']:.2f}x"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "torch": torch.__version__, "device": str(device), "results": results},
                      f, indent=2)
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
