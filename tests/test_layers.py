"""The package's imports point one way (featperm/__init__.py's docstring draws the layers), and the
key layer works where the compiled library is not built."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "featperm"

# Rank of each top-level piece of the package: a module may import only ranks <= its own.
RANKS = {
    "featperm._version": 0, "featperm.errors": 0, "featperm._checks": 0, "featperm._lazy": 0,
    "featperm.keys": 1,
    "featperm.ops": 2, "featperm._C": 2, "featperm.bits": 2, "featperm.block": 2,  # old module paths
    "featperm.crypto": 3,
    "featperm.nn": 4, "featperm.transforms": 4, "featperm.models": 4, "featperm.reference": 4,
    "featperm.datasets": 5,
    "featperm.attacks": 6,
    "featperm.experiments": 7,
    "featperm.report": 8, "featperm.serve": 8,
    "featperm.demo": 9, "featperm.bench": 9, "featperm.attack_features": 9, "featperm.protect_command": 9, "featperm._arguments": 9,
    "featperm.serve_command": 9,
    "featperm.cli": 10,
    "featperm": 11,  # the facade (featperm/__init__.py) may name anything
}


def _rank(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in RANKS:
            return RANKS[name]
    raise AssertionError(f"{module} is in no layer of RANKS: add it")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _featperm_imports(tree, package):
    """(module imported, node, at module level?) for every import of a featperm module (module
    level includes top-level try/if blocks, not function or class bodies)."""
    nested = {id(inner) for outer in ast.walk(tree)
              if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
              for inner in ast.walk(outer) if inner is not outer}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] if base != "featperm" else [f"featperm.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "featperm" or name.startswith("featperm."):
                yield name, node, id(node) not in nested


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down_and_sit_at_module_level(module, path):
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    own = _rank(module)
    for imported, node, top_level in _featperm_imports(tree, package):
        assert top_level, f"{path}:{node.lineno}: import of {imported} inside a function or class"
        if module != "featperm":
            assert _rank(imported) <= own, (f"{path}:{node.lineno}: {module} (layer {own}) imports "
                                            f"{imported} (layer {_rank(imported)}), a layer above it")


def _fresh(code: str):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_importing_keys_loads_neither_the_compiled_library_nor_the_ops():
    result = _fresh("import sys, featperm, featperm.keys, featperm.attacks, featperm.reference\n"
                    "loaded = sorted(m for m in sys.modules if m.startswith('featperm'))\n"
                    "assert 'featperm._C' not in loaded and not any(m.startswith('featperm.ops') for m in loaded), loaded\n"
                    "print('ok')")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_key_tools_work_where_the_extension_is_not_built(tmp_path):
    # A finder that refuses featperm._C stands in for a machine without the build.
    code = f"""
import importlib.abc, sys
class NoExtension(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "featperm._C":
            raise ImportError("featperm._C is not built here")
sys.meta_path.insert(0, NoExtension())
import featperm
from featperm import keys
secret = keys.generate_secret()
key = featperm.BitKey.derive(secret, "features")
keys.save_key({str(tmp_path / 'k.fpk')!r}, key)
assert keys.load_key({str(tmp_path / 'k.fpk')!r}) == key
try:
    featperm.shuffle_bits
except featperm.errors.LibraryNotBuiltError as err:
    print("ops refused:", "make build" in str(err))
from featperm import cli
print("cli keys new:", cli.main(["keys", "new", "--kind", "secret", "--out", {str(tmp_path / 's.fpk')!r}]))
print("cli info:", cli.main(["info"]))
"""
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "ops refused: True" and lines[-2:] == ["cli keys new: 0", "cli info: 2"], result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("featperm: error: featperm's compiled library")


def test_first_use_of_an_op_name_loads_the_ops():
    result = _fresh("import sys, torch, featperm\n"
                    "assert 'featperm._C' not in sys.modules\n"
                    "y = featperm.shuffle_bits(torch.ones(2), featperm.BitKey(list(range(32))))\n"
                    "assert 'featperm._C' in sys.modules and torch.ops.featperm.shuffle_bits is not None\n"
                    "print('ok')")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
