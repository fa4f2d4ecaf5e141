"""Model protection by a block-wise feature-map shuffle (AprilPyone & Kiya 2021), and its attacks.

A CIFAR-style ResNet-18 is trained with a :class:`~featperm.nn.BlockShuffle` after one position
(``conv1``, ``layer1`` ... ``layer4``) under a secret key K. Evaluated as the paper's Table I:
accuracy with K, with wrong keys K' (mean, max and spread over many random keys), without the
transform, next to the same network trained unprotected. Attacked as Tables II and III: key
estimation (:mod:`featperm.attacks.key_estimation`, the authors' greedy swap search, batched) and
random key search; and fine-tuning the stolen model without its key on a few labelled images,
next to a model trained from scratch on the same images (what the stolen weights are worth).

The protection is access control, not cryptography: each attack's result stands next to its
label and compute budget, not next to the key space (printed as log10((C·M·M)!) for reference).

Training recipe (the paper's, in :class:`TrainConfig`): SGD momentum 0.9, weight decay 5e-4, a
cyclic learning rate 0 -> 0.2 -> 0 (linear, peak at 40% of the steps), batch 128, random crop
(pad 4) and horizontal flip, CIFAR-10 normalisation, mixed precision on CUDA, 200 epochs.

Next to it, the input-transform baselines of the authors' earlier work (SHF, NP, FFX at M = 2 and
4): the same network trained on key-transformed images, evaluated with the key, wrong keys and
plain images.

:func:`run_model_protection` works in an output folder, in stages (:data:`STAGES`: ``train``,
``evaluate``, ``key-estimation``, ``fine-tune``, ``transforms``) that can run separately or be
resumed: ``key.fpk`` (the secret key, a featperm key file, owner-only), ``checkpoints/`` (weights,
optimiser and generator states saved every epoch; never the key), ``results.json`` (accuracies
in percent; each stage's settings, so that a stage is skipped on ``resume`` only when they match).
Under ``torchrun`` it trains with DDP and splits the key search across processes
(:mod:`featperm.experiments.distributed`).
Shapes: images (N, 3, H, W) uint8; labels (N,) int64.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from featperm import _checks
from featperm._version import __version__
from featperm.attacks.key_estimation import (
    KeyEstimationConfig,
    estimate_key,
    positions_recovered,
    random_key_search,
)
from featperm.datasets.image_classification import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ImageClassificationData,
    load_image_classification,
)
from featperm.experiments._progress import run_with_bar
from featperm.experiments.distributed import barrier, is_distributed, is_main_process, rank_and_world
from featperm.keys import BlockKey, FFXKey, NPKey, load_key, save_key
from featperm.models.resnet_cifar import ResNetCifar, resnet18_cifar
from featperm.nn import protect, set_key
from featperm.transforms import FFX, BlockPixelShuffle, NegativePositive

__all__ = [
    "TrainConfig",
    "ProtectionConfig",
    "train_classifier",
    "accuracy",
    "position_channels",
    "input_transform",
    "run_model_protection",
    "STAGES",
    "TRANSFORMS",
]

ProgressCallback = Callable[[int, int], None]
InputTransform = Callable[[torch.Tensor], torch.Tensor]
POSITIONS = ("conv1", "layer1", "layer2", "layer3", "layer4")
PRESETS = ("small", "fast", "paper")
STAGES = ("train", "evaluate", "key-estimation", "fine-tune", "transforms")
TRANSFORMS = ("SHF", "NP", "FFX")
CHECKPOINT_FORMAT = "featperm-train-checkpoint-1"


@dataclasses.dataclass
class TrainConfig:
    """The training recipe. Defaults: the paper's (200 epochs, SGD 0.9 / 5e-4, cyclic lr peaking
    at 0.2, batch 128, crop + flip, mixed precision on CUDA)."""

    epochs: int = 200
    batch_size: int = 128
    lr_max: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    augment: bool = True
    mixed_precision: bool = True  # CUDA only (bf16 autocast)
    channels_last: bool = False
    compile: bool = False  # torch.compile the training forward
    seed: int = 0

    def __post_init__(self) -> None:
        where = "TrainConfig"
        _checks.integer(where, "epochs", self.epochs, minimum=1)
        _checks.integer(where, "batch_size", self.batch_size, minimum=2)
        _checks.integer(where, "seed", self.seed, minimum=0)
        if not float(self.lr_max) > 0:
            raise ValueError(f"{where}: lr_max must be > 0, got {self.lr_max}")

    @classmethod
    def fast(cls, **overrides: Any) -> "TrainConfig":
        """For CIFAR-10 on a GPU: fewer epochs, a larger batch and peak rate, label smoothing,
        channels_last, torch.compile (bf16 on CUDA as the paper's recipe; the data stays on the
        device). Its accuracy next to the paper recipe's has not been measured yet (that needs
        CIFAR-10 and a GPU)."""
        values: Dict[str, Any] = dict(
            epochs=30, batch_size=512, lr_max=0.4, label_smoothing=0.1, channels_last=True, compile=True
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def small(cls, **overrides: Any) -> "TrainConfig":
        """For small datasets on a CPU (the built-in digits: 1,438 training images): 15 epochs,
        peak rate 0.1, label smoothing 0.1. A width-8 ResNet-18 reaches 97% on the digits in 8."""
        values: Dict[str, Any] = dict(epochs=15, lr_max=0.1, label_smoothing=0.1)
        values.update(overrides)
        return cls(**values)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with 4 pixels of black padding and horizontal flip, per uint8 image (as
    torchvision's RandomCrop(padding=4) and RandomHorizontalFlip on the images)."""
    n, _, h, w = batch.shape
    padded = F.pad(batch, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).to(batch.device)  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w)).to(batch.device)  # (n, w)
    out = padded[
        torch.arange(n, device=batch.device).view(n, 1, 1, 1),
        torch.arange(3, device=batch.device).view(1, 3, 1, 1),
        rows.view(n, 1, h, 1),
        cols.view(n, 1, 1, w),
    ]
    flip = (torch.rand(n, generator=generator) < 0.5).to(batch.device)
    return torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)


def _save_atomically(state: Dict[str, Any], path: pathlib.Path) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)  # a crash mid-write never leaves a torn checkpoint


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    inner = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(inner, "module", inner)  # DistributedDataParallel


def train_classifier(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: Optional[TrainConfig] = None,
    *,
    device: torch.device | str = "cpu",
    progress: Optional[ProgressCallback] = None,
    input_transform: Optional[InputTransform] = None,
    checkpoint: Optional[str | pathlib.Path] = None,
    resume: bool = False,
) -> torch.nn.Module:
    """Train ``model`` (protected or not) on uint8 (N, 3, H, W) images with the recipe of
    ``config``; returns it in eval mode on ``device``.

    Each step draws a batch (a seeded permutation per epoch), augments it (crop + flip on the
    uint8 images), applies ``input_transform`` (uint8 (B, 3, H, W) -> uint8, e.g. a keyed block
    transform: after augmentation, as the authors' pipeline), normalises, and takes one SGD step.

    ``checkpoint``: a file written after every epoch (model, optimiser, schedule and generator
    states; the model's ``state_dict``, which holds no key). With ``resume``, training continues
    from it (bit for bit as if never stopped, on the CPU); a finished checkpoint returns the
    model at once. Under ``torch.distributed`` (more than one process), the model is wrapped in
    DistributedDataParallel: every process draws the same global batch and trains on its share,
    the loss scaled so that averaged gradients are the global batch's; only process 0 writes the
    checkpoint.

    Raises:
        ValueError: ``resume`` with a checkpoint of another recipe or dataset size.
    """
    config = config or TrainConfig()
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x_all, y_all = images.to(device), labels.to(device)
    n = x_all.shape[0]
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))
    total = config.epochs * steps_per_epoch
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr_max, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )
    peak = max(1, int(0.4 * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))
    )
    generator = torch.Generator().manual_seed(config.seed)
    recipe = dataclasses.asdict(config)
    first_epoch = 1
    path = pathlib.Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)  # load_state_dict moves tensors
        if state.get("format") != CHECKPOINT_FORMAT or state["recipe"] != recipe or state["examples"] != n:
            raise ValueError(
                f"train_classifier: checkpoint {path} is of another recipe or dataset "
                f"(recipe {state.get('recipe')}, {state.get('examples')} images), expected {recipe}, {n} images"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        first_epoch = state["epoch"] + 1
    rank, world = rank_and_world()
    trained: torch.nn.Module = model
    if world > 1:
        if device.type == "cuda":  # in place: ``model`` gets the synchronised layers
            trained = torch.nn.SyncBatchNorm.convert_sync_batchnorm(trained)  # CUDA only in torch
        trained = DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        trained = torch.compile(trained)  # type: ignore[assignment]
    autocast = config.mixed_precision and device.type == "cuda"
    for epoch in range(first_epoch, config.epochs + 1):
        trained.train()
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            x = x_all[batch]
            if config.augment:
                x = _augment(x, generator)
            if batch.numel() < 2 * world:  # batch norm needs two samples per process
                schedule.step()
                continue
            share = torch.tensor_split(torch.arange(batch.numel(), device=device), world)[rank]
            x = x[share]
            if input_transform is not None:
                x = input_transform(x)
            x = _normalise(x)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = trained(x)
                loss = F.cross_entropy(
                    logits.float(), y_all[batch][share], label_smoothing=config.label_smoothing, reduction="sum"
                )
            # DDP averages gradients over processes: sum / global batch * processes is the
            # global batch's mean loss.
            loss = loss * (world / batch.numel())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if world > 1:
            # Each process's batch-norm running statistics saw only its shares: average them, so
            # that every replica (and the checkpoint) holds the same model.
            for buffer in model.buffers():
                if buffer.is_floating_point():
                    torch.distributed.all_reduce(buffer)
                    buffer.div_(world)
        if path is not None and is_main_process():
            _save_atomically(
                {
                    "format": CHECKPOINT_FORMAT,
                    "epoch": epoch,
                    "recipe": recipe,
                    "examples": n,
                    "model": _unwrapped(trained).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generator": generator.get_state(),
                },
                path,
            )
        if progress is not None:
            progress(epoch, config.epochs)
    if path is not None:
        barrier()  # the other processes may read it next
    return model.eval()


@torch.no_grad()
def accuracy(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 500,
    *,
    input_transform: Optional[InputTransform] = None,
) -> float:
    """Top-1 accuracy in percent of ``model`` on uint8 (N, 3, H, W) images (each batch passed
    through ``input_transform`` first, uint8 -> uint8, when given)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        if input_transform is not None:
            x = input_transform(x)
        correct += int((model(_normalise(x)).argmax(1) == labels[start : start + batch_size].to(device)).sum())
    return 100.0 * correct / max(1, images.shape[0])


def position_channels(width: int, at: str) -> int:
    """Channels of the CIFAR ResNet-18's feature map after ``at`` (the BlockKey's ``channels``)."""
    if at not in POSITIONS:
        raise ValueError(f"position_channels: at must be one of {POSITIONS}, got {at!r}")
    return width * {"conv1": 1, "layer1": 1, "layer2": 2, "layer3": 4, "layer4": 8}[at]


@dataclasses.dataclass
class ProtectionConfig:
    """One run of the model-protection experiments. Defaults: the built-in digits, a width-16
    ResNet-18 protected after layer1 with M = 2, the small-data recipe. ``preset="paper"`` (with
    ``width=64``, CIFAR-10 and a GPU) is the paper's setting. :meth:`quick` is the small run
    (under 5 minutes on 2 CPU cores).

    Fine-tuning trains the stolen weights with the training recipe (``stolen``, the paper's) and
    with its peak learning rate times ``gentle_lr_scale`` (``stolen_gentle``: the recipe's rate
    wrecks what a stolen model knows when |D'| is a few dozen images), next to the same recipe
    from scratch. ``transforms`` x ``transform_block_sizes``: the input-transform baselines.

    The secret key is drawn from the seed (``random_key=False``, for reproducible experiments:
    anyone who knows the seed knows the key) or from the operating system's CSPRNG
    (``random_key=True``: a key to ship; the run is then reproducible except for the key)."""

    data: str = "digits"
    data_dir: Optional[str] = None
    at: str = "layer1"
    block_size: int = 2
    width: int = 16
    preset: str = "small"
    train: Optional[TrainConfig] = None  # None: the preset's
    wrong_keys: int = 100
    attack_images: int = 1000
    key_estimation: KeyEstimationConfig = dataclasses.field(default_factory=lambda: KeyEstimationConfig(rounds=2))
    random_keys: int = 1000
    fine_tune_sizes: Tuple[int, ...] = (50, 100, 500, 1000)
    fine_tune_epochs: int = 30
    gentle_lr_scale: float = 0.1
    transforms: Tuple[str, ...] = TRANSFORMS
    transform_block_sizes: Tuple[int, ...] = (2, 4)
    random_key: bool = False
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        where = "ProtectionConfig"
        if self.at not in POSITIONS:
            raise ValueError(f"{where}: at must be one of {POSITIONS}, got {self.at!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"{where}: preset must be one of {PRESETS}, got {self.preset!r}")
        for name, minimum in (
            ("block_size", 1),
            ("width", 1),
            ("wrong_keys", 1),
            ("attack_images", 2),
            ("random_keys", 1),
            ("fine_tune_epochs", 1),
            ("seed", 0),
        ):
            _checks.integer(where, name, getattr(self, name), minimum=minimum)
        for size in self.fine_tune_sizes:
            _checks.integer(where, "fine_tune_sizes", size, minimum=2)  # batch norm needs two images
        for m in self.transform_block_sizes:
            _checks.integer(where, "transform_block_sizes", m, minimum=1)
        for name in self.transforms:
            if name not in TRANSFORMS:
                raise ValueError(f"{where}: transforms must be a subset of {TRANSFORMS}, got {name!r}")
        if not 0 < float(self.gentle_lr_scale) <= 1:
            raise ValueError(f"{where}: gentle_lr_scale must be in (0, 1], got {self.gentle_lr_scale}")

    @classmethod
    def quick(cls, **overrides: Any) -> "ProtectionConfig":
        """The small run: width 8, 8 epochs, 20 wrong keys, 200 attack images, one round, 100
        random keys, |D'| in (50, 100, 500) for 10 epochs, the transforms at M = 4 only."""
        values: Dict[str, Any] = dict(
            width=8,
            train=TrainConfig.small(epochs=8),
            wrong_keys=20,
            attack_images=200,
            random_keys=100,
            key_estimation=KeyEstimationConfig(rounds=1),
            fine_tune_sizes=(50, 100, 500),
            fine_tune_epochs=10,
            transform_block_sizes=(4,),
        )
        values.update(overrides)
        return cls(**values)

    def training(self) -> TrainConfig:
        """The training recipe: ``train``, else the preset's, seeded with the run's seed."""
        recipes: Dict[str, Callable[[], TrainConfig]] = {
            "paper": TrainConfig,
            "fast": TrainConfig.fast,
            "small": TrainConfig.small,
        }
        base = self.train or recipes[self.preset]()
        return dataclasses.replace(base, seed=self.seed)

    def stage_settings(self, stage: str) -> Dict[str, Any]:
        """What a stage's results depend on (the device aside): a stage is skipped on resume
        only when its recorded settings equal these."""
        trained = {
            "data": self.data,
            "data_dir": self.data_dir,
            "at": self.at,
            "block_size": self.block_size,
            "width": self.width,
            "train": dataclasses.asdict(self.training()),
            "seed": self.seed,
            "random_key": self.random_key,
        }
        extra: Dict[str, Dict[str, Any]] = {
            "train": {},
            "evaluate": {"wrong_keys": self.wrong_keys},
            "key-estimation": {
                "attack_images": self.attack_images,
                "key_estimation": {
                    "rounds": self.key_estimation.rounds,
                    "max_candidates": self.key_estimation.max_candidates,
                },
                "random_keys": self.random_keys,
            },
            "fine-tune": {"fine_tune_epochs": self.fine_tune_epochs, "gentle_lr_scale": self.gentle_lr_scale},
            "transforms": {"wrong_keys": self.wrong_keys},
        }
        if stage not in extra:
            raise ValueError(f"ProtectionConfig.stage_settings: stage must be one of {STAGES}, got {stage!r}")
        return {**trained, **extra[stage]}


def _stream(seed: int, purpose: str) -> int:
    """A seed for one purpose of the run, independent of every other purpose's: the secret key,
    the wrong keys and the attacker's draws must never come from the same generator (a random
    key search seeded like the key would find it at once)."""
    return int.from_bytes(hashlib.sha256(f"featperm protect {purpose} {seed}".encode()).digest()[:8], "little") >> 1


def _block_key(generator: torch.Generator, channels: int, block_size: int) -> BlockKey:
    return BlockKey(
        torch.randperm(channels * block_size**2, generator=generator), channels=channels, block_size=block_size
    )


def input_transform(name: str, block_size: int, generator: torch.Generator) -> InputTransform:
    """A keyed input transform of the authors' earlier work on uint8 (N, 3, H, W) images, its key
    drawn from ``generator``: ``SHF`` (block pixel shuffle), ``NP`` (negative/positive), ``FFX``
    (format-preserving Feistel on 8-bit pixels; its secret from the generator's bytes)."""
    if name == "SHF":
        return BlockPixelShuffle(_block_key(generator, 3, block_size))
    if name == "NP":
        mask = torch.rand(3 * block_size**2, generator=generator) < 0.5
        return NegativePositive(NPKey(mask, channels=3, block_size=block_size))
    if name == "FFX":
        secret = bytes(torch.randint(0, 256, (32,), generator=generator, dtype=torch.int64).tolist())
        return FFX(FFXKey(secret, channels=3, block_size=block_size))
    raise ValueError(f"input_transform: name must be one of {TRANSFORMS}, got {name!r}")


@dataclasses.dataclass
class _Run:
    """What the stages of one run share."""

    config: ProtectionConfig
    out: pathlib.Path
    data: ImageClassificationData
    train: TrainConfig
    key: BlockKey
    channels: int
    progress: bool
    resume: bool
    results: Dict[str, Any]
    models: Dict[str, torch.nn.Module] = dataclasses.field(default_factory=dict)

    @property
    def checkpoints(self) -> pathlib.Path:
        return self.out / "checkpoints"

    def network(self, purpose: str) -> ResNetCifar:
        """A fresh network, initialised from the run's seed stream for ``purpose`` (so that a
        resumed or partial run builds the same one)."""
        torch.manual_seed(_stream(self.config.seed, f"initial weights {purpose}"))
        return resnet18_cifar(len(self.data.classes), width=self.config.width)

    def fit(
        self,
        name: str,
        model: torch.nn.Module,
        data: ImageClassificationData,
        recipe: TrainConfig,
        desc: str,
        transform: Optional[InputTransform] = None,
    ) -> Tuple[torch.nn.Module, float]:
        """Train with a per-epoch checkpoint ``checkpoints/NAME.pt`` (resumed with ``resume``)."""
        start = time.perf_counter()
        trained = run_with_bar(
            desc,
            recipe.epochs,
            self.progress,
            lambda bar: train_classifier(
                model,
                data.train_images,
                data.train_labels,
                recipe,
                device=self.config.device,
                progress=bar,
                input_transform=transform,
                checkpoint=self.checkpoints / f"{name}.pt",
                resume=self.resume,
            ),
        )
        return trained, time.perf_counter() - start

    def trained(self, name: str) -> torch.nn.Module:
        """The baseline or protected model of the train stage (from this run or its checkpoint)."""
        if name not in self.models:
            path = self.checkpoints / f"{name}.pt"
            state = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None
            if state is None or state.get("epoch") != self.train.epochs:
                raise ValueError(f"run_model_protection: {path} holds no finished training; run the train step first")
            model = self.network("loaded")
            if name == "protected":
                protect(model, at=self.config.at, key=self.key)
            model.load_state_dict(state["model"])
            self.models[name] = model.to(self.config.device).eval()
        return self.models[name]

    def save(self) -> None:
        if is_main_process():
            partial = self.out / "results.json.partial"
            partial.write_text(json.dumps(self.results, indent=2, allow_nan=False) + "\n")
            os.replace(partial, self.out / "results.json")


def _train_stage(run: _Run) -> None:
    baseline, baseline_seconds = run.fit("baseline", run.network("baseline"), run.data, run.train, "baseline")
    net = run.network("protected")
    protect(net, at=run.config.at, key=run.key)
    protected, protected_seconds = run.fit("protected", net, run.data, run.train, "protected")
    run.models.update(baseline=baseline, protected=protected)
    run.results["train_seconds"] = {"baseline": baseline_seconds, "protected": protected_seconds}


def _evaluate_stage(run: _Run) -> None:
    config, data = run.config, run.data
    protected = run.trained("protected")
    test_x, test_y = data.test_images, data.test_labels
    generator = torch.Generator().manual_seed(_stream(config.seed, "wrong keys"))
    wrong = []
    for _ in tqdm(range(config.wrong_keys), desc="wrong keys", disable=not run.progress, leave=False):
        set_key(protected, _block_key(generator, run.channels, config.block_size))
        wrong.append(accuracy(protected, test_x, test_y))
    set_key(protected, None)
    no_transform = accuracy(protected, test_x, test_y)
    set_key(protected, run.key)
    wrong_t = torch.tensor(wrong, dtype=torch.float64)
    run.results["accuracy"] = {
        "baseline": accuracy(run.trained("baseline"), test_x, test_y),
        "correct_key": accuracy(protected, test_x, test_y),
        "wrong_keys_mean": float(wrong_t.mean()),
        "wrong_keys_max": float(wrong_t.max()),
        "wrong_keys_std": float(wrong_t.std()) if len(wrong) > 1 else 0.0,
        "wrong_keys": len(wrong),
        "no_transform": no_transform,
        "chance": 100.0 / len(data.classes),
    }


def _key_estimation_stage(run: _Run) -> None:
    """Table II: key estimation on attack images the thief holds (a seeded part of the training
    split), scored on the test split; and random key search on the same images."""
    config, data = run.config, run.data
    protected = run.trained("protected")
    net: ResNetCifar = protected  # type: ignore[assignment]
    device = next(net.parameters()).device
    generator = torch.Generator().manual_seed(_stream(config.seed, "attack images"))
    pick = torch.randperm(data.train_images.shape[0], generator=generator)[: config.attack_images]
    with torch.no_grad():
        activations = net.features_at(_normalise(data.train_images[pick].to(device)), config.at)
    attack_y = data.train_labels[pick].to(device)

    def above(a: torch.Tensor) -> torch.Tensor:
        return net.forward_from(config.at, a)

    initial = _block_key(generator, run.channels, config.block_size)
    rounds = tqdm(
        total=config.key_estimation.rounds, desc="key estimation (rounds)", disable=not run.progress, leave=False
    )
    try:
        estimated = estimate_key(
            activations,
            attack_y,
            above,
            initial,
            dataclasses.replace(config.key_estimation, seed=_stream(config.seed, "key estimation")),
            progress=lambda entry: rounds.update(1),
            split_across_processes=is_distributed(),
        )
    finally:
        rounds.close()
    started = time.perf_counter()
    best_random, _ = random_key_search(
        activations,
        attack_y,
        above,
        channels=run.channels,
        block_size=config.block_size,
        keys=config.random_keys,
        seed=_stream(config.seed, "random key search"),
    )
    random_seconds = time.perf_counter() - started
    test_x, test_y = data.test_images, data.test_labels
    scores = {}
    for name, candidate in (("estimated", estimated.key), ("random", best_random), ("initial", initial)):
        set_key(protected, candidate)
        scores[name] = accuracy(protected, test_x, test_y)
    set_key(protected, run.key)
    run.results["key_estimation"] = {
        "accuracy": scores["estimated"],
        "positions_recovered": 100.0 * positions_recovered(estimated.key, run.key),
        "initial_key_accuracy": scores["initial"],
        "attack_images": int(pick.numel()),
        "attack_images_correct": estimated.correct,  # the count the search climbed to
        "rounds": config.key_estimation.rounds,
        "candidates_evaluated": estimated.evaluated,
        "accepted_swaps": estimated.accepted,
        "forward_images": estimated.forward_images,
        "seconds": estimated.seconds,
        "random_key_search": {
            "keys": config.random_keys,
            "accuracy": scores["random"],
            "positions_recovered": 100.0 * positions_recovered(best_random, run.key),
            "seconds": random_seconds,
        },
    }


def _fine_tune_stage(run: _Run) -> None:
    """Table III: fine-tune the stolen model without its key (the recipe's and a gentler rate),
    next to training from scratch on the same images. Saved after every |D'|."""
    config, data = run.config, run.data
    stolen_state = {k: v.detach().clone() for k, v in run.trained("protected").state_dict().items()}
    done: Dict[str, Any] = run.results.setdefault("fine_tuning", {})
    for size in config.fine_tune_sizes:
        if size > data.train_images.shape[0] or str(size) in done:
            continue
        subset = data.subset_train(size, seed=config.seed)
        recipe = dataclasses.replace(
            run.train, epochs=config.fine_tune_epochs, batch_size=min(run.train.batch_size, size)
        )
        gentle = dataclasses.replace(recipe, lr_max=recipe.lr_max * config.gentle_lr_scale)
        entry = {}
        for label, start, schedule in (
            ("stolen", stolen_state, recipe),
            ("stolen_gentle", stolen_state, gentle),
            ("scratch", None, recipe),
        ):
            model = run.network(f"fine-tune {size} {label}")
            if start is not None:
                model.load_state_dict(start)  # the weights only: the thief has no key
            name = f"fine-tune-{size}-{label}"
            trained, _ = run.fit(name, model, subset, schedule, f"{label} |D'|={size}")
            entry[label] = accuracy(trained, data.test_images, data.test_labels)
        done[str(size)] = entry
        run.save()
        _clear_checkpoints(run.out, f"fine-tune-{size}-*.pt")  # recorded: only baseline and protected stay


def _transforms_stage(run: _Run) -> None:
    """The input-transform baselines: the same network trained on key-transformed images,
    evaluated with the key, wrong keys and plain images. Saved after every (transform, M)."""
    config, data = run.config, run.data
    test_x, test_y = data.test_images, data.test_labels
    done: Dict[str, Any] = run.results.setdefault("transforms", {})
    for name in config.transforms:
        for m in config.transform_block_sizes:
            if str(m) in done.get(name, {}):
                continue
            if data.train_images.shape[2] % m or data.train_images.shape[3] % m:
                raise ValueError(f"run_model_protection: transform block size {m} must divide the image size")
            generator = torch.Generator().manual_seed(_stream(config.seed, f"transform {name} M={m}"))
            transform = input_transform(name, m, generator)
            model, seconds = run.fit(
                f"transform-{name}-{m}",
                run.network(f"transform {name} {m}"),
                data,
                run.train,
                f"{name} M={m}",
                transform,
            )
            wrong = [
                accuracy(model, test_x, test_y, input_transform=input_transform(name, m, generator))
                for _ in range(config.wrong_keys)
            ]
            wrong_t = torch.tensor(wrong, dtype=torch.float64)
            done.setdefault(name, {})[str(m)] = {
                "correct_key": accuracy(model, test_x, test_y, input_transform=transform),
                "wrong_keys_mean": float(wrong_t.mean()),
                "wrong_keys_max": float(wrong_t.max()),
                "plain_images": accuracy(model, test_x, test_y),
                "train_seconds": seconds,
            }
            run.save()
            _clear_checkpoints(run.out, f"transform-{name}-{m}.pt")


_STAGE_FUNCTIONS: Dict[str, Callable[[_Run], None]] = {
    "train": _train_stage,
    "evaluate": _evaluate_stage,
    "key-estimation": _key_estimation_stage,
    "fine-tune": _fine_tune_stage,
    "transforms": _transforms_stage,
}
_STAGE_SECTIONS = {
    "train": "train_seconds",
    "evaluate": "accuracy",
    "key-estimation": "key_estimation",
    "fine-tune": "fine_tuning",
    "transforms": "transforms",
}


_STAGE_CHECKPOINTS = {"fine-tune": "fine-tune-*.pt", "transforms": "transform-*.pt"}


def _clear_checkpoints(out: pathlib.Path, pattern: str) -> None:
    """Delete the checkpoints matching ``pattern`` (process 0, between barriers): those of models
    whose results are recorded, or of partial trainings with other settings."""
    barrier()
    if is_main_process():
        for path in (out / "checkpoints").glob(pattern):
            path.unlink()
    barrier()


def _differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def run_model_protection(
    config: ProtectionConfig,
    out_dir: str | pathlib.Path,
    *,
    progress: bool = True,
    steps: Sequence[str] = STAGES,
    resume: bool = False,
) -> Dict[str, Any]:
    """Train the baseline and the protected model, evaluate them (Table I), attack the protected
    model by key estimation (Table II) and fine-tuning (Table III), train the input-transform
    baselines; write ``key.fpk``, ``checkpoints/`` and ``results.json`` in ``out_dir``.

    Args:
        config: the run's settings.
        out_dir: the run's folder (created).
        progress: progress bars (process 0 only).
        steps: the stages to run, any of :data:`STAGES` (always in that order). Stages after
            ``train`` without ``train`` load the trained models from ``checkpoints/``; the
            results of stages not run are kept from ``results.json``.
        resume: continue an interrupted run: skip stages (and fine-tuning sizes, transforms)
            whose results are recorded with the same settings, continue training from the
            per-epoch checkpoints.

    Returns:
        The results (as written to ``results.json``).

    Raises:
        ValueError: unknown steps; a stage's earlier results recorded with other settings (the
            differing settings are named); a stage needing a model the folder does not hold.
    """
    where = "run_model_protection"
    if isinstance(steps, str) or not steps or any(step not in STAGES for step in steps):
        raise ValueError(f"{where}: steps must be a non-empty list of {STAGES}, got {steps!r}")
    out = pathlib.Path(out_dir)
    if is_main_process():
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    barrier()
    started = time.perf_counter()
    every_stage = set(steps) == set(STAGES)
    results: Dict[str, Any] = {}
    if (resume or not every_stage) and (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())
    if "train" in steps and not resume:
        results = {}  # a new training makes every earlier result stale
        _clear_checkpoints(out, "*.pt")
    trained_before = results.get("settings", {}).get("train")
    if trained_before is not None and trained_before != config.stage_settings("train") and results:
        raise ValueError(
            f"{where}: {out} holds models trained with other settings ("
            + "; ".join(_differences(trained_before, config.stage_settings("train")))
            + "); run the train step again (without resume) or use another folder"
        )
    base_seconds = float(results.get("run", {}).get("seconds", 0.0)) if resume else 0.0
    data = load_image_classification(config.data, config.data_dir)
    channels = position_channels(config.width, config.at)
    key_path = out / "key.fpk"
    if "train" in steps and not (resume and key_path.exists()) and is_main_process():
        if config.random_key:
            key = BlockKey.generate(channels=channels, block_size=config.block_size)
        else:
            key = _block_key(
                torch.Generator().manual_seed(_stream(config.seed, "secret key")), channels, config.block_size
            )
        save_key(key_path, key, overwrite=True)  # beside the weights, never inside them
    barrier()
    if not key_path.exists():
        raise ValueError(f"{where}: {key_path} is missing; run the train step first")
    loaded = load_key(key_path, BlockKey)  # what a user of the checkpoint does
    assert isinstance(loaded, BlockKey)
    key = loaded
    run = _Run(config, out, data, config.training(), key, channels, progress and is_main_process(), resume, results)
    settings = results.setdefault("settings", {})
    for stage in STAGES:
        if stage not in steps:
            continue
        wanted = config.stage_settings(stage)
        section = _STAGE_SECTIONS[stage]
        same = resume and settings.get(stage) == wanted
        if same and section in results and stage not in ("fine-tune", "transforms"):
            continue  # done; fine-tuning and transforms skip what they recorded, one by one
        if not same:
            results.pop(section, None)
            if stage in _STAGE_CHECKPOINTS:  # partial trainings of other settings
                _clear_checkpoints(out, _STAGE_CHECKPOINTS[stage])
        settings[stage] = wanted
        run.save()  # the settings first: a resumed run of other settings is refused
        _STAGE_FUNCTIONS[stage](run)
        _describe(run, base_seconds + time.perf_counter() - started)
        run.save()
    return results


def _describe(run: _Run, seconds: float) -> None:
    config, data = run.config, run.data
    run.results["key_space_log10"] = math.lgamma(run.channels * config.block_size**2 + 1) / math.log(10)
    run.results["key_positions"] = run.channels * config.block_size**2
    run.results["data"] = {
        "name": data.name,
        "train": int(data.train_images.shape[0]),
        "test": int(data.test_images.shape[0]),
        "classes": len(data.classes),
        "image_size": list(data.train_images.shape[2:]),
    }
    run.results["model"] = {
        "architecture": "ResNet-18 (CIFAR)",
        "width": config.width,
        "at": config.at,
        "block_size": config.block_size,
        "channels": run.channels,
    }
    _, world = rank_and_world()
    run.results["run"] = {
        "featperm": __version__,
        "torch": torch.__version__,
        "device": config.device,
        "processes": world,
        "seed": config.seed,
        "preset": config.preset,
        "train": dataclasses.asdict(run.train),
        "seconds": seconds,
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "key_file": "key.fpk",
    }
