"""``featperm protect``: train a block-shuffle-protected ResNet-18, evaluate it as the paper's
Table I, and attack it by key estimation (Table II) and fine-tuning (Table III).

    featperm protect --out runs/p --quick
    featperm protect --out runs/c --data cifar10 --data-dir ~/data --width 64 --preset paper --device cuda

Writes ``results.json``, ``results.md`` and ``accuracy_vs_budget.png`` into ``--out`` and prints a
summary. The experiment loads only when the command runs (it needs the compiled library,
scikit-learn for the digits, tqdm and matplotlib).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pathlib

from featperm._arguments import positive_int

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``featperm protect``."""
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR", help="folder for the results")
    parser.add_argument("--quick", action="store_true", help="the small run (under 5 minutes on 2 CPU cores)")
    parser.add_argument(
        "--data",
        choices=("digits", "cifar10", "imagefolder"),
        default="digits",
        help="built-in digits (default), CIFAR-10 (python pickle layout) or an ImageFolder",
    )
    parser.add_argument("--data-dir", metavar="P", help="folder of --data cifar10 / imagefolder")
    parser.add_argument(
        "--at",
        choices=("conv1", "layer1", "layer2", "layer3", "layer4"),
        default="layer1",
        help="where the block shuffle sits (default layer1)",
    )
    parser.add_argument("--block-size", type=positive_int, default=2, metavar="M", help="block size M (default 2)")
    parser.add_argument("--width", type=positive_int, help="ResNet-18 width (64: the paper's; default 16, quick 8)")
    parser.add_argument(
        "--preset",
        choices=("small", "fast", "paper"),
        default="small",
        help="training recipe: small (CPU, small data), fast, paper (200 epochs)",
    )
    parser.add_argument("--epochs", type=positive_int, help="training epochs (overrides the preset's)")
    parser.add_argument("--wrong-keys", type=positive_int, help="wrong keys to evaluate (default 100, quick 20)")
    parser.add_argument("--attack-images", type=positive_int, help="the thief's labelled images for key estimation")
    parser.add_argument("--rounds", type=positive_int, help="key-estimation rounds over all pairs (paper: 10)")
    parser.add_argument("--random-keys", type=positive_int, help="keys tried by random key search")
    parser.add_argument("--fine-tune-sizes", type=positive_int, nargs="+", metavar="N", help="|D'| values")
    parser.add_argument("--fine-tune-epochs", type=positive_int, help="fine-tuning epochs (paper: 30)")
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=("train", "evaluate", "key-estimation", "fine-tune", "transforms"),
        metavar="STEP",
        help="run only these steps (train, evaluate, key-estimation, fine-tune, transforms; default: all); "
        "later steps load the models of an earlier run in --out",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in --out: skip what is recorded with the same settings, "
        "continue training from the per-epoch checkpoints",
    )
    parser.add_argument(
        "--random-key",
        action="store_true",
        help="draw the secret key from the OS CSPRNG (a key to ship); by default it comes from --seed, "
        "which makes the experiment reproducible and the key known to anyone with the seed",
    )
    parser.add_argument(
        "--transforms",
        nargs="+",
        choices=("SHF", "NP", "FFX"),
        help="input-transform baselines to train (default: SHF NP FFX)",
    )
    parser.add_argument(
        "--transform-block-sizes", type=positive_int, nargs="+", metavar="M", help="their block sizes (default 2 4)"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda; under torchrun, cuda means cuda:LOCAL_RANK (see docs/model_protection.md)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``featperm protect`` with parsed ``args``: build the config, start the process group
    under ``torchrun``, run the stages, render the report (process 0); returns the exit status.
    Raises ValueError for inconsistent options (caught by the CLI: one line, exit status 2)."""
    torch = importlib.import_module("torch")
    experiment = importlib.import_module("featperm.experiments.model_protection")
    distributed = importlib.import_module("featperm.experiments.distributed")
    report = importlib.import_module("featperm.report.model_protection")
    if args.data != "digits" and not args.data_dir:
        raise ValueError(f"protect: --data {args.data} needs --data-dir")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"protect: --device {args.device} but no CUDA device is available")
    config_type = experiment.ProtectionConfig
    config = config_type.quick() if args.quick else config_type()
    changes = {
        "data": args.data,
        "data_dir": args.data_dir,
        "at": args.at,
        "block_size": args.block_size,
        "preset": args.preset,
        "device": args.device,
        "seed": args.seed,
        "random_key": args.random_key,
    }
    for option, field in (
        ("width", "width"),
        ("wrong_keys", "wrong_keys"),
        ("attack_images", "attack_images"),
        ("random_keys", "random_keys"),
        ("fine_tune_epochs", "fine_tune_epochs"),
    ):
        if getattr(args, option):
            changes[field] = getattr(args, option)
    if args.fine_tune_sizes:
        changes["fine_tune_sizes"] = tuple(args.fine_tune_sizes)
    if args.transforms:
        changes["transforms"] = tuple(args.transforms)
    if args.transform_block_sizes:
        changes["transform_block_sizes"] = tuple(args.transform_block_sizes)
    if args.rounds:
        changes["key_estimation"] = dataclasses.replace(config.key_estimation, rounds=args.rounds)
    if args.preset != "small" and not args.quick:
        changes["train"] = None  # the preset's recipe
    config = dataclasses.replace(config, **changes)
    if args.epochs:
        config = dataclasses.replace(config, train=dataclasses.replace(config.training(), epochs=args.epochs))
    config = dataclasses.replace(config, device=distributed.start_from_environment(args.device))
    main_process = distributed.is_main_process()
    try:
        results = experiment.run_model_protection(
            config,
            args.out,
            progress=not args.no_progress,
            steps=tuple(args.steps or experiment.STAGES),
            resume=args.resume,
        )
    finally:
        distributed.stop()
    if not main_process:
        return 0  # process 0 reports
    written = report.render_model_protection(args.out)
    for line in report.summary_lines(results):
        print(line)
    print(f"results: {args.out / 'results.json'}; report and figure: " + ", ".join(p.name for p in written))
    return 0
