"""The `featperm` command: every command has --help, bad arguments exit 2 with one line, key files
are written owner-only and shown without key material."""

import os
import pathlib
import stat
import subprocess
import sys

import pytest

import featperm
from featperm import keys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def featperm_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "featperm.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


@pytest.mark.parametrize("command", [[], ["info"], ["keys"], ["keys", "new"], ["keys", "derive"], ["keys", "show"],
                                     ["demo"], ["bench"]])
def test_every_command_has_help(command):
    result = featperm_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: featperm")


def test_demo_help_names_its_options():
    result = featperm_cli("demo", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--out", "--seed", "--device", "--no-progress", "--report-only", "--quick"):
        assert option in result.stdout, option


def test_version_and_info():
    assert featperm_cli("--version").stdout.strip() == f"featperm {featperm.__version__}"
    result = featperm_cli("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"featperm {featperm.__version__}\n")
    assert f"CUDA kernels built: {featperm.has_cuda_kernels()}" in out
    for kernel, variant in featperm.ops.cpu_kernels().items():
        assert f"{kernel:<14} runs {variant}" in out
    assert "visible GPUs:" in out


def test_keys_new_show_derive(tmp_path):
    path = tmp_path / "k.fpk"
    result = featperm_cli("keys", "new", "--out", str(path))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = keys.load_key(path)
    assert isinstance(key, featperm.BitKey) and key.bits == 32
    shown = featperm_cli("keys", "show", str(path))
    assert shown.returncode == 0 and "BitKey" in shown.stdout and "mode 0600" in shown.stdout
    # never key material: no entry of the permutation as a list, no hex of the file's payload
    assert str(key.permutation().tolist()) not in shown.stdout
    assert path.read_bytes()[24:56].hex() not in shown.stdout

    secret = tmp_path / "secret.fpk"
    assert featperm_cli("keys", "new", "--kind", "secret", "--out", str(secret)).returncode == 0
    shown = featperm_cli("keys", "show", str(secret))
    assert "master secret of 32 bytes" in shown.stdout and keys.load_secret(secret).hex() not in shown.stdout
    block = tmp_path / "block.fpk"
    result = featperm_cli("keys", "derive", "--secret", str(secret), "--label", "layer1", "--kind", "block",
                          "--channels", "64", "--block-size", "2", "--out", str(block))
    assert result.returncode == 0, result.stderr
    expected = featperm.BlockKey.derive(keys.load_secret(secret), "layer1", channels=64, block_size=2)
    assert keys.load_key(block) == expected
    for kind in ("np", "ffx"):
        out = tmp_path / f"{kind}.fpk"
        assert featperm_cli("keys", "new", "--kind", kind, "--channels", "3", "--block-size", "4",
                            "--out", str(out)).returncode == 0
        assert type(keys.load_key(out)).__name__ == {"np": "NPKey", "ffx": "FFXKey"}[kind]


@pytest.mark.parametrize("args,fragment", [
    (["nonsense"], "invalid choice"),
    (["keys", "new"], "required: --out"),
    (["keys", "new", "--bits", "12", "--out", "{tmp}/a"], "bits must be one of"),
    (["keys", "new", "--bits", "many", "--out", "{tmp}/a"], "invalid int value"),
    (["keys", "new", "--kind", "block", "--out", "{tmp}/a"], "needs --channels and --block-size"),
    (["keys", "new", "--kind", "secret", "--bytes", "8", "--out", "{tmp}/a"], "nbytes must be >= 16"),
    (["keys", "show", "{tmp}/missing.fpk"], "No such file or directory"),
    (["keys", "show", "{tmp}/garbage.fpk"], "not a featperm key file"),
    (["keys", "new", "--out", "{tmp}/exists.fpk"], "File exists"),
    (["keys", "derive", "--secret", "{tmp}/exists.fpk", "--label", "x", "--out", "{tmp}/b"], "holds a BitKey, expected a secret"),
    (["demo", "--report-only", "--out", "{tmp}/no-run-here"], "no results in"),
    (["demo", "--seed", "many"], "invalid int value"),
    (["demo", "--seed", "-1", "--out", "{tmp}/d"], "--seed must be >= 0"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, fragment):
    (tmp_path / "garbage.fpk").write_bytes(b"not a key")
    keys.save_key(tmp_path / "exists.fpk", featperm.BitKey.generate(32))
    result = featperm_cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0] and lines[0].startswith("featperm")


def test_the_command_is_declared_once_with_one_version_source():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'featperm = "featperm.cli:main"' in text
    assert 'version = { attr = "featperm._version.__version__" }' in text
    assert "version=" not in (ROOT / "setup.py").read_text()


def test_installed_console_script_runs():
    script = pathlib.Path(sys.executable).with_name("featperm")
    if not script.exists():
        pytest.skip("featperm is not installed into this interpreter's environment (make test installs it)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"featperm {featperm.__version__}"
