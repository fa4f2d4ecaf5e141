"""The HTTP feature API of ``featperm serve`` (FastAPI): ``POST /v1/features``, ``GET /v1/info``.

``POST /v1/features``
    Body: one PNG or JPEG image (``Content-Type: image/png`` / ``image/jpeg``) or a batch as a
    ``.npy`` file of uint8 (N, 3, H, W) (``application/x-npy`` or ``application/octet-stream``),
    (H, W) = the served input size. Header ``X-Featperm-Key``: base64 of 32 random bytes, fresh
    per request (optional in ``plain`` mode only). Answer 200: the features in the served mode
    (:mod:`featperm.serve.protocol`), ``application/octet-stream``, with headers
    ``X-Featperm-Mode`` and ``X-Featperm-Shape`` (``N,D``).
``GET /v1/info``
    JSON: model, input size, feature size, dtype, the modes and the served one, the limits, and
    counters of what was served (forward passes, requests, images: their ratio is the batching).

Every refusal is a JSON ``{"error": "..."}`` naming the problem: 400 (missing or malformed key,
corrupt image, not an npy file), 413 (body over ``max_body_bytes``, checked from
``Content-Length`` before reading and while reading; more than ``max_batch`` images), 415 (an
unsupported content type), 422 (wrong dtype, shape or image size), 404/405 (no such route). No
refusal carries features. The model runs in a worker thread behind a
:class:`~featperm.serve.batching.MicroBatcher`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
from typing import Any, AsyncIterator, Dict, Optional, Tuple

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

try:  # Pillow decodes PNG and JPEG bodies; without it the server takes .npy batches only
    from PIL import Image
except ImportError:  # pragma: no cover - requirements-dev.txt and the serve extra install it
    Image = None  # type: ignore[assignment]

from featperm._version import __version__
from featperm.serve.batching import MicroBatcher
from featperm.serve.models import ServedModel, load_model
from featperm.serve.protocol import (
    BIT_KEY_LABEL,
    KEY_HEADER,
    MODE_HEADER,
    MODES,
    SEAL_KEY_KIND,
    SEAL_KEY_LABEL,
    SHAPE_HEADER,
    encode_features,
    format_shape,
    parse_key,
)

__all__ = [
    "ServeConfig",
    "RequestError",
    "create_app",
    "app_from_environment",
    "decode_images",
    "ENVIRONMENT_VARIABLE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_BATCH_WINDOW_MS",
    "IMAGE_TYPES",
    "NPY_TYPES",
]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BATCH = 64
DEFAULT_BATCH_WINDOW_MS = 2.0
IMAGE_TYPES = ("image/png", "image/jpeg")
NPY_TYPES = ("application/x-npy", "application/octet-stream")
ENVIRONMENT_VARIABLE = "FEATPERM_SERVE_OPTIONS"  # app_from_environment's settings (JSON)

_log = logging.getLogger("featperm.serve")


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """How the API serves a model.

    Attributes:
        mode: one of ``sealed``, ``cascade``, ``shufflebits``, ``plain`` (see
            :mod:`featperm.serve.protocol`).
        max_batch: most images per request, and per forward pass of the batcher.
        max_body_bytes: largest request body accepted.
        batch_window_ms: how long the batcher waits for more requests (0: no batching).
    """

    mode: str = "sealed"
    max_batch: int = DEFAULT_MAX_BATCH
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS

    def __post_init__(self) -> None:
        where = "ServeConfig"
        if self.mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {MODES}, got {self.mode!r}")
        for name in ("max_batch", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}: {name} must be an integer >= 1, got {value!r}")
        window = self.batch_window_ms
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not window >= 0:
            raise ValueError(f"{where}: batch_window_ms must be a number >= 0, got {window!r}")


class RequestError(Exception):
    """A refused request: ``status`` (4xx) and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def _supported_media_type(content_type: str) -> str:
    """The media type of a Content-Type value (parameters dropped), or 415 if not one we read."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in IMAGE_TYPES + NPY_TYPES:
        shown = media_type or "none"
        raise RequestError(415, f"Content-Type {shown!r} is not supported; use one of {IMAGE_TYPES + NPY_TYPES}")
    return media_type


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``limit`` bytes: from its
    Content-Length before anything is read, or while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise RequestError(400, f"Content-Length {declared!r} is not an integer") from None
        if length > limit:
            raise RequestError(413, f"body of {length} bytes exceeds the limit of {limit} bytes (max_body_bytes)")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body exceeds the limit of {limit} bytes (max_body_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_image(body: bytes, input_size: Tuple[int, int]) -> np.ndarray:
    if Image is None:  # pragma: no cover
        raise RequestError(415, "this server cannot decode images (Pillow is not installed); send an .npy batch")
    h, w = input_size
    try:
        image = Image.open(io.BytesIO(body))
        if image.format not in ("PNG", "JPEG"):
            raise RequestError(400, f"the body is a {image.format} image; send PNG or JPEG")
        if image.size != (w, h):
            # Checked before decoding the pixels: a huge image is refused without being decoded.
            raise RequestError(422, f"image is {image.size[1]}x{image.size[0]} (HxW); this model takes {h}x{w}")
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except RequestError:
        raise
    except Exception as err:  # any decoder failure (truncated, corrupt, bomb) is the input's fault
        raise RequestError(400, f"corrupt or unreadable image: {type(err).__name__}: {err}") from None
    # Contiguous NCHW, as an .npy batch is: the same pixels must give the same bits of features.
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def _decode_npy(body: bytes, input_size: Tuple[int, int], max_batch: int) -> np.ndarray:
    h, w = input_size
    stream = io.BytesIO(body)
    # The header is checked before np.load: a forged shape must not make numpy allocate it.
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise RequestError(400, f"npy format version {version} is not supported (1.0 or 2.0)")
    except RequestError:
        raise
    except Exception as err:
        raise RequestError(400, f"the body is not an .npy file: {err}") from None
    if dtype != np.dtype(np.uint8):
        raise RequestError(422, f"npy dtype must be uint8, got {dtype}")
    if len(shape) != 4 or shape[1] != 3 or tuple(shape[2:]) != (h, w):
        raise RequestError(422, f"npy shape must be (N, 3, {h}, {w}), got {tuple(shape)}")
    if shape[0] < 1:
        raise RequestError(422, "npy holds no images (N = 0)")
    if shape[0] > max_batch:
        raise RequestError(413, f"{shape[0]} images in one request; at most {max_batch} (max_batch)")
    expected = int(np.prod(shape))
    if len(body) - stream.tell() != expected:
        raise RequestError(400, f"npy data is {len(body) - stream.tell()} bytes; shape {tuple(shape)} needs {expected}")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as err:
        raise RequestError(400, f"the body is not a readable .npy file: {err}") from None
    return np.ascontiguousarray(array)


def decode_images(body: bytes, media_type: str, input_size: Tuple[int, int], max_batch: int) -> torch.Tensor:
    """The uint8 images (N, 3, H, W) of a request body, or :class:`RequestError`.

    ``media_type``: ``image/png`` or ``image/jpeg`` (one image; grey or RGBA images are
    converted to RGB), ``application/x-npy`` or ``application/octet-stream`` (an ``.npy``
    file). The header of an npy file is checked (dtype uint8, shape (N, 3, H, W), 1 <= N <=
    max_batch, data length) before it is loaded with ``allow_pickle=False``.
    """
    if not body:
        raise RequestError(400, "empty body: send a PNG/JPEG image or an .npy batch")
    media_type = _supported_media_type(media_type)
    if media_type in IMAGE_TYPES:
        array = _decode_image(body, input_size)
    else:
        array = _decode_npy(body, input_size, max_batch)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


def info(model: ServedModel, config: ServeConfig) -> Dict[str, Any]:
    """The JSON of ``GET /v1/info``."""
    return {
        "model": model.name,
        "input_size": list(model.input_size),
        "input": {"dtype": "uint8", "layout": "NCHW", "channels": 3, "content_types": list(IMAGE_TYPES + NPY_TYPES)},
        "feature_size": model.feature_dim,
        "dtype": "float32",
        "byte_order": "little",
        "mode": config.mode,
        "modes": list(MODES),
        "key_header": KEY_HEADER,
        "key_bytes": 32,
        "derivation": {
            "bit_key_label": BIT_KEY_LABEL,
            "seal_key_label": SEAL_KEY_LABEL,
            "seal_key_kind": SEAL_KEY_KIND,
        },
        "max_batch": config.max_batch,
        "max_body_bytes": config.max_body_bytes,
        "batch_window_ms": config.batch_window_ms,
        "device": str(model.device),
        "featperm_version": __version__,
    }


def create_app(model: ServedModel, config: Optional[ServeConfig] = None) -> FastAPI:
    """The FastAPI application serving ``model`` under ``config`` (see the module docstring).

    The batcher starts and stops with the application's lifespan (uvicorn runs it).
    ``app.state.batcher`` is the :class:`MicroBatcher` (its ``stats`` count batches).
    """
    config = config or ServeConfig()
    batcher = MicroBatcher(model.features, max_batch=config.max_batch, window_ms=config.batch_window_ms)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="featperm feature API",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.batcher = batcher
    app.state.model = model
    app.state.config = config
    served_info = info(model, config)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, err: Exception) -> JSONResponse:
        _log.exception("featperm serve: internal error")
        return _error(500, f"internal error ({type(err).__name__}); see the server log")

    @app.get("/v1/info")
    async def get_info() -> JSONResponse:
        stats = batcher.stats
        served = {"forward_passes": stats.batches, "requests": stats.requests, "images": stats.images}
        return JSONResponse({**served_info, "served": served})

    @app.post("/v1/features")
    async def post_features(request: Request) -> Response:
        try:
            with batcher.arriving():
                header = request.headers.get(KEY_HEADER)
                key = None if config.mode == "plain" and header is None else parse_key(header)
                media_type = _supported_media_type(request.headers.get("content-type", ""))
                body = await _read_body(request, config.max_body_bytes)
                images = decode_images(body, media_type, model.input_size, config.max_batch)
        except RequestError as err:
            return _error(err.status, err.message)
        except ValueError as err:  # parse_key
            return _error(400, str(err))
        mode = config.mode
        features_body = await batcher.submit(images, lambda features: encode_features(features, mode, key))
        shape = (int(images.shape[0]), model.feature_dim)
        return Response(
            content=features_body,
            media_type="application/octet-stream",
            headers={MODE_HEADER: mode, SHAPE_HEADER: format_shape(shape), "Cache-Control": "no-store"},
        )

    return app


def app_from_environment() -> FastAPI:
    """The application described by ``$FEATPERM_SERVE_OPTIONS`` (JSON with the keys ``model``,
    ``weights``, ``input_size``, ``device``, ``threads`` and those of :class:`ServeConfig`): the
    factory each uvicorn worker process calls with ``featperm serve --workers N``, or
    ``uvicorn --factory featperm.serve.app:app_from_environment``."""
    text = os.environ.get(ENVIRONMENT_VARIABLE)
    if not text:
        raise ValueError(f"app_from_environment: set {ENVIRONMENT_VARIABLE} (JSON options of featperm serve)")
    options = json.loads(text)
    if options.get("threads"):
        torch.set_num_threads(int(options["threads"]))
    size = options.get("input_size")
    model = load_model(
        options.get("model", "builtin"),
        weights=options.get("weights"),
        input_size=tuple(size) if size else None,
        device=options.get("device", "cpu"),
    )
    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    return create_app(model, ServeConfig(**{k: v for k, v in options.items() if k in fields}))
