"""The model-protection experiment (AprilPyone & Kiya's Tables I-III) on the built-in digits, tiny."""

import json
import subprocess
import sys

import pytest

from featperm.attacks.key_estimation import KeyEstimationConfig
from featperm.experiments.model_protection import ProtectionConfig, TrainConfig, _stream, run_model_protection
from featperm.report.model_protection import render_model_protection


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("protect")
    config = ProtectionConfig.quick(
        width=8, train=TrainConfig.small(epochs=5), wrong_keys=8, attack_images=100, random_keys=20,
        key_estimation=KeyEstimationConfig(rounds=1), fine_tune_sizes=(50, 200), fine_tune_epochs=2,
    )
    return out, run_model_protection(config, out, progress=False)


def test_results_contract(tiny_run):
    out, results = tiny_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results
    assert {"baseline", "correct_key", "wrong_keys_mean", "wrong_keys_max", "no_transform"} <= set(results["accuracy"])
    assert {"accuracy", "positions_recovered"} <= set(results["key_estimation"])
    assert set(results["fine_tuning"]) == {"50", "200"}
    for entry in results["fine_tuning"].values():
        assert set(entry) == {"stolen", "scratch"} and all(0 <= v <= 100 for v in entry.values())
    assert results["key_positions"] == 8 * 2 * 2
    written = render_model_protection(out)
    assert [p.name for p in written] == ["results.md", "accuracy_vs_budget.png"]
    assert written[1].stat().st_size > 5000
    text = written[0].read_text()
    assert "Table I" in text and f"{results['accuracy']['correct_key']:.1f}%" in text


def test_the_key_locks_the_model(tiny_run):
    _, results = tiny_run
    acc = results["accuracy"]
    assert acc["baseline"] > 80 and acc["correct_key"] > 80  # digits: 10 classes, chance 10%
    assert acc["wrong_keys_mean"] < 45 and acc["no_transform"] < 45


def test_attacks_and_their_baselines(tiny_run):
    _, results = tiny_run
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
