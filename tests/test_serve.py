"""`featperm serve` on 127.0.0.1: every mode round-trips exactly, no plaintext leaves the server in an
encrypted mode (every response is intercepted), bad input gets a 4xx JSON error naming the problem,
the batcher batches, and the CLI (`serve`, `extract`) and the example work end to end.

A tiny TorchScript model stands in for a real extractor so that the whole file runs in seconds.
"""

import asyncio
import base64
import contextlib
import http.client
import io
import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
Image = pytest.importorskip("PIL.Image")

import featperm  # noqa: E402 (after the importorskip)
from featperm import cli  # noqa: E402 (after the importorskip)
from featperm.crypto import open_shuffled  # noqa: E402 (after the importorskip)
from featperm.errors import AuthenticationError  # noqa: E402 (after the importorskip)
from featperm.serve import app as serve_app  # noqa: E402 (after the importorskip)
from featperm.serve import protocol  # noqa: E402 (after the importorskip)
from featperm.serve.batching import MicroBatcher  # noqa: E402 (after the importorskip)
from featperm.serve.client import Client, ServerError  # noqa: E402 (after the importorskip)
from featperm.serve.models import load_model  # noqa: E402 (after the importorskip)

torch.set_num_threads(1)  # the machine is shared; the server threads run in this process too

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = (16, 8)  # H, W of the test images
FEATURES = 32


# -- fixtures ------------------------------------------------------------------------------------


class TinyExtractor(torch.nn.Module):
    """conv -> tanh -> 2x2 average pool: 32 features per image, almost never exactly 0."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(torch.tanh(self.conv(x) + 0.1)).flatten(1)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    torch.jit.save(torch.jit.script(TinyExtractor().eval()), str(path))
    return path


@pytest.fixture(scope="module")
def reference(model_file):
    """The model's own output, computed here (not by the server)."""
    scripted = torch.jit.load(str(model_file)).eval()

    def features(images):
        with torch.inference_mode():
            return scripted(torch.as_tensor(images).to(torch.float32) / 255.0)

    return features


@pytest.fixture(scope="module")
def served(model_file):
    return load_model(str(model_file), input_size=SIZE)


def random_images(n, seed, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, *size), dtype=torch.uint8, generator=g)


def png_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


class ResponseRecorder:
    """ASGI middleware that keeps every byte the application sends: headers and bodies."""

    def __init__(self, app):
        self.app = app
        self.responses = []  # one dict per response: status, headers (bytes), body (bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        record = {"status": None, "headers": b"", "body": b""}
        self.responses.append(record)

        async def recording_send(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                record["headers"] = b"\r\n".join(k + b": " + v for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                record["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, recording_send)


@contextlib.contextmanager
def running(app, **config):
    """Serve ``app`` with uvicorn in a thread on a free port of 127.0.0.1; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio then turns Nagle off
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


class Server:
    """A running test server: its url, port, the app and (when recording) the recorder."""

    def __init__(self, port, app, recorder):
        self.url, self.port, self.app, self.recorder = f"http://127.0.0.1:{port}", port, app, recorder


@contextlib.contextmanager
def serving(served, mode="sealed", record=False, **options):
    app = serve_app.create_app(served, serve_app.ServeConfig(mode=mode, **options))
    recorder = ResponseRecorder(app) if record else None
    with running(recorder or app) as port:
        yield Server(port, app, recorder)


def raw_post(port, body, headers, path="/v1/features", method="POST"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def key_header(key=None):
    return {"X-Featperm-Key": base64.b64encode(key or secrets.token_bytes(32)).decode()}


# -- every mode round-trips exactly --------------------------------------------------------------


@pytest.mark.parametrize("mode", protocol.MODES)
def test_every_mode_round_trips_exactly(served, reference, mode):
    images = random_images(5, seed=1)
    encrypted = mode in protocol.ENCRYPTED_MODES
    with serving(served, mode) as server:
        url = server.url
        client = Client(url, accept_unencrypted=not encrypted)
        info = client.info()
        assert info["mode"] == mode and info["modes"] == list(protocol.MODES)
        assert info["input_size"] == list(SIZE) and info["feature_size"] == FEATURES and info["dtype"] == "float32"
        batch = client.features(images)
        assert batch.dtype == torch.float32 and batch.shape == (5, FEATURES)
        assert torch.equal(batch, reference(images))  # bit for bit
        one = client.features(png_bytes(images[2]))  # a PNG is lossless: the same pixels
        assert torch.equal(one, reference(images[2:3]))
        jpeg = io.BytesIO()
        Image.fromarray(images[3].permute(1, 2, 0).numpy()).save(jpeg, format="JPEG", quality=90)
        decoded = torch.from_numpy(np.asarray(Image.open(io.BytesIO(jpeg.getvalue())).convert("RGB")).copy())
        lossy = client.features(jpeg.getvalue())  # the model sees the decoded JPEG's pixels
        assert torch.equal(lossy, reference(decoded.permute(2, 0, 1).contiguous()[None]))
        if not encrypted:  # a default client refuses what is not encryption
            with pytest.raises(ValueError, match="not encryption"):
                Client(url).features(images)


def test_the_documented_contract_opens_the_responses_without_the_client(served, reference):
    """sealed: featperm.open_sealed(body, K); cascade: B and S derived as docs/serving.md says,
    S recomputed here with an independent HKDF (the cryptography package)."""
    hkdf = pytest.importorskip("cryptography.hazmat.primitives.kdf.hkdf")
    hashes = pytest.importorskip("cryptography.hazmat.primitives.hashes")
    images = random_images(3, seed=2)
    expected = reference(images)
    key = secrets.token_bytes(32)
    with serving(served, "sealed") as server:
        url = server.url
        response = Client(url).request(images, key)
        assert response.mode == "sealed" and response.shape == (3, FEATURES)
        assert torch.equal(featperm.open_sealed(response.body, key), expected)
        with pytest.raises(AuthenticationError):
            featperm.open_sealed(response.body, secrets.token_bytes(32))
    with serving(served, "cascade") as server:
        url = server.url
        response = Client(url).request(images, key)
        lp = lambda b: len(b).to_bytes(4, "big") + b
        info = (b"featperm/v1" + lp(b"AEADKey") + lp((32).to_bytes(8, "big")) + lp(b"featperm/serve/v1/seal-key")
                + lp(b"") + (0).to_bytes(4, "big"))
        seal_key = hkdf.HKDF(algorithm=hashes.SHA256(), length=32, salt=b"featperm/v1", info=info).derive(key)
        bit_key = featperm.BitKey.derive(key, "featperm/serve/v1/bit-key", bits=32)
        assert (bit_key, seal_key) == protocol.cascade_keys(key)
        assert torch.equal(open_shuffled(response.body, bit_key, seal_key), expected)
        # sealed under S, not K: the two layers use independent keys
        with pytest.raises(AuthenticationError):
            featperm.open_sealed(response.body, key)
        inner = featperm.open_sealed(response.body, seal_key)
        assert not torch.equal(inner, expected) and torch.equal(featperm.unshuffle_bits(inner, bit_key), expected)


def test_fresh_nonce_per_response(served):
    images = random_images(1, seed=3)
    key = secrets.token_bytes(32)
    with serving(served, "sealed") as server:
        url = server.url
        client = Client(url)
        first, second = client.request(images, key), client.request(images, key)
    assert first.body != second.body  # same key and features, different nonce and ciphertext


# -- interception: no plaintext in any response of an encrypted mode ----------------------------


def leaks(plain, recorded):
    """Where the plaintext features show in the recorded responses, or [] when nowhere: their
    bytes, any 8-byte window of them, or a body that reads as the features at some offset."""
    raw = plain.numpy().tobytes()
    windows = {raw[i:i + 8] for i in range(0, len(raw) - 7, 4)}
    found = []
    for number, record in enumerate(recorded):
        for part in (record["headers"], record["body"]):
            if raw in part:
                found.append((number, "all plaintext bytes"))
            elif any(window in part for window in windows):
                found.append((number, "an 8-byte piece of the plaintext"))
        body = record["body"]
        for offset in range(4):
            words = np.frombuffer(body[offset:offset + (len(body) - offset) // 4 * 4], dtype="<f4")
            if words.size >= plain.numel():
                for start in range(0, words.size - plain.numel() + 1):
                    if np.allclose(words[start:start + plain.numel()], plain.numpy().ravel(), rtol=1e-3):
                        found.append((number, f"readable as the features at byte {offset + 4 * start}"))
                        break
    return found


def test_interception_finds_no_plaintext_in_encrypted_modes_and_finds_it_in_plain(served, reference):
    images = random_images(4, seed=4)
    plain = reference(images)
    per_image = [reference(images[i:i + 1]) for i in range(4)]
    for mode in protocol.MODES:
        with serving(served, mode, record=True) as server:
            client = Client(server.url, accept_unencrypted=True)
            client.info()
            # Requests as a client sends them; the responses are opened only after the check.
            responses = [client.request(images)] + [client.request(png_bytes(images[i])) for i in range(4)]
            raw_post(server.port, b"junk", {"Content-Type": "image/png", **key_header()})  # an error response
        recorded = server.recorder.responses
        assert [r["status"] for r in recorded] == [200] * 6 + [400]  # every response was seen
        found = leaks(plain, recorded) + [hit for f in per_image for hit in leaks(f, recorded)]
        if mode in protocol.ENCRYPTED_MODES:
            assert found == [], f"{mode}: plaintext features left the server: {found}"
        elif mode == "plain":
            assert found, "the interception check must see plain features (else it could not fail)"
        else:  # shufflebits: obfuscated, not readable as the features
            assert not any("readable" in what or "all plaintext" in what for _, what in found), found
        # and the client opens what the network saw
        opened = [protocol.decode_features(r.body, r.mode, r.key, r.shape) for r in responses]
        assert torch.equal(opened[0], plain)
        assert all(torch.equal(opened[1 + i], per_image[i]) for i in range(4))


# -- bad input: 4xx JSON naming the problem, never features ------------------------------------


def _bad_requests():
    good_npy = npy_bytes(random_images(2, seed=5))
    png = png_bytes(random_images(1, seed=6)[0])
    npy_header_end = good_npy.index(b"\n") + 1
    object_array = io.BytesIO()
    np.save(object_array, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    npy = {"Content-Type": "application/x-npy"}
    return [
        ("no key", good_npy, npy, 400, "missing X-Featperm-Key"),
        ("key not base64", good_npy, {**npy, "X-Featperm-Key": "not base64!!"}, 400, "not valid base64"),
        ("key too short", good_npy, {**npy, **key_header(b"k" * 16)}, 400, "exactly 32 bytes, got 16"),
        ("key too long", good_npy, {**npy, "X-Featperm-Key": base64.b64encode(b"k" * 48).decode()}, 400,
         "exactly 32 bytes, got 48"),
        ("no content type", good_npy, key_header(), 415, "is not supported"),
        ("text body", b"hello", {"Content-Type": "text/plain", **key_header()}, 415, "'text/plain' is not supported"),
        ("empty body", b"", {**npy, **key_header()}, 400, "empty body"),
        ("corrupt png", b"\x89PNG\r\n\x1a\n" + os.urandom(200), {"Content-Type": "image/png", **key_header()}, 400,
         "corrupt or unreadable image"),
        ("truncated png", png[: len(png) // 2], {"Content-Type": "image/png", **key_header()}, 400,
         "corrupt or unreadable image"),
        ("not an image", os.urandom(300), {"Content-Type": "image/jpeg", **key_header()}, 400,
         "corrupt or unreadable image"),
        ("wrong image size", png_bytes(random_images(1, 7, size=(20, 8))[0]),
         {"Content-Type": "image/png", **key_header()}, 422, "image is 20x8 (HxW); this model takes 16x8"),
        ("not npy", os.urandom(300), {**npy, **key_header()}, 400, "not an .npy file"),
        ("npy float32", npy_bytes(np.zeros((1, 3, 16, 8), np.float32)), {**npy, **key_header()}, 422,
         "dtype must be uint8, got float32"),
        ("npy object (pickle)", object_array.getvalue(), {**npy, **key_header()}, 422, "dtype must be uint8"),
        ("npy wrong shape", npy_bytes(np.zeros((2, 16, 8, 3), np.uint8)), {**npy, **key_header()}, 422,
         "shape must be (N, 3, 16, 8), got (2, 16, 8, 3)"),
        ("npy 3-D", npy_bytes(np.zeros((3, 16, 8), np.uint8)), {**npy, **key_header()}, 422, "shape must be"),
        ("npy no images", npy_bytes(np.zeros((0, 3, 16, 8), np.uint8)), {**npy, **key_header()}, 422, "N = 0"),
        ("npy truncated", good_npy[:-10], {**npy, **key_header()}, 400, "npy data is"),
        ("too many images", npy_bytes(np.zeros((5, 3, 16, 8), np.uint8)), {**npy, **key_header()}, 413,
         "5 images in one request; at most 4 (max_batch)"),
        ("npy forged huge shape", good_npy[:npy_header_end].replace(b"(2, 3,", b"(9, 3,") + good_npy[npy_header_end:],
         {**npy, **key_header()}, 413, "9 images in one request"),
        ("oversized body", b"\0" * 5000, {**npy, **key_header()}, 413, "exceeds the limit of 4096 bytes"),
    ]


@pytest.mark.parametrize("name,body,headers,status,message", _bad_requests(), ids=[c[0] for c in _bad_requests()])
def test_bad_input_gets_4xx_json_naming_the_problem(served, name, body, headers, status, message):
    with serving(served, "sealed", max_batch=4, max_body_bytes=4096) as server:
        port = server.port
        got, response_headers, answer = raw_post(port, body, headers)
    assert got == status, (got, answer)
    assert response_headers["content-type"] == "application/json"
    error = json.loads(answer)
    assert list(error) == ["error"] and message in error["error"], error
    assert "x-featperm-shape" not in response_headers and "x-featperm-mode" not in response_headers


def test_oversized_streamed_body_is_refused_while_reading(served):
    """No Content-Length (chunked upload): the limit is enforced as the body arrives."""
    def chunks():
        for _ in range(100):
            yield b"\0" * 1024
    with serving(served, "sealed", max_body_bytes=4096) as server:
        port = server.port
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/v1/features", body=chunks(), encode_chunked=True,
                           headers={"Content-Type": "application/x-npy", "Transfer-Encoding": "chunked",
                                    **key_header()})
        response = connection.getresponse()
        status, answer = response.status, response.read()
        connection.close()
    assert status == 413 and "exceeds the limit of 4096 bytes" in json.loads(answer)["error"]


def test_plain_mode_needs_no_key_but_checks_a_given_one(served, reference):
    images = random_images(1, seed=8)
    with serving(served, "plain") as server:
        port = server.port
        status, headers, body = raw_post(port, npy_bytes(images), {"Content-Type": "application/x-npy"})
        assert status == 200 and headers["x-featperm-shape"] == f"1,{FEATURES}"
        assert torch.equal(protocol.decode_features(body, "plain", None, (1, FEATURES)), reference(images))
        status, _, body = raw_post(port, npy_bytes(images),
                                   {"Content-Type": "application/x-npy", "X-Featperm-Key": "%%%"})
        assert status == 400 and "base64" in json.loads(body)["error"]


def test_unknown_route_and_method_are_json_errors(served):
    with serving(served) as server:
        port = server.port
        status, _, body = raw_post(port, None, {}, path="/v1/nothing", method="GET")
        assert status == 404 and "error" in json.loads(body)
        status, _, body = raw_post(port, None, {}, path="/v1/features", method="GET")
        assert status == 405 and "error" in json.loads(body)


def test_client_raises_server_error_with_the_message(served):
    with serving(served, max_batch=2) as server:
        url = server.url
        with pytest.raises(ServerError, match=r"413.*at most 2") as caught:
            Client(url).features(random_images(3, seed=9))
        assert caught.value.status == 413


def test_parse_key():
    key = secrets.token_bytes(32)
    assert protocol.parse_key(protocol.format_key(key)) == key
    for bad, fragment in [(None, "missing"), ("", "missing"), ("####", "base64"), ("é", "base64"),
                          (base64.b64encode(b"x" * 31).decode(), "got 31"),
                          (base64.b64encode(key).decode().rstrip("="), "base64")]:
        with pytest.raises(ValueError, match=fragment):
            protocol.parse_key(bad)


# -- batching ------------------------------------------------------------------------------------


def test_micro_batcher_batches_concurrent_requests_and_splits_results():
    calls = []

    def forward(images):
        calls.append(int(images.shape[0]))
        time.sleep(0.02)
        return images.to(torch.float32).flatten(1)

    async def scenario():
        batcher = MicroBatcher(forward, max_batch=6, window_ms=200)
        await batcher.start()
        try:
            started = time.monotonic()
            alone = await batcher.submit(torch.full((1, 3, 1, 1), 7, dtype=torch.uint8), lambda f: f.clone())
            lone_seconds = time.monotonic() - started
            with batcher.arriving():  # a request on its way keeps the window open
                first = asyncio.ensure_future(batcher.submit(torch.full((2, 3, 1, 1), 1, dtype=torch.uint8),
                                                             lambda f: f.clone()))
                await asyncio.sleep(0.01)
                others = [asyncio.ensure_future(batcher.submit(torch.full((n, 3, 1, 1), v, dtype=torch.uint8),
                                                               lambda f: f.clone()))
                          for n, v in ((1, 2), (3, 3), (2, 4))]
            results = await asyncio.gather(first, *others)
            return alone, lone_seconds, results, batcher.stats
        finally:
            await batcher.stop()

    alone, lone_seconds, results, stats = asyncio.run(scenario())
    assert torch.equal(alone, torch.full((1, 3), 7.0))
    assert lone_seconds < 0.15  # no request was on its way: it did not wait for the 200 ms window
    for result, (n, v) in zip(results, ((2, 1), (1, 2), (3, 3), (2, 4))):
        assert torch.equal(result, torch.full((n, 3), float(v)))  # each request gets its own rows
    # 1 alone, then 2 + 1 + 3 = 6 = max_batch in one pass, then the last 2 in the next
    assert calls == [1, 6, 2] and (stats.batches, stats.requests, stats.images) == (3, 5, 9)


def test_concurrent_clients_share_forward_passes(served, reference):
    images = random_images(16, seed=10)
    with serving(served, "sealed", batch_window_ms=50) as server:
        url = server.url
        client = Client(url)
        results = [None] * 16
        def one(i):
            results[i] = client.features(images[i:i + 1])
        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = server.app.state.batcher.stats
    for i in range(16):
        # Batched convolutions may round differently from a batch of one: close, not bit-equal.
        assert torch.allclose(results[i], reference(images[i:i + 1]), rtol=1e-5, atol=1e-6)
    assert stats.requests == 16 and stats.batches < 16, stats


# -- models --------------------------------------------------------------------------------------


def test_torchvision_model_with_weights_serves_pooled_features(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None).eval()
    weights = tmp_path / "r18.pth"
    torch.save(net.state_dict(), weights)
    model = load_model("resnet18", weights=str(weights), input_size=(32, 32))
    assert model.feature_dim == 512 and model.input_size == (32, 32)
    images = random_images(2, seed=11, size=(32, 32))
    net.fc = torch.nn.Identity()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = net((images.float() / 255.0 - mean) / std)
    assert torch.equal(model.features(images), expected)
    with pytest.raises(ValueError, match="not a state dict of torchvision's resnet34"):
        load_model("resnet34", weights=str(weights), input_size=(32, 32))
    with pytest.raises(ValueError, match="needs its weights file"):
        load_model("resnet18")
    with pytest.raises(ValueError, match="neither 'builtin', a TorchScript file"):
        load_model("no_such_net", weights=str(weights))
    with pytest.raises(ValueError, match="takes no weights"):
        load_model("builtin", weights=str(weights))


def test_model_checks_its_images(served):
    with pytest.raises(ValueError, match=r"shape \(N, 3, 16, 8\)"):
        served.features(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        served.features(torch.zeros(1, 3, 16, 8))


# -- TLS -----------------------------------------------------------------------------------------


def test_https(served, reference, tmp_path):
    x509 = pytest.importorskip("cryptography.x509")
    import datetime
    import ipaddress
    import ssl

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(private, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    app = serve_app.create_app(served, serve_app.ServeConfig(mode="sealed"))
    with running(app, ssl_certfile=str(tmp_path / "cert.pem"), ssl_keyfile=str(tmp_path / "key.pem")) as port:
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        images = random_images(2, seed=12)
        features = Client(f"https://127.0.0.1:{port}", ssl_context=context).features(images)
        assert torch.equal(features, reference(images))
        with pytest.raises(OSError):  # an unverified certificate is refused
            Client(f"https://127.0.0.1:{port}").info()


# -- the command line and the example ------------------------------------------------------------


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                OMP_NUM_THREADS="1")


@contextlib.contextmanager
def cli_server(*args):
    process = subprocess.Popen([sys.executable, "-m", "featperm.cli", "serve", "--port", "0", "--threads", "1",
                                "--log-level", "warning", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT))
    try:
        line = process.stdout.readline()
        assert line.startswith("featperm serve: http://127.0.0.1:"), (line, process.stderr.read())
        yield line.split()[2]
    finally:
        process.terminate()
        process.wait(30)


def test_cli_serve_and_extract(model_file, reference, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    images = random_images(5, seed=13)
    names = []
    for i in range(5):
        path = folder / ("sub" if i % 2 else "") / f"img{i}.png"
        path.write_bytes(png_bytes(images[i]))
        names.append(path)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "features.npz"
    with cli_server("--model", str(model_file), "--input-size", "16", "8", "--mode", "cascade") as url:
        result = subprocess.run([sys.executable, "-m", "featperm.cli", "extract", "--url", url, "--out", str(out),
                                 "--batch", "2", str(folder)], capture_output=True, text=True, env=_env(), timeout=120)
        assert result.returncode == 0, result.stderr
        assert "wrote 5 feature vectors of 32 float32" in result.stdout and "mode cascade" in result.stdout
        bad = subprocess.run([sys.executable, "-m", "featperm.cli", "extract", "--url", url, "--out", str(out),
                              str(tmp_path / "missing")], capture_output=True, text=True, env=_env(), timeout=120)
        assert bad.returncode == 2 and "neither a file nor a folder" in bad.stderr
    with np.load(out, allow_pickle=False) as saved:
        order = sorted(names)
        assert list(saved["names"]) == [str(p) for p in order]
        sent = torch.stack([images[int(p.stem[3:])] for p in order])
        # --batch 2: the server ran batches of 2, 2 and 1; the same batches here give the same bits
        expected = torch.cat([reference(sent[i:i + 2]) for i in range(0, 5, 2)])
        assert torch.equal(torch.from_numpy(saved["features"]), expected)


def test_cli_serve_with_two_workers(model_file, reference):
    with cli_server("--model", str(model_file), "--input-size", "16", "8", "--workers", "2") as url:
        client = Client(url)
        deadline = time.monotonic() + 120
        while True:  # the workers load the model after the parent printed the URL
            try:
                client.info()
                break
            except OSError:
                assert time.monotonic() < deadline, "no worker answered"
                time.sleep(0.5)
        images = random_images(3, seed=14)
        for _ in range(4):
            assert torch.equal(client.features(images), reference(images))


@pytest.mark.parametrize("command", ["serve", "extract"])
def test_commands_have_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exited.value.code == 0 and out.startswith(f"usage: featperm {command}")
    if command == "serve":
        assert "trained on first use" in out and "--batch-window-ms" in out and "--max-body-bytes" in out


def test_cli_serve_refuses_bad_options(model_file, capsys):
    assert cli.main(["serve", "--model", str(model_file), "--port", "0", "--ssl-certfile", "cert.pem"]) == 2
    assert "--ssl-certfile and --ssl-keyfile go together" in capsys.readouterr().err
    assert cli.main(["serve", "--model", "missing/model.pt", "--port", "0"]) == 2
    assert "no such TorchScript file: missing/model.pt" in capsys.readouterr().err
    assert cli.main(["serve", "--model", "resnet18", "--port", "0"]) == 2
    assert "needs its weights file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--mode", "rot13"])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_example_serve_client(model_file):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "serve_client.py"), "--model", str(model_file),
                             "--images", "3"], capture_output=True, text=True, env=_env(), timeout=300, cwd=str(ROOT))
    assert result.returncode == 0, result.stderr
    assert "decrypted exactly (bit for bit): True" in result.stdout
    assert "another request's key: AuthenticationError" in result.stdout
