"""``featperm attack-features``: the ShuffleBits paper's attacks on deep features, and the
cryptanalysis of ShuffleBits, on built-in data, the papers' datasets, or a user's own features.

    featperm attack-features --out runs/features --quick
    featperm attack-features --out runs/market --data market1501 --data-dir ~/data --authors-features bot.npz
    featperm attack-features --out runs/mine --features my_features.npz

Writes ``results.json``, ``results.md`` and PNG figures into ``--out`` and prints a summary. The
experiment and report modules (and their optional dependencies: scipy, tqdm, matplotlib) load
only when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pathlib
import sys

from featperm._arguments import positive_int

__all__ = ["add_arguments", "run"]

DATA_SOURCES = ("synthetic", "market1501", "duke")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``featperm attack-features``."""
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR", help="folder for the results")
    parser.add_argument("--quick", action="store_true", help="the small run (under 3 minutes on 2 CPU cores)")
    parser.add_argument(
        "--data", choices=DATA_SOURCES, default="synthetic", help="built-in pedestrians (default) or a re-ID dataset"
    )
    parser.add_argument("--data-dir", metavar="P", help="folder holding Market-1501-v15.09.15/ and/or DukeMTMC-reID/")
    parser.add_argument(
        "--features",
        metavar="FILE.npz",
        help="your own features: 'features' (N, D) and one integer label array per attribute "
        "(optional 'split': 0 = attacker's data, 1 = intercepted); reconstruction is skipped",
    )
    parser.add_argument(
        "--authors-features",
        metavar="FILE.npz",
        help="with --data market1501/duke: the ShuffleBits authors' feature file "
        "(accumulated_image_file_paths, accumulated_feature_array) instead of training an extractor",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda; the CUDA path has not yet run on a GPU (README: where the tests have run)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    parser.add_argument("--image-size", nargs=2, type=positive_int, metavar=("H", "W"), help="image height and width")
    parser.add_argument(
        "--identities",
        nargs=3,
        type=positive_int,
        metavar=("PROPRIETARY", "LOCAL", "USERS"),
        help="built-in data: identities of the proprietary, attacker's and users' sets",
    )
    parser.add_argument(
        "--images-per-identity", type=positive_int, metavar="K", help="built-in data: images per identity"
    )
    parser.add_argument(
        "--target-domain",
        choices=("campus", "street", "mall"),
        default=None,
        help="built-in data: the domain of the attacker's and the users' images; the extractor is trained on "
        "'mall' (campus, the default: a moderate shift, as between two re-ID datasets; street: a hard one; "
        "mall: none)",
    )
    parser.add_argument("--extractor-epochs", type=positive_int, help="epochs of the proprietary extractor")
    parser.add_argument("--attribute-epochs", type=positive_int, help="epochs of the attribute heads (paper: 100)")
    parser.add_argument("--reconstruction-epochs", type=positive_int, help="epochs of the generator")
    parser.add_argument(
        "--reconstruction", choices=("gan", "autoencoder", "none"), default="gan", help="generator losses"
    )
    parser.add_argument(
        "--perceptual-weights",
        metavar="FILE.pt",
        help="a torchvision ResNet-50 state dict for the perceptual loss (default: a small CNN the attacker "
        "trains on its own images)",
    )
    parser.add_argument("--no-cache", action="store_true", help="retrain the extractor even if a cached one exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run the experiment, render the report, print the summary."""
    torch = importlib.import_module("torch")
    experiment = importlib.import_module("featperm.experiments.feature_attacks")
    report = importlib.import_module("featperm.report.feature_attacks")
    reconstruction = importlib.import_module("featperm.attacks.reconstruction")
    if args.data != "synthetic" and not args.data_dir and not args.features:
        raise ValueError(f"attack-features: --data {args.data} needs --data-dir (the folder holding the dataset)")
    if args.authors_features and args.data == "synthetic":
        raise ValueError("attack-features: --authors-features goes with --data market1501 or duke")
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"attack-features: --device {device} but no CUDA device is available")
    config_type = experiment.FeatureAttackConfig
    config = config_type.quick() if args.quick else config_type()
    changes = {
        "data": args.data,
        "data_dir": args.data_dir,
        "features_file": args.features,
        "authors_features": args.authors_features,
        "device": device,
        "seed": args.seed,
        "perceptual_weights": args.perceptual_weights,
        "use_cache": not args.no_cache,
    }
    if args.identities:
        changes["proprietary_identities"], changes["local_identities"], changes["user_identities"] = args.identities
    if args.images_per_identity:
        changes["images_per_identity"] = args.images_per_identity
    if args.target_domain:
        changes["target_domain"] = args.target_domain
    if args.image_size:
        changes["height"], changes["width"] = args.image_size
    if args.extractor_epochs:
        changes["extractor"] = dataclasses.replace(config.extractor, epochs=args.extractor_epochs)
    if args.attribute_epochs:
        changes["attributes"] = dataclasses.replace(config.attributes, epochs=args.attribute_epochs)
    if args.reconstruction == "none":
        changes["reconstruction"] = None
    else:
        rec = config.reconstruction or reconstruction.ReconstructionConfig()
        if args.reconstruction == "autoencoder":
            rec = dataclasses.replace(rec, perceptual_weight=0.0, adversarial_weight=0.0)
        if args.reconstruction_epochs:
            rec = dataclasses.replace(rec, epochs=args.reconstruction_epochs)
        changes["reconstruction"] = rec
    config = dataclasses.replace(config, **changes)
    results = experiment.run_feature_attacks(config, args.out, progress=not args.no_progress)
    written = report.render_feature_attacks(args.out)
    for line in report.summary_lines(results):
        print(line)
    print(f"results: {args.out / 'results.json'}; report and figures: " + ", ".join(p.name for p in written))
    sys.stdout.flush()
    return 0
