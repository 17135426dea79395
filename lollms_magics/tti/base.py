"""The contract every image binding follows, on the text bindings' HTTP machinery.

An image binding turns a prompt into encoded pictures. It is an
:class:`~lollms_magics.bindings.http.HTTPBinding` for everything on the wire
(one long-lived client, retries, the status-to-error mapping, the typed
timeout and unreachable errors), and adds what pictures need:

* :meth:`ImageBinding.create_images` checks the request, warns about the
  options the server cannot honour (:class:`UnsupportedOptionWarning`, as for
  text), runs the job, and checks every reply with Pillow, so that a server
  answering something that is not a picture fails with one line;
* :meth:`ImageBinding.generate_image` is lollms-client's spelling: the bytes,
  or a list of them when ``n > 1``;
* a job that blocks (A1111's ``txt2img``) runs in a worker thread while the
  caller's thread reports progress and stays interruptible: a
  ``KeyboardInterrupt`` cuts the worker's request (or its wait for a retry,
  and no retry follows), cancels the server's job where the API allows
  (:meth:`ImageBinding._cancel`), then propagates.

Image jobs take far longer than a text token, so the read timeout defaults
to ten minutes (``read_timeout=``). The request and result types and the
Pillow check live in :mod:`lollms_magics.tti.images` and are importable
from here too.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..bindings.http import HTTPBinding
from ..errors import (
    InvalidOptionError,
    ProtocolError,
    UnsupportedFeatureError,
    UnsupportedOptionWarning,
)
from ..transport import cancel
from .images import ImageRequest, ImageResult, Progress, check_image

if TYPE_CHECKING:
    import httpx

    from ..bindings.base import Probe
    from ..response import Response

__all__ = [
    "ImageBinding",
    "ImageRequest",
    "ImageResult",
    "Progress",
    "UnsupportedFeatureError",
    "check_image",
]

IMAGE_READ_TIMEOUT = 600.0
# The common options, and the arguments of generate_image that carry them.
OPTIONS = ("negative_prompt", "seed", "steps", "cfg_scale", "n")


def _positive_int(name: str, value: Any, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidOptionError(f"{name} must be a positive whole number, not {value!r}")
    return value


class ImageBinding(HTTPBinding):
    """Base class of the image bindings.

    Parameters
    ----------
    host, model, api_key:
        As for the text bindings (environment variables, then the usual
        local address).
    read_timeout:
        Seconds an image job may take (ten minutes by default).
    poll_interval:
        Seconds between two progress checks while a job runs.
    connect_timeout, max_retries, transport, verify:
        As for :class:`~lollms_magics.bindings.http.HTTPBinding`.
    """

    #: the size used when none is asked (lollms-client's default)
    default_size: ClassVar[tuple[int, int]] = (512, 512)
    #: the options of :data:`OPTIONS` this server honours
    supported: ClassVar[frozenset[str]] = frozenset(OPTIONS)
    #: whether the server reports how far a job is
    reports_progress: ClassVar[bool] = False
    #: place in the automatic choice (lower first); None keeps the binding out
    image_priority: ClassVar[int | None] = None
    #: the usual local address the automatic choice probes
    probe_hosts: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        host: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        read_timeout: float = IMAGE_READ_TIMEOUT,
        poll_interval: float = 0.25,
        **config: Any,
    ) -> None:
        config.setdefault("max_retries", 1)
        super().__init__(host, model, api_key, read_timeout=read_timeout, **config)
        self.poll_interval = poll_interval

    @classmethod
    def probe_image(cls, client: httpx.Client) -> Probe | None:
        """For the automatic choice: whether this image server answers here (None: nothing does)."""
        return None

    @classmethod
    def _probe_host(cls) -> str:
        import os

        env = os.environ.get(cls.host_env) if cls.host_env else None
        return cls._normalize_probe_host(env or cls.default_host)

    @classmethod
    def _normalize_probe_host(cls, host: str) -> str:
        from ..bindings.http import normalize_host

        return normalize_host(host)

    # -- what users call -----------------------------------------------------

    def list_services(self) -> list[dict[str, Any]]:
        """The image services the server offers (LoLLMs); others raise a clear error."""
        raise self._cannot("list image services")

    def get_settings(self) -> Any:
        """The server's image settings, where it exposes them."""
        raise self._cannot("show its image settings")

    def set_settings(self, settings: Any = None, **values: Any) -> bool:
        """Change image settings (a whole settings object, or ``NAME=VALUE`` pairs)."""
        raise self._cannot("change its image settings")

    def setting_choices(self) -> dict[str, list[str]]:
        """The values the server lists for some settings (checkpoints, samplers), by setting name.

        What a settings form offers as choices; a setting not named here is
        typed. Servers whose API lists nothing give ``{}``.
        """
        return {}

    def create_images(
        self,
        prompt: str,
        negative_prompt: str = "",
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        n: int = 1,
        *,
        model: str | None = None,
        progress: Progress | None = None,
        **extra: Any,
    ) -> ImageResult:
        """Make ``n`` pictures of ``prompt``; returns them with what made them."""
        request = self._request(
            prompt, negative_prompt, width, height, seed, steps, cfg_scale, n, model, extra
        )
        ignored = self._warn_ignored(request)
        report = progress or (lambda fraction: None)
        started = time.monotonic()
        report(None)
        result = self._make(request, report)
        result.duration = time.monotonic() - started
        result.ignored_options = ignored
        result.binding, result.model = self.name, result.model or request.model or self.model
        result.prompt, result.negative_prompt = request.prompt, request.negative_prompt
        if not result.images:
            raise ProtocolError(
                f"{self._where()} answered without any image", binding=self.name, url=self.host
            )
        for data in result.images:
            fmt, size = check_image(data, self._where(), self.name, self.host)
            result.formats.append(fmt)
            result.sizes.append(size)
        report(1.0)
        return result

    def generate_image(
        self,
        prompt: str,
        negative_prompt: str = "",
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        n: int = 1,
        **extra: Any,
    ) -> bytes | list[bytes]:
        """lollms-client's call: the encoded picture, or a list of them when ``n > 1``."""
        result = self.create_images(
            prompt, negative_prompt, width, height, seed, steps, cfg_scale, n, **extra
        )
        return result.images if n > 1 else result.images[0]

    def generate(self, *args: Any, **kwargs: Any) -> Response:
        """Image bindings make pictures, not text."""
        raise UnsupportedFeatureError(
            f"{self.name} is an image binding: use generate_image() or create_images()"
        )

    # -- what a binding implements --------------------------------------------

    def _make(self, request: ImageRequest, progress: Progress) -> ImageResult:
        """Run the job and return its (unchecked) pictures."""
        raise NotImplementedError

    def _cancel(self, job: Any) -> None:
        """Ask the server to stop ``job`` (after a KeyboardInterrupt); best effort."""

    # -- shared helpers ---------------------------------------------------------

    def _request(
        self,
        prompt: str,
        negative: str,
        width: Any,
        height: Any,
        seed: Any,
        steps: Any,
        cfg: Any,
        n: Any,
        model: str | None,
        extra: dict[str, Any],
    ) -> ImageRequest:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidOptionError("the image prompt is empty")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < -1):
            raise InvalidOptionError(f"seed must be a whole number >= 0 (or -1: random), not {seed!r}")
        if cfg is not None and (isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or cfg <= 0):
            raise InvalidOptionError(f"cfg_scale must be a positive number, not {cfg!r}")
        default_w, default_h = self._default_size()
        w = _positive_int("width", width) or default_w
        h = _positive_int("height", height) or default_h
        count = _positive_int("n", n, allow_none=False) or 1
        return ImageRequest(
            prompt,
            negative_prompt=negative or "",
            width=w,
            height=h,
            seed=None if seed in (None, -1) else seed,
            steps=_positive_int("steps", steps),
            cfg_scale=None if cfg is None else float(cfg),
            n=count,
            model=model or self.model,
            extra=dict(extra),
        )

    def _warn_ignored(self, request: ImageRequest) -> list[str]:
        given = {
            "negative_prompt": bool(request.negative_prompt),
            "seed": request.seed is not None,
            "steps": request.steps is not None,
            "cfg_scale": request.cfg_scale is not None,
            "n": request.n > 1,
        }
        supported = self._supported()
        ignored = [name for name, used in given.items() if used and name not in supported]
        if ignored:
            warnings.warn(
                f"{self.name} cannot honour {', '.join(ignored)}; "
                f"{'it is' if len(ignored) == 1 else 'they are'} not sent",
                UnsupportedOptionWarning,
                stacklevel=3,
            )
        return ignored

    def _default_size(self) -> tuple[int, int]:
        return self.default_size

    def _supported(self) -> frozenset[str]:
        return self.supported

    def _where(self) -> str:
        return f"{self.name} at {self.host}"

    def _cannot(self, what: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(f"{self.name} cannot {what}: its API has no such call")

    def _run_blocking(self, call: Callable[[], Any], tick: Callable[[], None], job: Any = None) -> Any:
        """Run ``call`` in a worker thread; ``tick`` every ``poll_interval`` while it runs.

        A ``KeyboardInterrupt`` in the caller's thread cuts the worker's
        request (a retry's wait too: none follows), asks the server to stop
        ``job`` (:meth:`_cancel`) and propagates; the worker's result or
        exception is returned or raised here.
        """
        box: dict[str, Any] = {}
        stop = cancel.Stop()

        def work() -> None:
            try:
                with cancel.owned_by(stop):
                    box["value"] = call()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"{self.name}-image-job", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(self.poll_interval)
                if worker.is_alive():
                    tick()
        except KeyboardInterrupt:
            stop.cancel()
            self._cancel(job)
            raise
        if "error" in box:
            raise box["error"]
        return box.get("value")
