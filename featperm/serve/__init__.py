"""``featperm serve``: a feature extractor behind an HTTP API that answers each request with its
features encrypted under the request's own key, and the client that talks to it.

* :mod:`~featperm.serve.protocol` — the wire protocol: the ``X-Featperm-Key`` header, the four
  modes (``sealed``, ``cascade``, ``shufflebits``, ``plain``), the key derivation, encoding and
  decoding of responses (``docs/serving.md``).
* :mod:`~featperm.serve.client` — :class:`Client` (standard library HTTP) and :class:`ServerError`.
* :mod:`~featperm.serve.models` — the servable models (built-in, torchvision, TorchScript).
* :mod:`~featperm.serve.batching` — :class:`MicroBatcher`, one forward pass for concurrent requests.
* :mod:`~featperm.serve.app` — the FastAPI application (needs ``fastapi``; ``pip install
  featperm[serve]``).

Names load on first use: importing ``featperm.serve`` imports neither FastAPI nor the models.
"""

from featperm._lazy import lazy_names

__all__, __getattr__, __dir__ = lazy_names(
    "featperm.serve",
    {
        "featperm.serve.client": ["Client", "ServerError", "FeatureResponse"],
        "featperm.serve.protocol": ["MODES", "ENCRYPTED_MODES", "cascade_keys", "decode_features", "encode_features"],
        "featperm.serve.models": ["ServedModel", "load_model"],
        "featperm.serve.batching": ["MicroBatcher"],
        "featperm.serve.app": ["ServeConfig", "create_app"],
    },
    globals(),
)
