"""The README's main command, `python examples/demo.py`, keeps working."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_and_writes_its_report(tmp_path):
    # The checkout first on the path, as for the tests themselves (an installed featperm also works).
    # One OpenMP thread: the tiny networks run several times slower with two on a busy CPU.
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "demo.py"), "--quick", "--no-progress",
                             "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert f"{out / 'report.html'}" in result.stdout.splitlines()[-1]
    assert "ShuffleBits is obfuscation; the ChaCha20-Poly1305 cascade is encryption" in result.stdout
    assert (out / "report.md").is_file() and "data:image/png;base64," in (out / "report.html").read_text()
    # ShuffleBits and block shuffle decrypt bit for bit, sealed features open exactly, a flipped bit is refused
    checks = json.loads((out / "throughput" / "results.json").read_text())["checks"]
    assert checks == {"shuffle_bits_then_unshuffle_bits_exact": True, "block_shuffle_then_block_unshuffle_exact": True,
                      "seal_then_open_exact": True, "tampered_container_refused": True}
    # errors are one line, exit status 2 (the example goes through featperm.cli)
    again = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "demo.py"), "--report-only", "--out",
                            str(tmp_path / "empty")], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert again.returncode == 2 and again.stderr.strip().startswith("featperm: error: featperm demo: no results in")


# -------------------------------------------------------------------------------------------------
# The other examples of examples/ (encrypt_torchvision_outputs, protect_resnet18, audit_features,
# keys_derive_and_store): each runs as a user would run it, on one CPU thread, and its printed
# results are checked, with the files it writes where it writes some. (Kept apart from the demo
# test above, which another change rewrites.)


def _run_example(name, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _example_line(stdout, prefix):
    lines = [line for line in stdout.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"no single line starting with {prefix!r} in:\n{stdout}"
    return lines[0]


def _percentages(line):
    import re
    return [float(v) for v in re.findall(r"(\d+(?:\.\d+)?)%", line)]


def test_example_encrypt_torchvision_outputs():
    out = _run_example("encrypt_torchvision_outputs.py", "--model", "resnet18")
    assert "resnet18: features (8, 512) torch.float32 -> ciphertext torch.int32" in out
    assert "decrypted exactly with the key: True; with a wrong key: False" in out
    # ShuffleBits keeps every word's Hamming weight and every zero; the cascade keeps neither.
    shuffled = _example_line(out, "interceptor of ShuffleBits words:")
    assert shuffled.endswith("Hamming weight kept in 100% of the words"), shuffled
    assert "100% of the" in shuffled or "no zeros" in shuffled
    known = _percentages(_example_line(out, "interceptor knowing 1 plain vector:"))
    assert known and known[0] >= 95.0
    assert "opened exactly: True" in _example_line(out, "cascade:")
    assert "AuthenticationError" in _example_line(out, "cascade with a wrong AEAD key:")
    assert "AuthenticationError" in _example_line(out, "cascade with one flipped bit:")
    sealed = _example_line(out, "interceptor of the cascade:")
    assert "dtype code 9 and shape (8, 512) in clear" in sealed
    assert _percentages(sealed)[-1] < 50.0  # uniform 32-bit words keep their weight ~14% of the time


def test_example_protect_resnet18(tmp_path):
    import torch

    from featperm import keys
    from featperm.keys import BlockKey
    from featperm.models import resnet18_cifar

    secret_file = tmp_path / "master.fpk"
    keys.save_secret(secret_file, bytes(range(32)))  # fixed, so that the run is deterministic
    out = _run_example("protect_resnet18.py", "--secret", secret_file, "--out", tmp_path)
    with_key = _percentages(_example_line(out, "test accuracy with the key:"))[0]
    wrong_mean, _, no_transform, _ = _percentages(_example_line(out, "test accuracy with 5 wrong keys:"))
    assert with_key >= 80.0
    assert wrong_mean <= with_key - 40.0 and no_transform <= with_key - 40.0
    assert "key in the state dict: False (entries named after the shuffle: [])" in out
    assert "same as with the key: True" in out
    # Weights and key are separate files; the key file holds the derived key, the weights do not.
    key = keys.load_key(tmp_path / "resnet18_layer1.fpk", expected_kind=BlockKey)
    assert key == BlockKey.derive(bytes(range(32)), "model lock", "resnet18/layer1", channels=8, block_size=2)
    state = torch.load(tmp_path / "resnet18_weights.pt", weights_only=True)
    assert set(state) == set(resnet18_cifar(10, width=8).state_dict())
    assert not any(torch.equal(t.to(torch.int64), key.permutation()) for t in state.values()
                   if t.shape == key.permutation().shape)


def test_example_audit_features_on_its_example_file():
    out = _run_example("audit_features.py")
    rows = {}
    for name in ("glasses", "colour", "unrelated"):
        score, chance = _percentages(_example_line(out, name + " "))
        rows[name] = (score, chance)
    assert rows["glasses"][1] == 50.0 and rows["glasses"][0] >= 80.0
    assert rows["colour"][1] == 25.0 and rows["colour"][0] >= 35.0
    assert rows["unrelated"][1] == 33.3 and rows["unrelated"][0] < 45.0
    assert _example_line(out, "glasses ").endswith("LEAKS")
    assert _example_line(out, "unrelated ").endswith("near chance")


def test_example_audit_features_on_a_users_file(tmp_path):
    import torch

    from featperm.datasets import save_feature_file

    g = torch.Generator().manual_seed(1)
    features = torch.randn(400, 16, generator=g)
    smiling = (features[:, 3] > 0).long()  # read straight off one dimension
    noise = torch.randint(0, 2, (400,), generator=g)
    path = tmp_path / "mine.npz"
    save_feature_file(path, features, {"smiling": smiling, "noise": noise})  # no split: half/half
    out = _run_example("audit_features.py", path)
    assert "400 vectors of 16 dims: 200 attacker's own, 200 intercepted" in out
    score, chance = _percentages(_example_line(out, "smiling "))
    assert chance == 50.0 and score >= 80.0
    score, chance = _percentages(_example_line(out, "noise "))
    assert chance == 50.0 and score < 62.0


def test_example_keys_derive_and_store(tmp_path):
    import stat

    from featperm import keys
    from featperm.keys import BitKey

    out = _run_example("keys_derive_and_store.py", "--dir", tmp_path)
    assert "deterministic: same inputs give the same BitKey: True; the same BlockKey: True" in out
    separation = [line for line in out.splitlines() if line.startswith("domain separation")]
    assert len(separation) == 6 and all("equal False" in line for line in separation)
    assert "re-derived from it: True" in out
    assert "two requests share a key: False" in out
    assert "key file round trip: BitKey equal True, BlockKey equal True" in out
    assert "wrong kind refused: KeyFileError" in out and "corrupted file refused: KeyFileError" in out
    secret = keys.load_secret(tmp_path / "master.fpk")
    assert len(secret) == 32 and stat.S_IMODE(os.stat(tmp_path / "master.fpk").st_mode) == 0o600
    assert keys.load_key(tmp_path / "features.fpk") == BitKey.derive(secret, "features", "model-v2")
