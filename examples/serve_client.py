"""Per-request sealed features through `featperm serve` and its client: what the network sees, and what
only the client can read.

    python examples/serve_client.py                        # starts a server in this process
    python examples/serve_client.py --url http://127.0.0.1:8000   # or talks to a running one

Without --url it starts the server (built-in re-ID extractor, sealed mode) on a free port of
127.0.0.1 in a background thread; the built-in extractor is trained and cached on first use
(about 1.5 minutes on one CPU core). --model takes a TorchScript file or anything `featperm
serve --model` takes. The images are built-in synthetic pedestrians (64x32, no download).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import numpy as np
import torch

import featperm
from featperm.datasets.pedestrians import synthetic_pedestrians
from featperm.errors import AuthenticationError
from featperm.serve.client import Client
from featperm.serve.protocol import decode_features, new_key


def start_server(model_name: str, mode: str) -> tuple[str, object]:
    """Serve ``model_name`` with uvicorn in a daemon thread on a free port; returns (url, model)."""
    import uvicorn

    from featperm.serve.app import ServeConfig, create_app
    from featperm.serve.models import BUILTIN_INPUT_SIZE, load_model

    size = None if model_name == "builtin" else BUILTIN_INPUT_SIZE
    model = load_model(model_name, input_size=size)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio then turns Nagle off
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(model, ServeConfig(mode=mode)), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running featperm serve server (default: start one here)")
    parser.add_argument("--model", default="builtin", help="model of the server started here (default builtin)")
    parser.add_argument("--mode", default="sealed", choices=("sealed", "cascade"), help="(default sealed)")
    parser.add_argument("--images", type=int, default=4, help="how many images to send (default 4)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = None
    url = args.url
    if url is None:
        url, model = start_server(args.model, args.mode)
    client = Client(url)
    info = client.info()
    h, w = info["input_size"]
    print(f"server {url}: model {info['model']}, {info['feature_size']} features per image, mode {info['mode']}")
    people = synthetic_pedestrians(max(1, args.images), 1, domain="campus", seed=1, height=h, width=w)
    assert people.images is not None
    images = people.images[: args.images]

    keys = []
    for i in range(images.shape[0]):
        key = new_key()  # 32 bytes from secrets.token_bytes, fresh for each request
        keys.append(key)
        response = client.request(images[i : i + 1], key)
        ciphertext = response.body[-4 * info["feature_size"] - 16 : -16]  # the container ends with a 16-byte tag
        words = np.frombuffer(ciphertext, dtype="<f4")
        features = decode_features(response.body, response.mode, key, response.shape)
        print(f"\nrequest {i}: key {key[:4].hex()}... (sent in X-Featperm-Key; use HTTPS outside loopback)")
        print(
            f"  the network sees {len(response.body)} bytes: a public header (dtype, shape {response.shape}), "
            f"a nonce, {len(ciphertext)} bytes of ciphertext {ciphertext[:12].hex()}..., a tag"
        )
        print(f"  the ciphertext read as float32: {[f'{v:.3g}' for v in words[:4].tolist()]} (random bits)")
        print(f"  the client decrypts: {[f'{v:.4f}' for v in features[0, :4].tolist()]}")
        if model is not None:
            exact = torch.equal(features, model.features(images[i : i + 1]))
            print(f"  decrypted exactly (bit for bit): {exact}")
        if i > 0:
            try:
                featperm.open_sealed(response.body, keys[i - 1])
                print("  another request's key: opened (this must not happen)")
            except AuthenticationError:
                print("  another request's key: AuthenticationError (nothing decrypted)")
    again = client.request(images[:1], keys[0])
    first = client.request(images[:1], keys[0])
    print(f"\nthe same image and key twice give different ciphertexts (fresh nonces): {again.body != first.body}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
