"""featperm demo: encrypt deep features with ShuffleBits, look at the ciphertext, decrypt exactly.

The demo's code is featperm/demo.py (also `featperm demo` and `make demo`); read it there.

    python examples/demo.py
"""

from featperm.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
