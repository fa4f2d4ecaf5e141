"""The README's main command, `python examples/demo.py`, keeps working."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_and_decrypts_exactly():
    # The checkout first on the path, as for the tests themselves (an installed featperm also works).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "demo.py")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert "decrypted exactly (bit for bit): True" in result.stdout
    assert "opened exactly: True" in result.stdout
    assert "AuthenticationError" in result.stdout
