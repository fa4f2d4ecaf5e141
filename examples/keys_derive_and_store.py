"""Derive every key from one master secret with HKDF-SHA256, and store keys in key files.

Shows: a 256-bit master secret from the OS CSPRNG written to an owner-only key file; a BitKey and
a BlockKey per label (purpose) and per context (e.g. a layer or a request id), derived
deterministically (same inputs, same key, also after reloading the secret); domain separation
(another label, context, kind or shape gives an unrelated key); per-request keys with
RequestKeys (a public 25-byte key id lets the secret holder re-derive the key); key files that
refuse a corrupted byte or a key of another kind. Standard library + torch only; under a second.

    python examples/keys_derive_and_store.py [--dir DIR]     (default: a temporary folder)
"""

import argparse
import os
import stat
import tempfile

from featperm import keys
from featperm.keys import BitKey, BlockKey, KeyFileError, RequestKeys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to write the key files (default: a temporary folder)")
    folder = parser.parse_args().dir or tempfile.mkdtemp(prefix="featperm-keys-")
    path = {name: os.path.join(folder, name + ".fpk") for name in ("master", "features", "blocks", "corrupted")}

    secret = keys.generate_secret()  # 32 bytes from secrets.token_bytes; never print it
    keys.save_secret(path["master"], secret, overwrite=True)
    mode = oct(stat.S_IMODE(os.stat(path["master"]).st_mode))
    print(f"master secret: {len(secret) * 8} bits in {path['master']} (mode {mode})")

    reloaded = keys.load_secret(path["master"])
    features = BitKey.derive(secret, "features", context="model-v2")
    blocks = BlockKey.derive(secret, "blocks", context="layer1", channels=16, block_size=2)
    print(f"derived {features!r} and {blocks!r} (reprs show no key material)")
    same_bit = BitKey.derive(reloaded, "features", "model-v2") == features
    same_block = BlockKey.derive(reloaded, "blocks", "layer1", channels=16, block_size=2) == blocks
    print(f"deterministic: same inputs give the same BitKey: {same_bit}; the same BlockKey: {same_block}")

    others = {
        "another label": BitKey.derive(secret, "attributes", "model-v2"),
        "another context": BitKey.derive(secret, "features", "model-v3"),
        "another secret": BitKey.derive(keys.generate_secret(), "features", "model-v2"),
        "label/context split elsewhere": BitKey.derive(secret, "feature", "smodel-v2"),
    }
    for what, other in others.items():
        agree = int((other.permutation() == features.permutation()).sum())
        print(f"domain separation, {what}: equal {other == features}, {agree}/32 positions agree")
    generic = keys.derive_permutation(secret, "features", "model-v2", n=32)  # same n, kind 'permutation'
    print(f"domain separation, another kind (permutation of 32): equal {generic == features.permutation().tolist()}")
    wider = BlockKey.derive(secret, "blocks", "layer1", channels=4, block_size=4)  # also 64 positions
    same = wider.permutation().tolist() == blocks.permutation().tolist()
    print(f"domain separation, another shape (4 channels, block 4): equal {same}")

    server = RequestKeys(secret, "responses")
    key_id, request_key = server.new_bit_key(bits=32, samples=4)  # one key per sample of a request
    _, second_key = server.new_bit_key(bits=32, samples=4)
    client = RequestKeys(keys.load_secret(path["master"]), "responses")  # e.g. on the client
    rederived = client.key_for(key_id.hex()) == request_key
    print(f"per request: key id {len(key_id)} public bytes; re-derived from it: {rederived}")
    print(f"per request: two requests share a key: {second_key == request_key}")

    keys.save_key(path["features"], features, overwrite=True)
    keys.save_key(path["blocks"], blocks, overwrite=True)
    bit_ok = keys.load_key(path["features"]) == features
    block_ok = keys.load_key(path["blocks"], expected_kind=BlockKey) == blocks
    print(f"key file round trip: BitKey equal {bit_ok}, BlockKey equal {block_ok}")
    with open(path["features"], "rb") as fh:
        data = bytearray(fh.read())
    data[30] ^= 1  # one bit of the payload
    with open(path["corrupted"], "wb") as fh:
        fh.write(data)
    for what, name, kind in (("wrong kind", "features", "BlockKey"), ("corrupted file", "corrupted", None)):
        try:
            keys.load_key(path[name], expected_kind=kind)
            print(f"{what}: loaded (unexpected)")
        except KeyFileError as error:
            print(f"{what} refused: KeyFileError: {error}")


if __name__ == "__main__":
    main()
