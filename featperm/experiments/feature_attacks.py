"""The ShuffleBits paper's attacks on deep features, under every protection, side by side.

Threat setup (Ni, Huttunen, Rahtu 2021): a proprietary extractor trained on proprietary data; the
attacker has black-box access (plain features of its own images), a local labelled dataset from
another domain, and intercepted features of users' images. The attacks use nothing of the
extractor's weights.

Conditions, each scored by the same models:

* ``plain``: the intercepted features themselves.
* ``shufflebits_fixed_key``: every response under one BitKey. ``naive``: the plaintext-trained
  models read the ciphertext words as features. ``adaptive``: ciphertext-only cryptanalysis of
  all intercepted vectors first (:func:`featperm.attacks.recover_fixed_key`), then the models.
* ``shufflebits_per_request``: a fresh BitKey per vector; ``adaptive`` recovers each vector's key
  on its own (:func:`featperm.attacks.recover_per_vector_keys`).
* ``sealed``: ChaCha20-Poly1305 (featperm.crypto.seal) of the ShuffleBits ciphertext (the
  cascade); the interceptor's words are the container's ciphertext body. ``adaptive`` runs the
  fixed-key cryptanalysis on them anyway. Only the sizes leak.

:func:`run_feature_attacks` writes ``results.json`` (the contract in the README) and
``reconstructions.npz`` (the images of the grids) into the output folder; :mod:`featperm.report`
renders the Markdown table and the figures from those files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import platform
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from featperm import _checks
from featperm._version import __version__
from featperm.attacks import bit_cryptanalysis as crypt
from featperm.attacks.attribute_inference import (
    AttributeInferenceConfig,
    balanced_accuracy,
    bootstrap_interval,
    chance_level,
    mean_score,
    predict_attributes,
    summarise,
    train_attribute_heads,
)
from featperm.attacks.interception import feature_range, read_as_features, sealed_ciphertext_words
from featperm.attacks.reconstruction import (
    PerceptualNetwork,
    ReconstructionConfig,
    cosine_distance,
    random_pair_cosine_distance,
    reconstruct,
    resnet50_perceptual,
    train_perceptual_network,
    train_reconstruction,
)
from featperm.crypto import seal
from featperm.datasets.feature_files import FeatureSet, features_for_paths, load_authors_feature_file, load_feature_file
from featperm.datasets.pedestrians import synthetic_pedestrians
from featperm.datasets.reid import load_images, load_reid_dataset
from featperm.experiments._progress import run_with_bar
from featperm.experiments.extractor import ExtractorConfig, cached_extractor, extract_features, to_float
from featperm.keys import BitKey
from featperm.models.feature_extractor import ReidFeatureExtractor
from featperm.ops import shuffle_bits, unshuffle_bits

__all__ = ["FeatureAttackConfig", "run_feature_attacks", "CONDITIONS", "DATA_SOURCES"]

DATA_SOURCES = ("synthetic", "market1501", "duke")
# (condition, attacker) pairs in report order; "plain" has a single attacker.
CONDITIONS: Tuple[Tuple[str, Optional[str]], ...] = (
    ("plain", None),
    ("shufflebits_fixed_key", "naive"),
    ("shufflebits_fixed_key", "adaptive"),
    ("shufflebits_per_request", "naive"),
    ("shufflebits_per_request", "adaptive"),
    ("sealed", "naive"),
    ("sealed", "adaptive"),
)


@dataclasses.dataclass
class FeatureAttackConfig:
    """One run of the feature attacks. Defaults: the built-in data at the default (non-quick)
    size; :meth:`quick` is the small run (under 3 minutes on 2 CPU cores)."""

    data: str = "synthetic"
    data_dir: Optional[str] = None
    features_file: Optional[str] = None  # a user's features (.npz): attribute inference and cryptanalysis only
    authors_features: Optional[str] = None  # the ShuffleBits authors' feature file for --data market1501/duke
    height: int = 64
    width: int = 32
    proprietary_identities: int = 200
    local_identities: int = 150
    user_identities: int = 60
    images_per_identity: int = 10
    # The domain of the attacker's and the users' images; the proprietary extractor is trained on
    # "mall" (the authors: extractor trained on MSMT17, attacker and users on Market-1501).
    target_domain: str = "campus"
    extractor: ExtractorConfig = dataclasses.field(default_factory=lambda: ExtractorConfig(epochs=15))
    attributes: AttributeInferenceConfig = dataclasses.field(default_factory=AttributeInferenceConfig)
    # The authors' losses and weights; fewer epochs and a narrower critic than theirs (300 epochs of
    # 200 steps at 384x128) so that the default run takes minutes on a CPU.
    reconstruction: Optional[ReconstructionConfig] = dataclasses.field(
        default_factory=lambda: ReconstructionConfig(epochs=15, discriminator_filters=16)
    )
    perceptual_weights: Optional[str] = None
    perceptual_epochs: int = 5
    intercepted_counts: Tuple[int, ...] = (1, 3, 10, 30, 100, 300, 1000)
    known_plaintext_vectors: Tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16)
    grid_images: int = 8
    device: str = "cpu"
    seed: int = 0
    use_cache: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> "FeatureAttackConfig":
        """The small run: fewer identities and epochs, same pipeline."""
        values: Dict[str, Any] = dict(
            proprietary_identities=100,
            local_identities=80,
            user_identities=40,
            images_per_identity=8,
            extractor=ExtractorConfig(epochs=6),
            attributes=AttributeInferenceConfig(epochs=40, lr=5e-4),
            reconstruction=ReconstructionConfig(epochs=12, base_filters=8, discriminator_filters=8),
            perceptual_epochs=2,
            intercepted_counts=(1, 3, 10, 30, 100, 400),
        )
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if self.data not in DATA_SOURCES:
            raise ValueError(f"FeatureAttackConfig: data must be one of {DATA_SOURCES}, got {self.data!r}")
        if self.data != "synthetic" and not self.data_dir and not self.features_file:
            raise ValueError(f"FeatureAttackConfig: data={self.data!r} needs data_dir (the folder holding the dataset)")
        where = "FeatureAttackConfig"
        for name, minimum in (
            ("proprietary_identities", 2),
            ("local_identities", 2),
            ("user_identities", 2),
            ("images_per_identity", 1),
            ("height", 8),
            ("width", 8),
            ("grid_images", 1),
            ("perceptual_epochs", 1),
            ("seed", 0),
        ):
            _checks.integer(where, name, getattr(self, name), minimum=minimum)
        if self.target_domain not in ("mall", "campus", "street"):
            raise ValueError(f"{where}: target_domain must be mall, campus or street, got {self.target_domain!r}")
        for name in ("intercepted_counts", "known_plaintext_vectors"):
            counts = getattr(self, name)
            if not counts:
                raise ValueError(f"{where}: {name} must name at least one count")
            for count in counts:
                _checks.integer(where, name, count, minimum=1)


@dataclasses.dataclass
class _Prepared:
    """What the attacks need: the attacker's local (features, labels[, images]) and the
    intercepted users' (features, labels[, images]), plus the extractor when there is one."""

    local_features: torch.Tensor
    local_labels: Dict[str, torch.Tensor]
    local_identities: Optional[torch.Tensor]
    user_features: torch.Tensor
    user_labels: Dict[str, torch.Tensor]
    classes: Dict[str, Tuple[str, ...]]
    description: Dict[str, Any]
    user_identities: Optional[torch.Tensor] = None  # for intervals: attributes are constant per identity
    local_images: Optional[torch.Tensor] = None
    user_images: Optional[torch.Tensor] = None
    extractor: Optional[ReidFeatureExtractor] = None


# -- data --------------------------------------------------------------------------------------


def _annotated(labels: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Only the attributes with at least two annotated classes."""
    return {n: v for n, v in labels.items() if (v >= 0).any() and v[v >= 0].unique().numel() >= 2}


def _prepare_synthetic(config: FeatureAttackConfig, progress: bool) -> _Prepared:
    h, w, per = config.height, config.width, config.images_per_identity
    s = config.seed
    proprietary = synthetic_pedestrians(config.proprietary_identities, per, domain="mall", seed=s, height=h, width=w)
    target = config.target_domain
    users = synthetic_pedestrians(config.user_identities, per, domain=target, seed=s + 1, height=h, width=w)
    local = synthetic_pedestrians(config.local_identities, per, domain=target, seed=s + 2, height=h, width=w)
    assert proprietary.images is not None and users.images is not None and local.images is not None
    tag = f"synthetic-pedestrians mall seed={s} ids={config.proprietary_identities} per={per} {h}x{w}"
    extractor, cached = run_with_bar(
        "proprietary extractor",
        config.extractor.epochs,
        progress,
        lambda bar: cached_extractor(
            proprietary, tag, config.extractor, device=config.device, progress=bar, use_cache=config.use_cache
        ),
    )
    local_features = extract_features(extractor, local.images)
    user_features = extract_features(extractor, users.images)
    return _Prepared(
        local_features=local_features,
        local_labels=local.attributes,
        local_identities=local.identities,
        user_features=user_features,
        user_labels=users.attributes,
        user_identities=users.identities,
        classes=local.classes,
        local_images=to_float(local.images).to(config.device),
        user_images=to_float(users.images).to(config.device),
        extractor=extractor,
        description={
            "source": "synthetic pedestrians (built in)",
            "proprietary": {"domain": "mall", "identities": config.proprietary_identities, "images": len(proprietary)},
            "attacker_local": {
                "domain": target,
                "identities": config.local_identities,
                "images": len(local),
            },
            "users": {"domain": target, "identities": config.user_identities, "images": len(users)},
            "image_size": [h, w],
            "extractor": {
                "architecture": "ReidFeatureExtractor",
                "widths": list(config.extractor.widths),
                "epochs": config.extractor.epochs,
                "from_cache": cached,
                "feature_dim": int(local_features.shape[1]),
            },
        },
    )


def _prepare_reid(config: FeatureAttackConfig, progress: bool) -> _Prepared:
    assert config.data_dir is not None
    splits = load_reid_dataset(config.data_dir, config.data)
    local, users = splits["train"], splits["test"]
    names = sorted(_annotated(local.attributes))
    description: Dict[str, Any] = {
        "source": f"{config.data} from {config.data_dir}",
        "attacker_local": {"split": "train", "identities": local.num_identities, "images": len(local)},
        "users": {"split": "test (query + gallery)", "identities": users.num_identities, "images": len(users)},
        "image_size": [config.height, config.width],
    }
    extractor = None
    local_images = user_images = None
    if config.authors_features:
        paths, table = load_authors_feature_file(config.authors_features)
        local_features = features_for_paths(paths, table, local.paths or [], config.data_dir).to(config.device)
        user_features = features_for_paths(paths, table, users.paths or [], config.data_dir).to(config.device)
        description["extractor"] = {"features_file": config.authors_features, "feature_dim": int(table.shape[1])}
    else:
        other = "duke" if config.data == "market1501" else "market1501"
        proprietary = load_reid_dataset(config.data_dir, other)["train"]
        proprietary.images = load_images(proprietary.paths or [], config.height, config.width)
        extractor, cached = run_with_bar(
            "proprietary extractor",
            config.extractor.epochs,
            progress,
            lambda bar: cached_extractor(
                proprietary,
                f"{other} train {config.height}x{config.width} at {config.data_dir}",
                config.extractor,
                device=config.device,
                progress=bar,
                use_cache=config.use_cache,
            ),
        )
        local_u8 = load_images(local.paths or [], config.height, config.width)
        user_u8 = load_images(users.paths or [], config.height, config.width)
        local_features, user_features = extract_features(extractor, local_u8), extract_features(extractor, user_u8)
        local_images, user_images = to_float(local_u8).to(config.device), to_float(user_u8).to(config.device)
        description["proprietary"] = {"dataset": other, "split": "train", "identities": proprietary.num_identities}
        description["extractor"] = {
            "architecture": "ReidFeatureExtractor",
            "epochs": config.extractor.epochs,
            "from_cache": cached,
            "feature_dim": int(local_features.shape[1]),
        }
    return _Prepared(
        local_features=local_features,
        local_labels={n: local.attributes[n] for n in names},
        local_identities=local.identities,
        user_features=user_features,
        user_labels={n: users.attributes[n] for n in names},
        user_identities=users.identities,
        classes={n: local.classes[n] for n in names},
        local_images=local_images,
        user_images=user_images,
        extractor=extractor,
        description=description,
    )


def _prepare_feature_file(config: FeatureAttackConfig) -> _Prepared:
    assert config.features_file is not None
    data: FeatureSet = load_feature_file(config.features_file)
    n = data.features.shape[0]
    if data.split is not None:
        local_index, user_index = (data.split == 0).nonzero().flatten(), (data.split == 1).nonzero().flatten()
        how = "the file's split array"
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
        local_index, user_index = order[: n // 2].sort().values, order[n // 2 :].sort().values
        how = f"a seeded half/half split (seed {config.seed})"
    if local_index.numel() < 4 or user_index.numel() < 2:
        raise ValueError(
            f"attack-features: {config.features_file} splits into {local_index.numel()} attacker and "
            f"{user_index.numel()} user vectors; need at least 4 and 2"
        )
    features = data.features.to(config.device)
    names = sorted(_annotated({k: v[local_index] for k, v in data.attributes.items()}))
    if not names:
        raise ValueError(
            f"attack-features: no attribute in {config.features_file} has two classes in the attacker's split"
        )
    return _Prepared(
        local_features=features[local_index],
        local_labels={k: data.attributes[k][local_index] for k in names},
        local_identities=None,
        user_features=features[user_index],
        user_labels={k: data.attributes[k][user_index] for k in names},
        classes={k: data.classes[k] for k in names},
        description={
            "source": f"features file {config.features_file}",
            "attacker_local": {"vectors": int(local_index.numel())},
            "users": {"vectors": int(user_index.numel())},
            "split": how,
            "extractor": {"feature_dim": int(data.features.shape[1])},
        },
    )


# -- the attacks -------------------------------------------------------------------------------


def _intercepted(prepared: _Prepared, config: FeatureAttackConfig, progress: bool) -> Dict[str, Any]:
    """Every condition's intercepted words and each attacker's estimate of the features."""
    plain = prepared.user_features.contiguous()
    generator = torch.Generator().manual_seed(config.seed + 7)
    fixed_key = BitKey(torch.randperm(32, generator=generator))
    per_request = BitKey(torch.argsort(torch.rand(plain.shape[0], 32, generator=generator), dim=1))
    fixed_words = shuffle_bits(plain, fixed_key, as_integer=True)
    request_words = shuffle_bits(plain, per_request, as_integer=True)
    # A seeded AEAD key and nonce keep the run deterministic; a real server uses Sealer().
    aead_key = torch.randint(0, 256, (32,), generator=generator, dtype=torch.uint8).numpy().tobytes()
    nonce = torch.randint(0, 256, (12,), generator=generator, dtype=torch.uint8).numpy().tobytes()
    sealed = seal(shuffle_bits(plain, fixed_key), aead_key, nonce)
    sealed_words = sealed_ciphertext_words(sealed, torch.float32, tuple(plain.shape)).to(plain.device)

    model = crypt.fit_bit_model(prepared.local_features)
    start = time.perf_counter()
    fixed_estimate = crypt.recover_fixed_key(fixed_words, model)
    fixed_seconds = time.perf_counter() - start
    start = time.perf_counter()
    request_estimate = crypt.recover_per_vector_keys(request_words, model)
    request_seconds = time.perf_counter() - start
    sealed_estimate = crypt.recover_fixed_key(sealed_words, model)
    return {
        "keys": {"fixed": fixed_key, "per_request": per_request},
        "words": {"fixed": fixed_words, "per_request": request_words, "sealed": sealed_words},
        "sealed_bytes": len(sealed),
        "model": model,
        "estimates": {
            "shufflebits_fixed_key": unshuffle_bits(fixed_words, fixed_estimate, dtype=torch.float32),
            "shufflebits_per_request": unshuffle_bits(request_words, request_estimate, dtype=torch.float32),
            "sealed": unshuffle_bits(sealed_words, sealed_estimate, dtype=torch.float32),
        },
        "recovered_keys": {"fixed": fixed_estimate, "per_request": request_estimate},
        "seconds": {"fixed_key": fixed_seconds, "per_request": request_seconds},
    }


def _condition_features(
    prepared: _Prepared, intercepted: Dict[str, Any]
) -> Dict[Tuple[str, Optional[str]], torch.Tensor]:
    limits = feature_range(prepared.local_features)
    words = intercepted["words"]
    estimates = intercepted["estimates"]
    return {
        ("plain", None): prepared.user_features,
        ("shufflebits_fixed_key", "naive"): read_as_features(words["fixed"], limits),
        ("shufflebits_fixed_key", "adaptive"): read_as_features(estimates["shufflebits_fixed_key"], limits),
        ("shufflebits_per_request", "naive"): read_as_features(words["per_request"], limits),
        ("shufflebits_per_request", "adaptive"): read_as_features(estimates["shufflebits_per_request"], limits),
        ("sealed", "naive"): read_as_features(words["sealed"], limits),
        ("sealed", "adaptive"): read_as_features(estimates["sealed"], limits),
    }


def _nest(results: Dict[Tuple[str, Optional[str]], Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for (condition, attacker), value in results.items():
        if attacker is None:
            out[condition] = value
        elif condition == "sealed" and attacker == "naive":
            out.setdefault(condition, {}).update(value)  # the contract's sealed: {...same fields...}
        else:
            out.setdefault(condition, {})[attacker] = value
    return out


def _attribute_inference(
    prepared: _Prepared,
    conditions: Dict[Tuple[str, Optional[str]], torch.Tensor],
    config: FeatureAttackConfig,
    progress: bool,
) -> Dict[str, Any]:
    names = list(prepared.local_labels)
    num_classes = {n: len(prepared.classes[n]) for n in names}
    settings = dataclasses.replace(config.attributes, seed=config.seed)
    result = run_with_bar(
        "attribute inference",
        config.attributes.epochs,
        progress,
        lambda bar: train_attribute_heads(
            prepared.local_features,
            prepared.local_labels,
            num_classes,
            settings,
            identities=prepared.local_identities,
            progress=bar,
        ),
    )
    scores: Dict[Tuple[str, Optional[str]], Dict[str, Any]] = {}
    groups = prepared.user_identities
    plain_per: Dict[str, float] = {}
    for key, feats in conditions.items():
        predicted = predict_attributes(result.heads, feats)
        per = {n: balanced_accuracy(predicted[n], prepared.user_labels[n], num_classes[n]) for n in names}
        if key == ("plain", None):
            plain_per = per
        entry = summarise(per, names)
        low, high = bootstrap_interval(predicted, prepared.user_labels, num_classes, groups, seed=config.seed)
        entry["mean_balanced_accuracy_ci95"] = [low, high]
        scores[key] = entry
    # chance over the attributes that are scored (annotated in the users' data)
    scored = [n for n in names if not math.isnan(plain_per[n])]
    chance_per = {n: chance_level(num_classes[n]) for n in names}
    out = _nest(scores)
    out["chance"] = sum(chance_per[n] for n in scored) / max(len(scored), 1)
    out["chance_per_attribute"] = chance_per
    out["interval"] = (
        "95% percentile bootstrap over the users' identities (200 resamples)"
        if groups is not None
        else "95% percentile bootstrap over the intercepted vectors (200 resamples)"
    )
    out["classes"] = {n: list(prepared.classes[n]) for n in names}
    if result.validation:
        validation = (
            "identities held out of the attacker's own data"
            if prepared.local_identities is not None
            else "samples held out of the attacker's own data"
        )
        validation_score: Optional[float] = mean_score(result.validation)
    else:
        validation, validation_score = "none (too little data to hold any out): the last epoch", None
    out["model_selection"] = {
        "validation": validation,
        "fraction": settings.validation_fraction,
        "best_epoch": result.best_epoch,
        "validation_mean_balanced_accuracy": validation_score,
    }
    out["settings"] = dataclasses.asdict(settings)
    return out


def _perceptual_network(
    prepared: _Prepared, config: FeatureAttackConfig, progress: bool
) -> Optional[PerceptualNetwork]:
    assert config.reconstruction is not None and prepared.local_images is not None
    if config.reconstruction.perceptual_weight <= 0:
        return None
    if config.perceptual_weights:
        return resnet50_perceptual(config.perceptual_weights)
    names = list(prepared.local_labels)
    images = prepared.local_images
    return run_with_bar(
        "perceptual network",
        config.perceptual_epochs,
        progress,
        lambda bar: train_perceptual_network(
            images,
            prepared.local_labels,
            {n: len(prepared.classes[n]) for n in names},
            epochs=config.perceptual_epochs,
            seed=config.seed,
            progress=bar,
        ),
    )


def _reconstruction(
    prepared: _Prepared,
    conditions: Dict[Tuple[str, Optional[str]], torch.Tensor],
    config: FeatureAttackConfig,
    progress: bool,
) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    assert config.reconstruction is not None and prepared.extractor is not None
    assert prepared.local_images is not None and prepared.user_images is not None
    perceptual = _perceptual_network(prepared, config, progress)
    local_images = prepared.local_images
    settings = dataclasses.replace(config.reconstruction, seed=config.seed)
    trained = run_with_bar(
        "reconstruction generator",
        config.reconstruction.epochs,
        progress,
        lambda bar: train_reconstruction(
            prepared.local_features,
            local_images,
            settings,
            perceptual=perceptual,
            progress=bar,
        ),
    )
    originals = prepared.user_features
    chance = random_pair_cosine_distance(originals, seed=config.seed)
    scores: Dict[Tuple[str, Optional[str]], Any] = {}
    grid_rows = min(config.grid_images, prepared.user_images.shape[0])
    # users' images spread over identities, the same ones in every condition
    grid_index = torch.linspace(0, prepared.user_images.shape[0] - 1, grid_rows).round().long()
    arrays: Dict[str, np.ndarray] = {"original": _to_uint8(prepared.user_images[grid_index])}
    for key, feats in conditions.items():
        images = reconstruct(trained.generator, feats)
        recon_features = extract_features(prepared.extractor, images)
        distances = cosine_distance(originals, recon_features)
        scores[key] = {
            "mean_cosine_distance": float(distances.mean()),
            "median_cosine_distance": float(distances.median()),
            "pixel_mse": float(((images - prepared.user_images) ** 2).mean()),
        }
        arrays["/".join(k for k in key if k)] = _to_uint8(images[grid_index])
    out = _nest(scores)
    out["random_pairs"] = {"mean_cosine_distance": chance}
    # What a reconstruction that ignores its input reaches: the generator's image of the mean
    # feature vector of the attacker's own data, the same for every user.
    mean_image = reconstruct(trained.generator, prepared.local_features.mean(0, keepdim=True))
    constant = extract_features(prepared.extractor, mean_image).expand_as(originals)
    out["constant_reconstruction"] = {"mean_cosine_distance": float(cosine_distance(originals, constant).mean())}
    out["perceptual_network"] = trained.perceptual or "none (pixel loss only)"
    out["settings"] = dataclasses.asdict(settings)
    out["final_losses"] = trained.losses[-1] if trained.losses else {}
    return out, arrays


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _cryptanalysis(prepared: _Prepared, intercepted: Dict[str, Any], config: FeatureAttackConfig) -> Dict[str, Any]:
    plain = prepared.user_features
    fixed_key: BitKey = intercepted["keys"]["fixed"]
    fixed_words = intercepted["words"]["fixed"]
    model = intercepted["model"]
    n = plain.shape[0]
    random_key = BitKey(torch.randperm(32, generator=torch.Generator().manual_seed(config.seed + 11)))
    random_quality = crypt.decryption_quality(unshuffle_bits(fixed_words, random_key, dtype=torch.float32), plain)

    # Known plaintext: k (plaintext, ciphertext) vectors of one response under the fixed key.
    counts = [k for k in config.known_plaintext_vectors if k < n] or [1]
    known_rows = n - n // 2  # the last n // 2 vectors are the values to decrypt
    counts = sorted({min(k, known_rows) for k in counts})
    curve = [
        {
            "vectors": int(p["known_vectors"]),
            "words": int(p["known_words"]),
            "positions_unique": p["positions_unique"],
            "candidates_mean": p["candidates_mean"],
            "values_exact": p["held_out_exact"],
        }
        for p in crypt.known_plaintext_curve(plain, fixed_words, counts)
    ]
    known = {
        "unit": "vectors",
        "words_per_vector": int(plain.shape[1]),
        "pairs_to_full_key": crypt.pairs_to_functional_key(plain, fixed_words),
        "pairs_to_unique_key": crypt.pairs_to_unique_key(plain, fixed_words),
        "curve": curve,
    }

    # Ciphertext only, one fixed key, against the number of intercepted vectors.
    fixed_curve = []
    for k in sorted({c for c in config.intercepted_counts if c < n} | {n}):
        # all n vectors: the key the adaptive attacker already recovered (_intercepted)
        estimate = intercepted["recovered_keys"]["fixed"] if k == n else crypt.recover_fixed_key(fixed_words[:k], model)
        quality = crypt.decryption_quality(unshuffle_bits(fixed_words, estimate, dtype=torch.float32), plain)
        fixed_curve.append(
            {"vectors": k, "key_positions_recovered": crypt.key_positions_recovered(estimate, fixed_key), **quality}
        )
    best = fixed_curve[-1]
    fixed = {
        "vectors": best["vectors"],
        "key_positions_recovered": best["key_positions_recovered"],
        "values_exact": best["values_exact"],
        "cosine": best["cosine"],
        "sign_exponent_exact": best["sign_exponent_exact"],
        "bits_exact": best["bits_exact"],
        "relative_error_median": best["relative_error_median"],
        "curve": fixed_curve,
        "random_key": random_quality,
        "seconds": intercepted["seconds"]["fixed_key"],
    }

    # Ciphertext only, one vector under a fresh key.
    request_key: BitKey = intercepted["keys"]["per_request"]
    request_quality = crypt.decryption_quality(intercepted["estimates"]["shufflebits_per_request"], plain)
    random_rows = BitKey(torch.argsort(torch.rand(n, 32, generator=torch.Generator().manual_seed(config.seed + 13)), 1))
    single = {
        "vectors": n,
        "cosine_median": request_quality["cosine_median"],
        "cosine_mean": request_quality["cosine"],
        "values_exact": request_quality["values_exact"],
        "sign_exponent_exact": request_quality["sign_exponent_exact"],
        "bits_exact": request_quality["bits_exact"],
        "relative_error_median": request_quality["relative_error_median"],
        "key_positions_recovered": crypt.key_positions_recovered(
            intercepted["recovered_keys"]["per_request"], request_key
        ),
        "vectors_per_second": n / max(intercepted["seconds"]["per_request"], 1e-9),
        "random_key": crypt.decryption_quality(
            unshuffle_bits(intercepted["words"]["per_request"], random_rows, dtype=torch.float32), plain
        ),
    }

    shuffle_leak = crypt.leakage(plain, fixed_words)
    sealed_leak = crypt.leakage(plain, intercepted["words"]["sealed"])
    return {
        "known_plaintext": known,
        "ciphertext_only_fixed_key": fixed,
        "ciphertext_only_single_vector": single,
        "leakage": {
            "zero_fraction": float((plain == 0).double().mean()),
            "zero_fraction_exposed": shuffle_leak["zero_fraction_exposed"],
            "hamming_weight_value_correlation": shuffle_leak["hamming_weight_value_correlation"],
            "shufflebits": shuffle_leak,
            "sealed": {**sealed_leak, "bytes": intercepted["sealed_bytes"], "plaintext_bytes": plain.numel() * 4},
        },
    }


def run_feature_attacks(
    config: FeatureAttackConfig, out_dir: str | pathlib.Path, *, progress: bool = True
) -> Dict[str, Any]:
    """Run every attack of the ShuffleBits paper and the cryptanalysis under every condition;
    write ``results.json`` and ``reconstructions.npz`` to ``out_dir``; return the results."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    if config.features_file:
        prepared = _prepare_feature_file(config)
    elif config.data == "synthetic":
        prepared = _prepare_synthetic(config, progress)
    else:
        prepared = _prepare_reid(config, progress)
    prepared.local_features = prepared.local_features.float().contiguous()
    prepared.user_features = prepared.user_features.float().contiguous()

    stage_seconds = {"data_and_extractor": time.perf_counter() - started}
    steps = tqdm(total=3, desc="feature attacks", disable=not progress, dynamic_ncols=True)
    steps.set_postfix_str("cryptanalysis of intercepted vectors")
    mark = time.perf_counter()
    intercepted = _intercepted(prepared, config, progress)
    conditions = _condition_features(prepared, intercepted)
    stage_seconds["interception_and_key_recovery"] = time.perf_counter() - mark
    steps.update()
    steps.set_postfix_str("attribute inference")
    mark = time.perf_counter()
    results: Dict[str, Any] = {"attribute_inference": _attribute_inference(prepared, conditions, config, progress)}
    stage_seconds["attribute_inference"] = time.perf_counter() - mark
    steps.update()
    mark = time.perf_counter()
    arrays: Dict[str, np.ndarray] = {}
    if config.reconstruction is not None and prepared.extractor is not None and prepared.local_images is not None:
        steps.set_postfix_str("reconstruction")
        results["reconstruction"], arrays = _reconstruction(prepared, conditions, config, progress)
    else:
        why = "features file given (no images)" if config.features_file or config.authors_features else "disabled"
        results["reconstruction"] = {"skipped": why}
    stage_seconds["reconstruction"] = time.perf_counter() - mark
    steps.update()
    steps.close()
    mark = time.perf_counter()
    results["cryptanalysis"] = _cryptanalysis(prepared, intercepted, config)
    stage_seconds["cryptanalysis_curves"] = time.perf_counter() - mark
    results["data"] = prepared.description
    results["run"] = {
        "featperm": __version__,
        "torch": torch.__version__,
        "device": config.device,
        "cpu": platform.processor() or platform.machine(),
        "seed": config.seed,
        "seconds": time.perf_counter() - started,
        "stage_seconds": stage_seconds,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": _jsonable(dataclasses.asdict(config)),
    }
    (out / "results.json").write_text(json.dumps(_jsonable(results), indent=2, allow_nan=False) + "\n")
    if arrays:
        np.savez_compressed(out / "reconstructions.npz", **arrays)  # type: ignore[arg-type]
    elif (out / "reconstructions.npz").exists():
        (out / "reconstructions.npz").unlink()  # never leave a previous run's images next to these results
    return results


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value
