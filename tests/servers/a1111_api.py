"""The request model, error shape and shared state of the AUTOMATIC1111 loopback.

From AUTOMATIC1111/stable-diffusion-webui: ``modules/api/models.py``
(``StableDiffusionTxt2ImgProcessingAPI``: every field optional, coerced by
pydantic v1), ``modules/processing.py`` (the defaults), ``modules/api/api.py``
(``api_middleware.handle_exception``: the error body) and
``modules/shared_state.py`` (``State.dict``, what ``/progress`` reports).
"""

from __future__ import annotations

import time
from typing import Any

from .base import Exchange

INT_FIELDS = ("seed", "subseed", "steps", "width", "height", "batch_size", "n_iter")
FLOAT_FIELDS = ("cfg_scale", "denoising_strength", "subseed_strength")
STR_FIELDS = ("prompt", "negative_prompt", "sampler_name", "sampler_index", "scheduler")
DEFAULTS: dict[str, Any] = {
    "prompt": "",
    "negative_prompt": "",
    "styles": None,
    "seed": -1,
    "subseed": -1,
    "subseed_strength": 0,
    "sampler_name": None,
    "scheduler": None,
    "batch_size": 1,
    "n_iter": 1,
    "steps": 50,
    "cfg_scale": 7.0,
    "width": 512,
    "height": 512,
    "override_settings": None,
    "override_settings_restore_afterwards": True,
    "sampler_index": "Euler",
    "send_images": True,
    "save_images": False,
}
SAMPLERS = {
    "Euler a": ["k_euler_a", "k_euler_ancestral"],
    "Euler": ["k_euler"],
    "DPM++ 2M": ["k_dpmpp_2m"],
    "DDIM": [],
}


def a1111_error(
    ex: Exchange,
    status: int,
    detail: Any,
    error: str = "HTTPException",
    errors: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """The web UI's custom error body (``api_middleware.handle_exception``)."""
    if errors is None:
        errors = f"{status}: {detail}"
    ex.send_json({"error": error, "detail": detail, "body": "", "errors": errors}, status, headers)


def coerce_field(name: str, value: Any) -> tuple[Any, dict | None]:
    """Pydantic v1 coercion of one field; (value, error or None)."""
    if value is None:
        return None, None
    if name in INT_FIELDS:
        if isinstance(value, (int, float)) and float(value).is_integer():
            return int(value), None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value), None
        return value, {
            "loc": ["body", name],
            "msg": "value is not a valid integer",
            "type": "type_error.integer",
        }
    if name in FLOAT_FIELDS:
        try:
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                return float(value), None
        except ValueError:
            pass
        return value, {"loc": ["body", name], "msg": "value is not a valid float", "type": "type_error.float"}
    if name in STR_FIELDS and not isinstance(value, str):
        if isinstance(value, (int, float)):
            return str(value), None
        return value, {"loc": ["body", name], "msg": "str type expected", "type": "type_error.str"}
    return value, None


class WebUIState:
    """``modules.shared_state.State``: what ``/progress`` reads."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.skipped = False
        self.interrupted = False
        self.job = ""
        self.job_count = 0
        self.job_no = 0
        self.job_timestamp = "0"
        self.sampling_step = 0
        self.sampling_steps = 0
        self.time_start = time.time()
        self.task_id: str | None = None

    def dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "stopping_generation": False,
            "job": self.job,
            "job_count": self.job_count,
            "job_timestamp": self.job_timestamp,
            "job_no": self.job_no,
            "sampling_step": self.sampling_step,
            "sampling_steps": self.sampling_steps,
        }
