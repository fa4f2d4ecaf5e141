"""Several processes, GPUs or machines for the experiments, with ``torch.distributed``.

Launch any experiment command under ``torchrun``; it reads the launcher's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``)::

    torchrun --standalone --nproc_per_node=4 -m featperm.cli protect --out runs/c --device cuda ...
    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m featperm.cli protect --out runs/c --device cuda ...

Process r uses ``cuda:LOCAL_RANK`` (NCCL) when ``--device cuda``, else the CPU (gloo). What runs
where: :func:`~featperm.experiments.model_protection.train_classifier` wraps the model in
DistributedDataParallel (every process draws the same order and augmentation of each global
batch and trains on its share; gradients are averaged so that the step is the one-process step
up to batch-norm statistics, which are synchronised on CUDA and per process on the CPU); the key
search splits its candidate swaps across processes and returns the one-process key; evaluation
runs in every process; only process 0 writes files and shows progress.
"""

from __future__ import annotations

import os
from typing import Tuple

import torch
from torch import distributed as dist

__all__ = ["start_from_environment", "is_distributed", "rank_and_world", "is_main_process", "barrier", "stop"]


def is_distributed() -> bool:
    """Whether a default process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> Tuple[int, int]:
    """(this process's rank, the number of processes); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True in process 0 (and when there is no process group): the one that writes files."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if is_distributed():
        dist.barrier()


def start_from_environment(device: str) -> str:
    """Initialise the default process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1 in
    the environment) and return the device this process uses: ``cuda:LOCAL_RANK`` for a CUDA
    ``device`` (NCCL), ``device`` itself otherwise (gloo). Without a launcher, returns ``device``.

    Raises:
        ValueError: a CUDA device under a launcher with more local processes than GPUs.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"start_from_environment: LOCAL_RANK {local_rank} needs GPU {local_rank}, "
                f"but {torch.cuda.device_count()} GPUs are visible"
            )
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return f"cuda:{local_rank}"
    dist.init_process_group("gloo")
    return device


def stop() -> None:
    """Tear the process group down (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
