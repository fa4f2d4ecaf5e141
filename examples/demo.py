"""featperm demo: what an attacker learns from deep features, what ShuffleBits, the ChaCha20-Poly1305
cascade and a block-shuffle key change, and what the ops cost; one report (Markdown and HTML).

The demo's code is featperm/demo.py (also `featperm demo` and `make demo`); read it there. It takes
the same options, e.g.

    python examples/demo.py                      # writes ./featperm-demo/report.html
    python examples/demo.py --out runs/demo --seed 1
    python examples/demo.py --report-only        # render the report again from the results
"""

import sys

from featperm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["demo", *sys.argv[1:]]))
