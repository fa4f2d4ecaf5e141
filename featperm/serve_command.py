"""``featperm serve`` (the encrypted feature API) and ``featperm extract`` (its command-line client).

    featperm serve --port 8000                                   # built-in model, sealed mode
    featperm serve --model resnet50 --weights r50.pth --mode cascade --device cuda
    featperm serve --model extractor.pt --input-size 256 128 --workers 4 --port 8000
    featperm extract --url http://127.0.0.1:8000 --out features.npz photos/

The server loads only when the command runs (it needs ``fastapi`` and ``uvicorn``: ``pip install
featperm[serve]``). The protocol, the key derivation and deployment are in ``docs/serving.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import socket
import ssl
import sys
from typing import Any, List, Optional, Tuple

from featperm._arguments import positive_int

__all__ = ["add_serve_arguments", "run_serve", "add_extract_arguments", "run_extract", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {value}")
    return value


def _load_serving() -> Tuple[Any, Any, Any, Any]:
    """(torch, featperm.serve.app, featperm.serve.models, uvicorn), or ImportError naming the fix."""
    try:
        uvicorn = importlib.import_module("uvicorn")
        app = importlib.import_module("featperm.serve.app")
    except ImportError as err:
        raise ImportError(f"featperm serve needs fastapi and uvicorn ({err}): pip install 'featperm[serve]'") from None
    return importlib.import_module("torch"), app, importlib.import_module("featperm.serve.models"), uvicorn


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``featperm serve``."""
    parser.description = (
        "Serve a feature extractor over HTTP: POST /v1/features (a PNG/JPEG image or an .npy batch, "
        "header X-Featperm-Key = base64 of 32 fresh random bytes) answers with the features encrypted "
        "under that key; GET /v1/info describes the model. Protocol, key derivation and deployment: "
        "docs/serving.md."
    )
    parser.add_argument(
        "--model",
        default="builtin",
        metavar="M",
        help="builtin (default: the re-ID extractor of the built-in synthetic pedestrians, 64x32 images; "
        "trained on first use, about 1.5 minutes on one CPU core, then cached in $FEATPERM_CACHE), a "
        "torchvision architecture (with --weights), or a TorchScript file (takes float images in [0, 1])",
    )
    parser.add_argument("--weights", metavar="W", help="state dict of a torchvision --model (its head is removed)")
    parser.add_argument(
        "--input-size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="image size the model serves (default 224 224; the built-in model: 64 32)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: a free one, printed)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--mode",
        choices=("sealed", "cascade", "shufflebits", "plain"),
        default="sealed",
        help="sealed (default: ChaCha20-Poly1305 under the request's key), cascade (ShuffleBits then "
        "sealed), shufflebits (obfuscation only), plain (no protection)",
    )
    parser.add_argument("--max-batch", type=positive_int, default=64, metavar="N", help="images per request (64)")
    parser.add_argument(
        "--max-body-bytes", type=positive_int, default=16 * 1024 * 1024, metavar="B", help="request size (16 MiB)"
    )
    parser.add_argument(
        "--batch-window-ms",
        type=_non_negative_float,
        default=2.0,
        metavar="MS",
        help="wait this long for concurrent requests to share a forward pass (default 2; 0: no batching)",
    )
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="uvicorn worker processes, each with the model (default 1)"
    )
    parser.add_argument("--ssl-certfile", metavar="PEM", help="serve HTTPS with this certificate (and --ssl-keyfile)")
    parser.add_argument("--ssl-keyfile", metavar="PEM", help="private key of --ssl-certfile")
    parser.add_argument(
        "--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info", help="(info)"
    )


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio disables Nagle's algorithm only on sockets that say they are
    # TCP. With proto 0 the body of a response waits for the ACK of its headers (~40 ms of delayed
    # ACK per request on a keep-alive connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def run_serve(args: argparse.Namespace) -> int:
    """Load the model, then serve until interrupted (Ctrl-C). Prints the URL once listening."""
    torch, app_module, models, uvicorn = _load_serving()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"serve: --device {args.device} but no CUDA device is available")
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise ValueError("serve: --ssl-certfile and --ssl-keyfile go together")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = app_module.ServeConfig(
        mode=args.mode,
        max_batch=args.max_batch,
        max_body_bytes=args.max_body_bytes,
        batch_window_ms=args.batch_window_ms,
    )

    def progress(epoch: int, epochs: int) -> None:
        print(f"featperm serve: training the built-in extractor (once), epoch {epoch}/{epochs}", file=sys.stderr)

    # Loaded here also with --workers: the built-in model is trained and cached once, not per worker.
    model = models.load_model(
        args.model, weights=args.weights, input_size=args.input_size, device=args.device, progress=progress
    )
    ssl_options = {"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile}
    scheme = "https" if args.ssl_certfile else "http"
    summary = (
        f"model {model.name} ({model.description}), input {model.input_size[0]}x{model.input_size[1]}, "
        f"{model.feature_dim} features, mode {args.mode}, device {args.device}"
    )
    if args.workers > 1:
        options = {
            "model": args.model,
            "weights": args.weights,
            "input_size": args.input_size,
            "device": args.device,
            "threads": args.threads,
            **{name: getattr(config, name) for name in ("mode", "max_batch", "max_body_bytes", "batch_window_ms")},
        }
        os.environ[app_module.ENVIRONMENT_VARIABLE] = json.dumps(options)
        worker_config = uvicorn.Config(
            "featperm.serve.app:app_from_environment",
            factory=True,
            workers=args.workers,
            log_level=args.log_level,
            **ssl_options,
        )
        # Our own listening socket, not uvicorn.run's: uvicorn 0.54 binds it with proto 0, which
        # leaves Nagle's algorithm on in every worker (Kludex/uvicorn#3149).
        sock = _listening_socket(args.host, args.port)
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        print(f"featperm serve: {_url(scheme, args.host, port)} ({args.workers} workers; {summary})", flush=True)
        try:
            importlib.import_module("uvicorn.supervisors").Multiprocess(worker_config, sockets=[sock]).run()
        finally:
            sock.close()
        return 0
    app = app_module.create_app(model, config)
    sock = _listening_socket(args.host, args.port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, **ssl_options))
    print(f"featperm serve: {_url(scheme, args.host, port)} ({summary})", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


# -- extract -------------------------------------------------------------------------------------


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``featperm extract``."""
    parser.description = (
        "Send images to a featperm serve server (a fresh key per request), decrypt the answers here, "
        "and write features (N, D) float32 and names (N,) to an .npz file. Images are resized to the "
        "server's input size (bilinear) when they differ."
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files, or folders of them (recursive)")
    parser.add_argument("--url", required=True, help="the featperm serve server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="F.npz", help="features file to write")
    parser.add_argument(
        "--batch", type=positive_int, metavar="N", help="images per request (default: the server's max)"
    )
    parser.add_argument(
        "--allow-unencrypted",
        action="store_true",
        help="accept a server in plain or shufflebits mode (refused by default)",
    )
    parser.add_argument("--ca-file", metavar="PEM", help="CA certificate to trust for an https --url")
    parser.add_argument("--timeout", type=positive_int, default=120, metavar="S", help="seconds per request (120)")


def image_files(inputs: List[str]) -> List[pathlib.Path]:
    """The image files named by ``inputs``: files as given, folders searched recursively for
    .png/.jpg/.jpeg (sorted). ValueError for a missing path or when no image is found."""
    files: List[pathlib.Path] = []
    for text in inputs:
        path = pathlib.Path(text)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"extract: {text} is neither a file nor a folder")
    if not files:
        raise ValueError(f"extract: no {'/'.join(IMAGE_SUFFIXES)} images in {', '.join(inputs)}")
    return files


def _read_image(path: pathlib.Path, size: Tuple[int, int]) -> Tuple[Any, bool]:
    """(uint8 (3, H, W) array of the image at ``size`` (H, W), was it resized?)."""
    image_module = importlib.import_module("PIL.Image")
    np = importlib.import_module("numpy")
    try:
        with image_module.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError, image_module.DecompressionBombError) as err:
        raise ValueError(f"extract: cannot read {path} as an image: {err}") from None
    h, w = size
    resized = rgb.size != (w, h)
    if resized:
        rgb = rgb.resize((w, h), image_module.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1), resized


def run_extract(args: argparse.Namespace) -> int:
    """Send the images to the server in batches (a fresh key per request), decrypt the answers
    here, write ``features`` (N, D) float32 and ``names`` (N,) to ``--out`` (.npz)."""
    np = importlib.import_module("numpy")
    torch = importlib.import_module("torch")
    client_module = importlib.import_module("featperm.serve.client")
    files = image_files(args.images)
    context: Optional[ssl.SSLContext] = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    client = client_module.Client(
        args.url, timeout=args.timeout, accept_unencrypted=args.allow_unencrypted, ssl_context=context
    )
    info = client.info()
    size = (int(info["input_size"][0]), int(info["input_size"][1]))
    batch = min(args.batch or int(info["max_batch"]), int(info["max_batch"]))
    # Keep every request under the server's body limit (the .npy header takes < 1 KiB).
    fits = (int(info["max_body_bytes"]) - 1024) // (3 * size[0] * size[1])
    if fits < 1:
        raise ValueError(
            f"extract: one {size[0]}x{size[1]} image does not fit the server's body limit "
            f"of {info['max_body_bytes']} bytes"
        )
    batch = min(batch, fits)
    parts = []
    resized = 0
    for start in range(0, len(files), batch):
        arrays = []
        for path in files[start : start + batch]:
            array, was_resized = _read_image(path, size)
            arrays.append(array)
            resized += was_resized
        parts.append(client.features(np.stack(arrays)))
    features = torch.cat(parts).numpy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    names = np.array([str(p) for p in files])
    with open(args.out, "wb") as fh:  # np.savez on a path would append .npz to other suffixes
        np.savez(fh, features=features, names=names)
    note = f"; {resized} resized to {size[0]}x{size[1]}" if resized else ""
    print(
        f"wrote {features.shape[0]} feature vectors of {features.shape[1]} float32 to {args.out} "
        f"(server mode {info['mode']}, model {info['model']}{note})"
    )
    return 0
