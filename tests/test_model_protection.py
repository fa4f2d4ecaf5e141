"""The model-protection experiment (AprilPyone & Kiya's Tables I-III) on the built-in digits, tiny."""

import dataclasses
import json
import stat
import subprocess
import sys

import pytest
import torch

from featperm.attacks.key_estimation import KeyEstimationConfig
from featperm.datasets.image_classification import load_digits_rgb
from featperm.experiments.model_protection import (
    ProtectionConfig,
    TrainConfig,
    _stream,
    run_model_protection,
    train_classifier,
)
from featperm.keys import BlockKey, load_key
from featperm.models import resnet18_cifar
from featperm.report.model_protection import render_model_protection

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("protect")
    config = ProtectionConfig.quick(
        width=8, train=TrainConfig.small(epochs=5), wrong_keys=8, attack_images=100, random_keys=20,
        key_estimation=KeyEstimationConfig(rounds=1), fine_tune_sizes=(50, 200), fine_tune_epochs=2,
        transform_block_sizes=(4,),
    )
    return out, run_model_protection(config, out, progress=False), config


def test_results_contract(tiny_run):
    out, results, _ = tiny_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results
    assert {"baseline", "correct_key", "wrong_keys_mean", "wrong_keys_max", "no_transform"} <= set(results["accuracy"])
    assert {"accuracy", "positions_recovered"} <= set(results["key_estimation"])
    assert set(results["fine_tuning"]) == {"50", "200"}
    for entry in results["fine_tuning"].values():
        assert set(entry) == {"stolen", "stolen_gentle", "scratch"} and all(0 <= v <= 100 for v in entry.values())
    assert set(results["transforms"]) == {"SHF", "NP", "FFX"}
    for by_size in results["transforms"].values():
        assert set(by_size) == {"4"}
        assert {"correct_key", "wrong_keys_mean", "wrong_keys_max", "plain_images"} <= set(by_size["4"])
    assert set(results["settings"]) == {"train", "evaluate", "key-estimation", "fine-tune", "transforms"}
    assert results["key_positions"] == 8 * 2 * 2
    written = render_model_protection(out)
    assert [p.name for p in written] == ["results.md", "accuracy_vs_budget.png"]
    assert written[1].stat().st_size > 5000
    text = written[0].read_text()
    assert "Table I" in text and f"{results['accuracy']['correct_key']:.1f}%" in text
    assert "input-transform baselines" in text and f"{results['transforms']['NP']['4']['correct_key']:.1f}%" in text


def test_key_file_beside_weights_never_inside(tiny_run):
    out, _, config = tiny_run
    key = load_key(out / "key.fpk", BlockKey)
    assert stat.S_IMODE((out / "key.fpk").stat().st_mode) == 0o600
    assert key.channels == 8 and key.block_size == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["baseline.pt", "protected.pt"]
    state = torch.load(out / "checkpoints" / "protected.pt", weights_only=True)
    assert state["epoch"] == config.training().epochs
    assert list(state["model"]) == list(resnet18_cifar(10, width=8).state_dict())  # no key tensor

def test_the_key_locks_the_model(tiny_run):
    _, results, _ = tiny_run
    acc = results["accuracy"]
    assert acc["baseline"] > 80 and acc["correct_key"] > 80  # digits: 10 classes, chance 10%
    assert acc["wrong_keys_mean"] < 45 and acc["no_transform"] < 45


def test_input_transforms_lock_their_models(tiny_run):
    _, results, _ = tiny_run
    table = {name: by_size["4"] for name, by_size in results["transforms"].items()}
    for name, entry in table.items():
        assert entry["correct_key"] > 50, table
        # without the key (plain images) every transformed model is far below its keyed accuracy
        assert entry["plain_images"] < entry["correct_key"] - 15, table
    for name in ("NP", "FFX"):  # NP and FFX also lock against wrong keys
        assert table[name]["wrong_keys_mean"] < table[name]["correct_key"] - 15, table


def test_attacks_and_their_baselines(tiny_run):
    _, results, _ = tiny_run
    est = results["key_estimation"]
    # the greedy search restores accuracy from a random starting key (a real attack)
    assert est["accuracy"] > est["initial_key_accuracy"] + 20
    # the attacker's random keys come from their own generator, never the secret key's
    assert est["random_key_search"]["positions_recovered"] < 100
    assert _stream(0, "secret key") != _stream(0, "random key search")


def test_protect_command_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "featperm.cli", "protect", "--out", str(tmp_path), "--data", "cifar10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs --data-dir" in proc.stderr and "Traceback" not in proc.stderr


def test_steps_reuse_the_checkpoints_and_resume_skips_what_is_recorded(tiny_run):
    out, results, config = tiny_run
    again = run_model_protection(config, out, progress=False, steps=["evaluate"])
    assert again["accuracy"] == results["accuracy"]  # the checkpoint and key file give the same model
    assert again["fine_tuning"] == results["fine_tuning"]  # stages not run are kept
    # resume: a recorded stage is skipped, a missing fine-tuning size is recomputed (identically)
    recorded = json.loads((out / "results.json").read_text())
    del recorded["fine_tuning"]["200"]
    (out / "results.json").write_text(json.dumps(recorded))
    resumed = run_model_protection(config, out, progress=False, resume=True)
    assert resumed["fine_tuning"] == results["fine_tuning"]
    assert resumed["key_estimation"] == results["key_estimation"]
    with pytest.raises(ValueError, match=r"run_model_protection: .* other settings \(.*width: 8 -> 4"):
        run_model_protection(ProtectionConfig.quick(width=4), out, progress=False, steps=["evaluate"])
    with pytest.raises(ValueError, match=r"run_model_protection: steps must be"):
        run_model_protection(config, out, progress=False, steps=["train", "attack"])


def test_training_resumes_bit_for_bit(tmp_path):
    data = load_digits_rgb()
    images, labels = data.train_images[:96], data.train_labels[:96]
    recipe = TrainConfig.small(epochs=3, batch_size=32)

    def model():
        torch.manual_seed(3)
        return resnet18_cifar(10, width=4)

    whole = train_classifier(model(), images, labels, recipe, checkpoint=tmp_path / "whole.pt")

    class Interrupted(Exception):
        pass

    def interrupt_after_two(epoch, total):
        if epoch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_classifier(model(), images, labels, recipe, checkpoint=tmp_path / "cut.pt", progress=interrupt_after_two)
    assert torch.load(tmp_path / "cut.pt", weights_only=True)["epoch"] == 2
    resumed = train_classifier(model(), images, labels, recipe, checkpoint=tmp_path / "cut.pt", resume=True)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match=r"train_classifier: checkpoint .* another recipe"):
        train_classifier(model(), images, labels, TrainConfig.small(epochs=4, batch_size=32),
                         checkpoint=tmp_path / "cut.pt", resume=True)


def test_os_random_key_and_a_resume_of_other_settings_is_refused(tmp_path):
    config = ProtectionConfig.quick(width=4, train=TrainConfig.small(epochs=1), random_key=True)
    run_model_protection(config, tmp_path, progress=False, steps=["train"])
    key = load_key(tmp_path / "key.fpk", BlockKey)
    seeded = torch.randperm(16, generator=torch.Generator().manual_seed(_stream(0, "secret key")))
    assert not torch.equal(key.tensor(), seeded)  # not the seed's key: the OS CSPRNG's
    # an interrupted or finished run resumed with another block size must not reuse its weights
    with pytest.raises(ValueError, match=r"other settings \(.*block_size: 2 -> 4"):
        run_model_protection(dataclasses.replace(config, block_size=4), tmp_path, progress=False, resume=True)
    with pytest.raises(ValueError, match=r"ProtectionConfig: fine_tune_sizes"):
        ProtectionConfig(fine_tune_sizes=(1,))
