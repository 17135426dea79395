"""Google Colab's model endpoint: an OpenAI-compatible proxy any Colab notebook may use, no key to type.

Colab's own ``google.colab.ai`` finds it this way (read from
googlecolab/colabtools, ``google/colab/ai.py``): the token is
``MODEL_PROXY_API_KEY`` from the environment, else from Colab's secrets
(``google.colab.userdata.get("MODEL_PROXY_API_KEY")``, which it then puts in
the environment); the server is ``MODEL_PROXY_HOST``, chat completions are
under ``{MODEL_PROXY_HOST}/models/openapi`` and the model list is
``{MODEL_PROXY_HOST}/models``. ``MODEL_PROXY_BASE_URL``, when set, is taken
as the OpenAI base URL itself (models at ``{MODEL_PROXY_BASE_URL}/models``).

The automatic choice takes it after the local servers and an OpenAI key,
before the embedded model. The token is kept as every key is: read from the
environment (a token found in Colab's secrets is put there, as Colab does),
so the session's redaction and the replay files' scrubbing know it; it goes
only in the ``Authorization`` header.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import httpx

from ..secret_fields import clean_key
from .base import Probe
from .http import normalize_host
from .openai import _STANDARD, OpenAIBinding

__all__ = ["COLAB_DEFAULT_MODEL", "ColabBinding", "colab_endpoint"]

ENV_HOST, ENV_BASE_URL, ENV_TOKEN = "MODEL_PROXY_HOST", "MODEL_PROXY_BASE_URL", "MODEL_PROXY_API_KEY"
COLAB_DEFAULT_MODEL = "google/gemini-2.5-flash"  # google.colab.ai's default


def colab_endpoint() -> tuple[str, str] | None:
    """(the OpenAI base URL, where the model list is) from the environment, or None outside Colab."""
    base = os.environ.get(ENV_BASE_URL, "").strip()
    if base:
        base = normalize_host(base)
        return base, base + "/models"
    host = os.environ.get(ENV_HOST, "").strip()
    if host:
        host = normalize_host(host)
        return host + "/models/openapi", host + "/models"
    return None


def _secret_token() -> str | None:
    """The token in Colab's secrets, put in the environment as ``google.colab.ai`` does; None if none.

    Asked only inside Colab (``google.colab`` already imported by the kernel): a
    missing secret, or access not granted to the notebook, is simply no token.
    """
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import userdata  # type: ignore[import-not-found]

        token = clean_key(userdata.get(ENV_TOKEN), "Colab's secret MODEL_PROXY_API_KEY")
    except Exception:  # SecretNotFoundError, NotebookAccessError, a Colab without secrets
        return None
    if token:
        os.environ[ENV_TOKEN] = token  # known from now on to every redaction, as any *_KEY variable
    return token


class ColabBinding(OpenAIBinding):
    """The model endpoint of Google Colab (OpenAI-compatible), found from Colab's variables and secrets."""

    name = "colab"
    default_host = "http://127.0.0.1/models/openapi"  # only when nothing says where Colab's proxy is
    host_env = ENV_BASE_URL  # or MODEL_PROXY_HOST (colab_endpoint decides)
    key_env = ENV_TOKEN
    start_hint = "this works inside Google Colab (MODEL_PROXY_HOST and the MODEL_PROXY_API_KEY secret)"
    auto_priority = 80

    def __init__(self, host: str | None = None, model: str | None = None, api_key: str | None = None,
                 **config: object) -> None:
        endpoint = colab_endpoint()
        # Colab's list is beside its OpenAI path: known when the host is the one the variables give.
        same = endpoint is not None and (not host or normalize_host(host) == endpoint[0])
        self._models_url = endpoint[1] if endpoint is not None and same else None
        super().__init__(host or (endpoint[0] if endpoint else None), model or COLAB_DEFAULT_MODEL, api_key,
                         **config)  # type: ignore[arg-type]

    def _normalize_host(self, host: str) -> str:
        return normalize_host(host)  # no "/v1" added: Colab's path is its own

    def _option_map(self) -> Mapping[str, str]:
        return _STANDARD  # the options every OpenAI-compatible proxy takes (Gemini's refuses top_k...)

    @classmethod
    def env_key(cls) -> str | None:
        """``MODEL_PROXY_API_KEY`` from the environment, else from Colab's secrets."""
        return super().env_key() or _secret_token()

    def _url(self, path: str) -> str:
        if path == "/models" and self._models_url:
            return self._models_url  # Colab lists its models beside the OpenAI path, not under it
        return super()._url(path)

    @classmethod
    def probe(cls, client: httpx.Client) -> Probe | None:
        """Colab's endpoint is there when its variables say where and a token is found; its models listed."""
        endpoint = colab_endpoint()
        if endpoint is None:
            return None
        base, models_url = endpoint
        token = cls.env_key()
        if not token:
            return Probe(base, None, f"Colab's model endpoint needs the secret {ENV_TOKEN}", usable=False)
        try:
            answer = client.get(models_url, headers={"Authorization": f"Bearer {token}"})
            data = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        items = data.get("data") if isinstance(data, dict) else None
        names = [str(m["id"]) for m in items or () if isinstance(m, dict) and "id" in m]
        if not names:
            return Probe(base, None, f"Colab's model endpoint lists no model (HTTP {answer.status_code})",
                         usable=False)
        model = COLAB_DEFAULT_MODEL if COLAB_DEFAULT_MODEL in names else names[0]
        return Probe(base, model, f"Google Colab's model endpoint lists {len(names)} model(s), using {model}")
