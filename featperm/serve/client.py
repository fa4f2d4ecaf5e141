"""A Python client of ``featperm serve`` (standard library HTTP: no extra dependency).

    client = Client("http://127.0.0.1:8000")
    features = client.features(images)      # uint8 (N, 3, H, W) -> float32 (N, D), decrypted here

Each call sends a fresh 32-byte key (``secrets.token_bytes``) in ``X-Featperm-Key`` and opens
the response locally (:func:`featperm.serve.protocol.decode_features`). The key travels in the
request: use an ``https://`` URL (``featperm serve --ssl-certfile/--ssl-keyfile`` or a TLS
proxy) wherever the request path can be observed. By default the client refuses responses that
are not encrypted (``plain``, ``shufflebits``), so a misconfigured or downgraded server cannot
hand it plaintext unnoticed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import ssl
import urllib.error
import urllib.request
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from featperm.errors import FeatpermError
from featperm.serve.protocol import (
    ENCRYPTED_MODES,
    KEY_HEADER,
    MODE_HEADER,
    MODES,
    SHAPE_HEADER,
    decode_features,
    format_key,
    new_key,
    parse_shape,
)

__all__ = ["Client", "ServerError", "FeatureResponse", "encode_request"]

Images = Union[torch.Tensor, np.ndarray, bytes, bytearray, str, "os.PathLike[str]"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_NPY_MAGIC = b"\x93NUMPY"


class ServerError(FeatpermError, RuntimeError):
    """The server refused a request: ``status`` (the HTTP status) and ``message`` (its
    ``{"error": ...}``)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"featperm server answered {status}: {message}")
        self.status = status
        self.message = message


@dataclasses.dataclass
class FeatureResponse:
    """One answer of ``POST /v1/features`` as it crossed the network.

    Attributes:
        body: the response body (ciphertext in the encrypted modes).
        mode: the ``X-Featperm-Mode`` header.
        shape: the ``X-Featperm-Shape`` header, (N, D).
        key: the 32-byte key this request sent.
    """

    body: bytes
    mode: str
    shape: Tuple[int, ...]
    key: bytes


def _image_type(data: bytes) -> str:
    if data.startswith(_PNG_MAGIC):
        return "image/png"
    if data.startswith(_JPEG_MAGIC):
        return "image/jpeg"
    if data.startswith(_NPY_MAGIC):
        return "application/x-npy"
    raise ValueError("Client.features: bytes must be a PNG or JPEG file or an .npy file")


def encode_request(images: Images) -> Tuple[bytes, str, Optional[int]]:
    """(body, content type, number of images or None when the server will count them) for
    ``images``: a uint8 tensor or array (N, 3, H, W) or (3, H, W), the bytes of a PNG / JPEG /
    .npy file, or the path of one."""
    where = "Client.features"
    if isinstance(images, (str, os.PathLike)):
        with open(images, "rb") as fh:
            data = fh.read()
        return data, _image_type(data), 1 if not data.startswith(_NPY_MAGIC) else None
    if isinstance(images, (bytes, bytearray)):
        data = bytes(images)
        return data, _image_type(data), 1 if not data.startswith(_NPY_MAGIC) else None
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise TypeError(
            f"{where}: images must be a uint8 tensor or array, PNG/JPEG/.npy bytes or a path, "
            f"got {type(images).__name__}"
        )
    if images.dtype != np.uint8:
        raise TypeError(f"{where}: images must be uint8 (0..255), got {images.dtype}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{where}: images must have shape (N, 3, H, W) or (3, H, W), got {images.shape}")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images), allow_pickle=False)
    return buffer.getvalue(), "application/x-npy", int(images.shape[0])


class Client:
    """Talks to one ``featperm serve`` server.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000`` or ``https://features.example``.
        timeout: seconds per HTTP request.
        accept_unencrypted: accept ``plain`` and ``shufflebits`` responses (refused by default:
            ShuffleBits is obfuscation, plain is plaintext).
        ssl_context: for ``https`` URLs, e.g. ``ssl.create_default_context(cafile=...)``.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 60.0,
        accept_unencrypted: bool = False,
        ssl_context: Optional[ssl.SSLContext] = None,
    ):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"Client: url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.accept_unencrypted = bool(accept_unencrypted)
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _send(self, request: urllib.request.Request) -> Tuple[bytes, Dict[str, str]]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl_context) as response:
                return response.read(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace")
            try:
                message = str(json.loads(text)["error"])
            except (ValueError, KeyError, TypeError):
                message = text[:200] or err.reason
            raise ServerError(err.code, message) from None

    def info(self) -> Dict[str, Any]:
        """``GET /v1/info``: model, input_size [H, W], feature_size, dtype, mode, modes, limits."""
        body, _ = self._send(urllib.request.Request(self.url + "/v1/info", method="GET"))
        return dict(json.loads(body))

    def request(self, images: Images, key: Optional[bytes] = None) -> FeatureResponse:
        """``POST /v1/features`` with ``images`` (see :func:`encode_request`) under ``key`` (default:
        a fresh 32-byte key); returns the response as it came, not yet opened.

        Raises:
            ServerError: the server refused the request (4xx) or failed (5xx).
            ValueError: the response is in a mode this client does not accept, or malformed.
        """
        body, content_type, _ = encode_request(images)
        return self._post(body, content_type, new_key() if key is None else key)

    def _post(self, body: bytes, content_type: str, key: bytes) -> FeatureResponse:
        request = urllib.request.Request(
            self.url + "/v1/features",
            data=body,
            method="POST",
            headers={"Content-Type": content_type, KEY_HEADER: format_key(key)},
        )
        answer, headers = self._send(request)
        mode = headers.get(MODE_HEADER.lower(), "")
        if mode not in MODES:
            raise ValueError(f"Client: the response names no known mode ({MODE_HEADER}: {mode!r})")
        if mode not in ENCRYPTED_MODES and not self.accept_unencrypted:
            raise ValueError(
                f"Client: the server answered in {mode!r} mode, which is not encryption; "
                "refused (pass accept_unencrypted=True to accept it)"
            )
        return FeatureResponse(answer, mode, parse_shape(headers.get(SHAPE_HEADER.lower())), key)

    def features(self, images: Images, key: Optional[bytes] = None) -> torch.Tensor:
        """The features of ``images`` as float32 (N, D) on the CPU, decrypted here.

        ``images``: a uint8 tensor or array (N, 3, H, W) or (3, H, W) (sent as ``.npy``), or the
        bytes or path of a PNG / JPEG / ``.npy`` file; (H, W) must be the server's input size
        (:meth:`info`). ``key``: 32 bytes; default a fresh one from ``secrets.token_bytes``.

        Raises:
            ServerError: the server refused the request (its message names the problem).
            featperm.errors.AuthenticationError: a sealed response was altered on the way.
            ValueError: an unaccepted mode, or a response whose shape is not what was asked.
        """
        body, content_type, count = encode_request(images)
        response = self._post(body, content_type, new_key() if key is None else key)
        features = decode_features(response.body, response.mode, response.key, response.shape)
        if features.dim() != 2 or tuple(features.shape) != response.shape:
            raise ValueError(
                f"Client: features of shape {tuple(features.shape)} but the response says {response.shape}"
            )
        if count is not None and features.shape[0] != count:
            raise ValueError(f"Client: {count} images sent but {features.shape[0]} feature vectors returned")
        if features.dtype != torch.float32:
            raise ValueError(f"Client: features must be float32, got {features.dtype}")
        return features
