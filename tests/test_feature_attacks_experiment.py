"""The feature-attack experiment end to end: the results contract, and effects with margins.

The effects are asserted on a user's features file whose attributes are known to be encoded
(fast and deterministic); the built-in pipeline (extractor, reconstruction, report) runs at a tiny
size through the command line and is checked for its contract and files."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from featperm.attacks.attribute_inference import AttributeInferenceConfig
from featperm.attacks.reconstruction import ReconstructionConfig
from featperm.datasets.pedestrians import synthetic_pedestrians
from featperm.experiments.extractor import ExtractorConfig
from featperm.datasets.feature_files import save_feature_file
from featperm.experiments.feature_attacks import FeatureAttackConfig, run_feature_attacks
from featperm.report.feature_attacks import markdown, render_feature_attacks
from tests.test_dataset_loaders import DUKE_BINARY, DUKE_DOWN, DUKE_UP, MARKET_BINARY, MARKET_DOWN, MARKET_UP
from tests.test_dataset_loaders import split_fields, write_mat


def _pooled_relu_features(n=1200, d=64, seed=0):
    """Non-negative features with exact zeros, per-dimension scales, and three attributes: two
    encoded (binary in 3 dims, 4 classes in 4 dims), one not encoded at all."""
    g = torch.Generator().manual_seed(seed)
    binary = (torch.rand(n, generator=g) < 0.3).long()
    four = torch.randint(0, 4, (n,), generator=g)
    unencoded = torch.randint(0, 2, (n,), generator=g)
    scale = torch.rand(d, generator=g) * 2 + 0.1
    x = torch.randn(n, d, generator=g) + 0.8  # about a fifth of the values are exact zeros
    x[:, :3] += 2.0 * binary.unsqueeze(1)
    x[:, 3:7] += 2.0 * torch.nn.functional.one_hot(four, 4)
    x = (x * scale).relu()
    return x, {"binary": binary, "four": four, "unencoded": unencoded}


@pytest.fixture(scope="module")
def features_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features_run")
    x, labels = _pooled_relu_features()
    split = (torch.arange(x.shape[0]) >= 600).long()  # 0 = attacker's data, 1 = intercepted
    path = folder / "mine.npz"
    save_feature_file(path, x, labels, split=split)
    config = FeatureAttackConfig(
        features_file=str(path),
        attributes=AttributeInferenceConfig(epochs=40, lr=1e-2),
        intercepted_counts=(1, 10, 100),
        known_plaintext_vectors=(1, 2, 4),
    )
    results = run_feature_attacks(config, folder / "out", progress=False)
    return folder / "out", results


def test_features_file_results_contract(features_run):
    out, results = features_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["attribute_inference"]["chance"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    attr = on_disk["attribute_inference"]
    for entry in (
        attr["plain"],
        attr["shufflebits_fixed_key"]["naive"],
        attr["shufflebits_fixed_key"]["adaptive"],
        attr["shufflebits_per_request"]["naive"],
        attr["shufflebits_per_request"]["adaptive"],
        attr["sealed"],
    ):
        assert set(entry["per_attribute"]) == {"binary", "four", "unencoded"}
        assert 0 <= entry["mean_balanced_accuracy"] <= 1
        low, high = entry["mean_balanced_accuracy_ci95"]
        assert low <= entry["mean_balanced_accuracy"] <= high
    assert on_disk["reconstruction"] == {"skipped": "features file given (no images)"}
    crypt = on_disk["cryptanalysis"]
    assert isinstance(crypt["known_plaintext"]["pairs_to_full_key"], int)
    assert isinstance(crypt["known_plaintext"]["curve"], list)
    fixed = crypt["ciphertext_only_fixed_key"]
    assert fixed["vectors"] == 600 and {"key_positions_recovered", "values_exact", "cosine"} <= set(fixed)
    assert {"cosine_median", "values_exact"} <= set(crypt["ciphertext_only_single_vector"])
    assert {"zero_fraction_exposed", "hamming_weight_value_correlation"} <= set(crypt["leakage"])
    assert on_disk["data"]["split"] == "the file's split array"
    assert not (out / "reconstructions.npz").exists()


def test_plain_features_leak_and_naive_attacker_reads_nothing(features_run):
    _, results = features_run
    attr = results["attribute_inference"]
    plain = attr["plain"]["per_attribute"]
    assert plain["binary"] > 0.8 and plain["four"] > 0.6  # encoded: far above chance (0.5, 0.25)
    assert abs(plain["unencoded"] - 0.5) < 0.1  # not encoded: chance, as it must be
    for naive in (attr["shufflebits_per_request"]["naive"], attr["sealed"]):
        assert naive["per_attribute"]["binary"] < 0.62 and naive["per_attribute"]["four"] < 0.37
    # Under one fixed key every dimension is still a fixed bijection of its value (and zeros stay
    # zeros), so plaintext-trained models read ciphertext somewhat better than chance; far below plain.
    fixed = attr["shufflebits_fixed_key"]["naive"]["per_attribute"]
    assert fixed["binary"] < plain["binary"] - 0.25 and fixed["four"] < plain["four"] - 0.2


def test_adaptive_attacker_defeats_shufflebits_but_not_the_cascade(features_run):
    _, results = features_run
    attr = results["attribute_inference"]
    fixed = attr["shufflebits_fixed_key"]["adaptive"]["per_attribute"]
    assert fixed["binary"] > 0.75 and fixed["four"] > 0.55  # the cryptanalysis restores the leak
    per_request = attr["shufflebits_per_request"]["adaptive"]["per_attribute"]
    assert per_request["binary"] > 0.65 and per_request["four"] > 0.45
    sealed = attr["sealed"]["adaptive"]["per_attribute"]
    assert sealed["binary"] < 0.62 and sealed["four"] < 0.37
    crypt = results["cryptanalysis"]
    assert crypt["ciphertext_only_fixed_key"]["cosine"] > 0.95
    assert crypt["ciphertext_only_fixed_key"]["random_key"]["cosine"] < 0.3
    assert crypt["ciphertext_only_single_vector"]["cosine_median"] > 0.7
    leak = crypt["leakage"]
    assert leak["zero_fraction_exposed"] == 1.0 and leak["sealed"]["zero_fraction_exposed"] < 0.01
    assert leak["hamming_weight_value_correlation"] > 0.15
    assert abs(leak["sealed"]["hamming_weight_value_correlation"]) < 0.05


def test_run_is_deterministic_for_a_seed(features_run, tmp_path):
    out, first = features_run
    config = FeatureAttackConfig(
        features_file=str(out.parent / "mine.npz"),
        attributes=AttributeInferenceConfig(epochs=40, lr=1e-2),
        intercepted_counts=(1, 10, 100),
        known_plaintext_vectors=(1, 2, 4),
    )
    second = run_feature_attacks(config, tmp_path, progress=False)
    assert second["attribute_inference"] == first["attribute_inference"]
    for key in ("known_plaintext", "ciphertext_only_fixed_key", "leakage"):
        a, b = dict(first["cryptanalysis"][key]), dict(second["cryptanalysis"][key])
        a.pop("seconds", None), b.pop("seconds", None)
        assert a == b


def test_report_renders_from_the_files(features_run):
    out, _ = features_run
    written = render_feature_attacks(out)
    assert {p.name for p in written} == {"results.md", "attributes.png", "key_recovery.png"}
    for p in written:
        assert p.stat().st_size > 1000
    text = (out / "results.md").read_text()
    assert "Reconstruction skipped" in text and "| plain features |" in text
    # the report shows what the file says, not numbers held in code
    results = json.loads((out / "results.json").read_text())
    results["attribute_inference"]["plain"]["mean_balanced_accuracy"] = 0.123456
    assert "12.3%" in markdown(results)


def test_features_file_without_split_is_split_by_seed(tmp_path):
    x, labels = _pooled_relu_features(n=200, d=16)
    save_feature_file(tmp_path / "f.npz", x, labels)
    config = FeatureAttackConfig(
        features_file=str(tmp_path / "f.npz"),
        attributes=AttributeInferenceConfig(epochs=2),
        intercepted_counts=(1,),
        known_plaintext_vectors=(1,),
    )
    results = run_feature_attacks(config, tmp_path / "out", progress=False)
    assert results["data"]["attacker_local"] == {"vectors": 100} and "seeded" in results["data"]["split"]


def _featperm_command():
    exe = os.path.join(os.path.dirname(sys.executable), "featperm")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "featperm.cli"]


def test_command_on_builtin_data_writes_the_contract(tmp_path):
    """The built-in pipeline (data, extractor, attacks, reconstruction, report) at a tiny size."""
    env = dict(os.environ, FEATPERM_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    cmd = _featperm_command() + [
        "attack-features", "--out", str(out), "--quick", "--no-progress", "--seed", "3",
        "--extractor-epochs", "1", "--attribute-epochs", "2", "--reconstruction-epochs", "1",
        "--image-size", "32", "16", "--identities", "12", "10", "8", "--images-per-identity", "4",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "attribute inference" in proc.stdout and "results.json" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    rec = results["reconstruction"]
    assert rec["random_pairs"]["mean_cosine_distance"] > 0 and rec["constant_reconstruction"]["mean_cosine_distance"] > 0
    for entry in (
        rec["plain"],
        rec["shufflebits_fixed_key"]["naive"],
        rec["shufflebits_fixed_key"]["adaptive"],
        rec["shufflebits_per_request"]["naive"],
        rec["shufflebits_per_request"]["adaptive"],
    ):
        assert math.isfinite(entry["mean_cosine_distance"])
    assert "small CNN" in rec["perceptual_network"]
    assert results["data"]["attacker_local"]["domain"] == results["data"]["users"]["domain"] == "campus"
    assert results["data"]["users"]["images"] == 8 * 4 and results["data"]["attacker_local"]["identities"] == 10
    for name in ("results.md", "attributes.png", "key_recovery.png", "reconstructions.png", "reconstructions.npz"):
        assert (out / name).is_file(), name
    assert list((tmp_path / "cache" / "extractors").glob("*.pt")), "the extractor is cached"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "market1501"], "needs --data-dir"),
        (["--authors-features", "x.npz"], "goes with --data market1501 or duke"),
        (["--data", "duke", "--data-dir", "/nonexistent/folder"], "DukeMTMC-reID"),
        (["--features", "/nonexistent/f.npz"], "f.npz"),
    ],
)
def test_command_errors_name_the_problem(tmp_path, args, message):
    proc = subprocess.run(
        _featperm_command() + ["attack-features", "--out", str(tmp_path / "o"), "--no-progress"] + args,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("featperm: error: ")


def _fake_reid(root, name, identities, per_identity, seed):
    """A small Market-1501 or DukeMTMC-reID folder of synthetic pedestrian JPEGs with an attribute
    file in the real layout (train: the first half of the identities, test: the rest)."""
    data = synthetic_pedestrians(identities, per_identity, domain="campus", seed=seed, height=32, width=16)
    folder = root / ("Market-1501-v15.09.15" if name == "market1501" else "DukeMTMC-reID")
    binary, up, down = (MARKET_BINARY, MARKET_UP, MARKET_DOWN) if name == "market1501" else (
        DUKE_BINARY, DUKE_UP, DUKE_DOWN)
    people = {"train": {}, "test": {}}
    for index in range(len(data)):
        identity = int(data.identities[index]) + 1
        split = "train" if identity <= identities // 2 else "test"
        subfolders = ["bounding_box_train"] if split == "train" else ["query", "bounding_box_test"]
        sub = subfolders[index % len(subfolders)]
        camera = index % per_identity + 1
        file = f"{identity:04d}_c{camera}s1_{index:06d}_01.jpg" if name == "market1501" else \
            f"{identity:04d}_c{camera}_f{index:07d}.jpg"
        (folder / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[index].permute(1, 2, 0).numpy()).save(folder / sub / file, "JPEG")
        people[split][f"{identity:04d}"] = {
            "gender": int(data.attributes["gender"][index]) + 1,
            "hat": int(data.attributes["hat"][index]) + 1,
            "colours_up": [up[int(data.attributes["upper_colour"][index]) % len(up)]],
            "colours_down": [down[int(data.attributes["lower_colour"][index]) % len(down)]],
        }
    order = lambda n: n
    variable = "market_attribute" if name == "market1501" else "duke_attribute"
    write_mat(folder / f"{variable}.mat", variable,
              split_fields(people["train"], binary, up, down, order),
              split_fields(people["test"], binary, up, down, lambda n: list(reversed(n))))
    return folder


def test_reid_data_with_the_authors_features_and_with_a_trained_extractor(tmp_path, monkeypatch):
    """--data market1501: features from an authors' feature file; --data duke: an extractor trained
    on the other dataset's train split; both run every attack on the folders' images."""
    monkeypatch.setenv("FEATPERM_CACHE", str(tmp_path / "cache"))
    market = _fake_reid(tmp_path, "market1501", 16, 4, seed=1)
    _fake_reid(tmp_path, "duke", 12, 4, seed=2)
    paths = sorted(str(p.relative_to(market)) for p in market.rglob("*.jpg"))
    features = torch.rand(len(paths), 24, generator=torch.Generator().manual_seed(0))
    np.savez(tmp_path / "authors.npz", accumulated_image_file_paths=np.asarray(paths),
             accumulated_feature_array=features.numpy())
    tiny = dict(attributes=AttributeInferenceConfig(epochs=2), intercepted_counts=(1, 4), known_plaintext_vectors=(1,))
    config = FeatureAttackConfig(data="market1501", data_dir=str(tmp_path),
                                 authors_features=str(tmp_path / "authors.npz"), **tiny)
    results = run_feature_attacks(config, tmp_path / "market", progress=False)
    assert results["data"]["attacker_local"]["images"] == 8 * 4 and results["data"]["users"]["images"] == 8 * 4
    assert {"gender", "hat", "upper_colour", "lower_colour"} <= set(results["attribute_inference"]["plain"]["per_attribute"])
    assert results["reconstruction"] == {"skipped": "features file given (no images)"}

    config = FeatureAttackConfig(data="duke", data_dir=str(tmp_path), height=32, width=16,
                                 extractor=ExtractorConfig(epochs=1, widths=(4, 8)),
                                 reconstruction=ReconstructionConfig(epochs=1, base_filters=2, discriminator_filters=2),
                                 perceptual_epochs=1, grid_images=3, **tiny)
    results = run_feature_attacks(config, tmp_path / "duke", progress=False)
    assert results["data"]["proprietary"]["dataset"] == "market1501"
    assert results["data"]["extractor"]["feature_dim"] == 8
    assert "mean_cosine_distance" in results["reconstruction"]["plain"]
    assert (tmp_path / "duke" / "reconstructions.npz").is_file()


@pytest.mark.parametrize("field, value, error", [
    ("user_identities", 1, ValueError), ("images_per_identity", 0, ValueError), ("seed", 1.0, TypeError),
    ("target_domain", "moon", ValueError), ("intercepted_counts", (), ValueError), ("data", "imagenet", ValueError),
])
def test_config_rules(field, value, error):
    with pytest.raises(error, match="FeatureAttackConfig"):
        FeatureAttackConfig(**{field: value})
