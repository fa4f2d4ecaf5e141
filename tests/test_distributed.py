"""Two CPU processes (torchrun, gloo) train and search keys as one process does
(featperm.experiments.distributed, DDP in train_classifier, the split key search)."""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from featperm.experiments import distributed

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import distributed_worker  # noqa: E402


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "tests" / "distributed_worker.py"), str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.fixture(scope="module")
def one_process():
    torch.set_num_threads(1)
    return distributed_worker.compute(split=False)


def test_two_processes_ran_as_a_group(two_processes):
    assert [r["world"] for r in two_processes] == [2, 2]


def test_ddp_step_is_the_one_process_step(two_processes, one_process):
    # Without batch norm, each process's share of the global batch with the loss scaled to the
    # global mean gives the one-process gradient: the weights agree to float rounding.
    for rank in two_processes:
        for name, value in one_process["plain"].items():
            torch.testing.assert_close(rank["plain"][name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_replicas_stay_identical_with_batch_norm(two_processes):
    # With batch norm, batch statistics are per process on the CPU (synchronised only on CUDA),
    # so the run differs from one process's; the running statistics are averaged every epoch,
    # so the replicas (and the checkpoint) hold the same model.
    first, second = (r["resnet"] for r in two_processes)
    assert any(n.endswith("running_mean") for n in first)
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_split_key_search_returns_the_one_process_key(two_processes, one_process):
    for rank in two_processes:
        assert torch.equal(rank["key"], one_process["key"])
        assert rank["search"] == one_process["search"]
    assert one_process["search"][1] >= 1  # swaps were accepted: the search did something


def test_helpers_without_a_process_group():
    assert distributed.rank_and_world() == (0, 1)
    assert distributed.is_main_process() and not distributed.is_distributed()
    assert distributed.start_from_environment("cpu") == "cpu"
    distributed.barrier()
    distributed.stop()
