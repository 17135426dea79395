"""Loopback imitation of the new LoLLMs server (ParisNeo/lollms, port 9642).

It is the OpenAI-compatible server with the LoLLMs differences:

* ``Authorization: Bearer lollms_...`` required (``api_key``, default
  :data:`DEFAULT_KEY`; set ``api_key = None`` to disable, as an admin can);
  missing key → ``401 {"detail": "API Key is required."}`` + ``WWW-Authenticate: Bearer``.
* FastAPI errors ``{"detail": "..."}``; 429 is ``{"detail": "Rate limit exceeded."}``
  and never carries ``Retry-After`` (planned headers are dropped).
* Model ids are ``binding_alias/model`` (``ollama/test-model``); a name without
  an alias → 400, an unknown id → 404.
* Mid-stream error ``data: {"error": {"message": "boom", "type": "server_error"}}``
  then ``data: [DONE]``.
* ``/v1/tokenize|detokenize|count_tokens|context_size`` and the same under
  ``/lollms/v1``; ``/lollms/v1/capabilities``. No legacy ``/list_models``.
"""

from __future__ import annotations

from .base import Exchange, is_special_model
from .openai_compat import OpenAIServer

DEFAULT_KEY = "lollms_loopback-test-key"


class LollmsServer(OpenAIServer):
    default_models = ("ollama/test-model", "ollama/vision-model")
    midstream_error = {"message": "boom", "type": "server_error"}
    sse_separators = (", ", ": ")  # Python's json.dumps defaults, as the real server writes
    whole_call_deltas = True  # it parses the whole answer for calls, then sends each whole
    context_size = 4096

    def __init__(self, models: list[str] | None = None, api_key: str | None = DEFAULT_KEY):
        super().__init__(models, api_key)
        self.error_style = "fastapi"

    def setup_routes(self) -> None:
        super().setup_routes()
        for prefix in ("/v1", "/lollms/v1"):
            self.route("POST", prefix + "/tokenize", self.tokenize)
            self.route("POST", prefix + "/detokenize", self.detokenize)
            self.route("POST", prefix + "/count_tokens", self.count_tokens)
            self.route("POST", prefix + "/context_size", self.get_context_size)
        self.route("GET", "/lollms/v1/capabilities", self.capabilities)
        self.route("GET", "/lollms/v1/tti/models", self.tti_models_list)

    def not_found(self, ex: Exchange) -> None:
        ex.send_json({"detail": "Not Found"}, 404)

    def auth_failure(self, ex: Exchange, given: str) -> None:
        key = given[7:] if given.startswith("Bearer ") else ""
        if not key:
            msg = "API Key is required."
        elif not key.startswith("lollms_"):
            msg = "Invalid API Key format."
        else:
            msg = "Invalid API Key."
        ex.send_json({"detail": msg}, 401, {"WWW-Authenticate": "Bearer"})

    def planned_failure(self, ex: Exchange, status: int, headers: dict, code: str | None) -> None:
        if status == 429:
            ex.send_json({"detail": "Rate limit exceeded."}, 429)
        else:
            msg = {
                401: "Invalid API Key.",
                403: "Service disabled.",
                404: "Not Found",
                503: "No admin user configured.",
            }.get(status, f"Planned failure {status}.")
            ex.send_json({"detail": msg}, status, headers)

    def model_error(self, ex: Exchange, model: str) -> bool:
        if is_special_model(model):
            return False
        if "/" not in model:
            ex.send_json(
                {"detail": f"Invalid model name '{model}'. Expected 'binding_alias/model_name'."}, 400
            )
            return True
        if model not in self.models:
            ex.send_json({"detail": f"Model '{model}' not found."}, 404)
            return True
        return False

    # openai_v1.create_image_generation: no model → the user's or the first active TTI
    # binding (none → 400); a name without "/" → 400; n is 1..10 (pydantic → 422);
    # only prompt/model/n/size/quality/style/response_format are read.
    tti_models: tuple[str, ...] = ("diffusers/sdxl-turbo", "dalle/dall-e-3")

    def image_model_error(self, ex: Exchange, model: str | None) -> bool:
        body = ex.json if isinstance(ex.json, dict) else {}
        n = body.get("n", 1)
        if isinstance(n, int) and not 1 <= n <= 10:
            kind, limit = ("greater_than_equal", 1) if n < 1 else ("less_than_equal", 10)
            word = "greater than or equal to" if n < 1 else "less than or equal to"
            err = {"type": kind, "loc": ["body", "n"], "msg": f"Input should be {word} {limit}",
                   "input": n, "ctx": {"ge" if n < 1 else "le": limit}}
            ex.send_json({"detail": [err]}, 422)
            return True
        if model is None and not self.tti_models:
            ex.send_json({"detail": "No TTI model specified in request and no default TTI binding configured "
                                    "for user or system."}, 400)
            return True
        if model is not None and "/" not in model:
            msg = "Invalid model name. Must be in 'tti_binding_alias/model_name' format."
            ex.send_json({"detail": msg}, 400)
            return True
        if model is not None and model not in self.tti_models:
            alias = model.split("/", 1)[0]
            ex.send_json({"detail": f"Image generation failed: TTI binding '{alias}' not found."}, 500)
            return True
        return False

    def default_image_model(self) -> str:
        return self.tti_models[0] if self.tti_models else ""

    def tti_models_list(self, ex: Exchange) -> None:
        """``lollms_v1``: ``GET /lollms/v1/tti/models`` (BindingModelListResponse)."""
        data = []
        for m in self.tti_models:
            alias, name = m.split("/", 1)
            data.append({"id": m, "name": name, "binding": alias, "model_name": name, "alias": None,
                         "created": 1700000000, "owned_by": "lollms"})
        ex.send_json({"object": "list", "binding_type": "tti", "total": len(data), "data": data})

    def tokenize(self, ex: Exchange) -> None:
        tokens = self.word_tokens(str((ex.json or {}).get("text", "")))
        ex.send_json({"tokens": tokens, "count": len(tokens)})

    def detokenize(self, ex: Exchange) -> None:
        ex.send_json({"text": " ".join(self.word_text((ex.json or {}).get("tokens") or []))})

    def count_tokens(self, ex: Exchange) -> None:
        ex.send_json({"count": len(str((ex.json or {}).get("text", "")).split())})

    def get_context_size(self, ex: Exchange) -> None:
        ex.send_json({"context_size": self.context_size})

    def capabilities(self, ex: Exchange) -> None:
        ex.send_json({"version": "loopback", "features": ["chat", "tokenize", "images"]})
